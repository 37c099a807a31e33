"""The inference API every front end uses (CLI, web UI, notebook): load once, then stylize with sliders.

A :class:`Stylizer` holds one exported model on one device. The style embedding ``e`` is computed once per
style image and cached, so moving a slider only re-runs Λ and T. Weights are validated here, at the public
boundary, against the range the model was trained on.

Example:
    >>> st = Stylizer.load("models/quick")  # doctest: +SKIP
    >>> out = st.stylize("examples/photo_cat.jpg", "examples/painting_vangogh_starry_night.jpg",
    ...                  weights={"relu2_2": 0.2, "relu4_4": 1.0})  # doctest: +SKIP
    >>> out.shape  # doctest: +SKIP
    torch.Size([1, 3, 682, 1024])
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Union

import torch
from PIL import Image

from . import tiling
from .color import preserve_color as _preserve_color
from .image import MIN_SIDE, load_image, pil_to_tensor, resize
from .layers import LayerSchema, layer_label
from .model import slider_coefficients
from .model_files import ExportedModel, load_model, resolve_model

if TYPE_CHECKING:
    from .adapt import Adapter
    from .onnx_export import OnnxGraphs

BACKENDS = ("torch", "onnxruntime", "auto")
ImageLike = Union[str, "os.PathLike[str]", Image.Image, torch.Tensor]
"""A path to an image file, a PIL image, or a (1, 3, H, W) / (3, H, W) tensor in [0, 1]."""


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``"auto"`` → ``cuda`` when available, else ``cpu``; other names are checked and returned.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but no CUDA device is available; use cpu")
    return device


def _check_unit(name: str, value: float, low: float = 0.0, high: float = 1.0, what: str = "") -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in [{low:g}, {high:g}], got {value!r}") from None
    if math.isnan(v):
        raise ValueError(f"{name} must be a number in [{low:g}, {high:g}], got nan")
    if not low <= v <= high:
        raise ValueError(f"{name} must be in [{low:g}, {high:g}]{what}, got {v:g}")
    return v


class Stylizer:
    """Stylize images with an exported adjustable model; one slider per style layer.

    Build it with :meth:`load`. Images may be given as paths, PIL images or tensors (1, 3, H, W) in [0, 1];
    results are float32 CPU tensors (N, 3, H, W) in [0, 1].

    Args:
        exported: a model from :func:`adjustable_style.export.load_model`.
        device: where it runs (already resolved; see :meth:`load`).
        autocast: run T and Λ in bfloat16 autocast (float16 where the GPU lacks bf16; CUDA only, ignored on CPU).
            On CUDA the transformer also runs channels_last.
        cache_size: how many style embeddings to keep.

    Example:
        >>> st = Stylizer.load("models/quick", device="cpu")  # doctest: +SKIP
        >>> imgs, alphas = st.variations("examples/photo_cat.jpg", "examples/painting_monet_water_lilies.jpg", n=4)  # doctest: +SKIP
    """

    def __init__(
        self, exported: ExportedModel, device: torch.device | str = "cpu", autocast: bool = False, cache_size: int = 32
    ) -> None:
        self.device = resolve_device(device)
        self.exported = exported
        self.model = exported.model.to(self.device).eval()
        self.schema: LayerSchema = exported.schema
        self.style_layers: tuple[str, ...] = self.schema.style
        self.content_layers: tuple[str, ...] = self.schema.content
        self.style_size = exported.style_size
        train = exported.config.get("train", {})
        self.alpha_range: tuple[float, float] = (
            float(train.get("alpha_low", 0.0)),
            float(train.get("alpha_high", 1.0)),
        )
        self.fixed_content = bool(train.get("fix_single_content", True)) and len(self.content_layers) == 1
        self.autocast = bool(autocast) and self.device.type == "cuda"
        if self.device.type == "cuda":
            self.model.net.to(memory_format=torch.channels_last)  # cuDNN's fast layout for these convs
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple, torch.Tensor] = OrderedDict()
        self._cache_lock = threading.Lock()  # web front ends call from several threads
        self._graphs: OnnxGraphs | None = None  # set by use_backend("onnxruntime")
        self.backend = "torch"
        # Requests whose activations would exceed this run in tiles (see adjustable_style.tiling); GB.
        self.memory_limit_gb = tiling.DEFAULT_MEMORY_LIMIT_GB
        self._adapters: dict[str, torch.Tensor] = {}  # style digest -> slider offsets D (see adjustable_style.adapt)
        self._digests: OrderedDict[tuple, str] = OrderedDict()

    @classmethod
    def load(
        cls,
        path_or_name: str | Path = "default",
        device: str = "auto",
        vgg_weights: str | None = None,
        autocast: bool = False,
        backend: str = "torch",
    ) -> Stylizer:
        """Load an export folder, a ``.ckpt`` file or a bundled model by name.

        Args:
            path_or_name: see :func:`adjustable_style.export.resolve_model`.
            device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda:1"``…; resolved once, here.
            vgg_weights: override the VGG19 weight source recorded in the model.
            autocast: bfloat16 autocast on CUDA.
            backend: what runs P and T. ``"torch"``; ``"onnxruntime"`` (CPU; the folder's ONNX graphs from
                ``export --onnx``, else exported once into the user cache, ~20 s); ``"auto"``: onnxruntime when it
                is installed and the graphs already exist (faster on CPUs, see the README's benchmark), else torch.
        """
        dev = resolve_device(device)
        st = cls(load_model(path_or_name, device=dev, vgg_weights=vgg_weights), dev, autocast=autocast)
        st.use_backend(backend, resolve_model(path_or_name))
        return st

    def use_backend(self, backend: str, folder: Path) -> str:
        """Switch what runs P and T (see :meth:`load`); ``folder`` is the model's export folder. Returns the choice."""
        from . import onnx_export as ox

        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        if backend == "auto":
            usable = (
                self.device.type == "cpu" and folder.is_dir() and importlib.util.find_spec("onnxruntime") is not None
            )
            backend = "onnxruntime" if usable and ox.find_graphs(folder) is not None else "torch"
        if backend == "onnxruntime":
            if self.device.type != "cpu":
                raise ValueError("the onnxruntime backend runs on the CPU; use the torch backend on GPUs")
            if not folder.is_dir():
                raise ValueError(
                    f"the onnxruntime backend needs an export folder; export '{folder}' first (adjustable-style export)"
                )
            self._graphs = ox.OnnxGraphs(ox.cached_graphs(folder, self.model))
        else:
            self._graphs = None
        self.backend = backend
        return backend

    # ------------------------------------------------------------------------------------------- sliders
    def default_weights(self) -> dict[str, float]:
        """Every style layer at 1.0 (the top of the training range)."""
        return {n: 1.0 for n in self.style_layers}

    def labels(self) -> dict[str, str]:
        """Human labels for the style sliders, e.g. ``{"relu2_2": "fine texture (relu2_2)"}``."""
        stored = self.exported.config.get("labels", {})
        return {n: str(stored.get(n, layer_label(n))) for n in self.style_layers}

    def check_weights(
        self, weights: Mapping[str, float] | None = None, content_weights: Mapping[str, float] | None = None
    ) -> torch.Tensor:
        """Validate slider values and return the α row (1, L); layers not given are 1.0.

        Raises:
            ValueError: unknown layer (listing the model's layers), NaN, or a value outside the trained range.
        """
        lo, hi = self.alpha_range
        for kind, given, names in (
            ("style", weights, self.style_layers),
            ("content", content_weights, self.content_layers),
        ):
            for name, value in (given or {}).items():
                if name not in names:
                    raise ValueError(
                        f"unknown {kind} layer {name!r}; this model's {kind} layers are {', '.join(names) or 'none'}"
                    )
                _check_unit(
                    f"{kind} weight for {name}" if kind == "content" else f"weight for {name}",
                    value,
                    lo,
                    hi,
                    " (the range the model was trained on)",
                )
                if kind == "content" and self.fixed_content and float(value) != 1.0:
                    raise ValueError(
                        f"content weight for {name} is fixed at 1 in this model (trained with one content layer); "
                        "lower the style weights instead"
                    )
        return self.schema.to_tensor(dict(weights or {}), content=dict(content_weights or {}), default=1.0)

    def check_alphas(self, alphas: torch.Tensor) -> torch.Tensor:
        """Validate an α batch (N, L) in the schema's order; returns it as float32 on the CPU."""
        n = self.schema.n_layers
        if not isinstance(alphas, torch.Tensor) or alphas.ndim != 2 or alphas.shape[1] != n or alphas.shape[0] < 1:
            shape = tuple(alphas.shape) if isinstance(alphas, torch.Tensor) else type(alphas).__name__
            raise ValueError(f"alphas must have shape (N, {n}) in the order {', '.join(self.schema.keys)}, got {shape}")
        a = alphas.detach().to("cpu", torch.float32)
        for row in a:
            style, content = self.schema.to_dicts(row)
            self.check_weights(style, content)
        return a

    def random_alphas(self, n: int, seed: int = 0) -> torch.Tensor:
        """Seeded α (n, L): style layers ~ U(trained range), the content weight 1 as in training."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        g = torch.Generator().manual_seed(int(seed))
        lo, hi = self.alpha_range
        return self.schema.sample(n, g, fix_single_content=self.fixed_content, low=lo, high=hi)

    # ------------------------------------------------------------------------------------------- images
    def image(self, image: ImageLike, what: str = "content") -> torch.Tensor:
        """Any accepted image (path, PIL image, tensor) → (1, 3, H, W) float32 on the CPU; ``what`` names it in
        errors."""
        if isinstance(image, torch.Tensor):
            x = image.unsqueeze(0) if image.ndim == 3 else image
            if x.ndim != 4 or x.shape[0] != 1 or x.shape[1] != 3 or not x.is_floating_point():
                raise ValueError(
                    f"{what} image must be a float tensor of shape (1, 3, H, W) in [0, 1], got {tuple(image.shape)} {image.dtype}"
                )
            if min(x.shape[-2:]) < MIN_SIDE:
                raise ValueError(
                    f"{what} image is {x.shape[-1]}x{x.shape[-2]} px; images must be at least {MIN_SIDE} px on each side"
                )
            return x.detach().to("cpu", torch.float32)
        if isinstance(image, Image.Image):
            return pil_to_tensor(image)
        if isinstance(image, (str, os.PathLike)):
            return load_image(image)
        raise TypeError(f"{what} must be a path, a PIL image or an image tensor, got {type(image).__name__}")

    def _style_resize(self, x: torch.Tensor) -> torch.Tensor:
        # Shorter side = the training style size, so P sees textures at the scale it learned them.
        # Extreme panoramas are capped at 4x that on the longer side to bound memory.
        h, w = x.shape[-2:]
        scale = self.style_size / min(h, w)
        scale = min(scale, 4 * self.style_size / max(h, w))
        return resize(x, (max(1, round(h * scale)), max(1, round(w * scale))))

    def style_image(self, style: ImageLike) -> torch.Tensor:
        """The style image as P sees it: (1, 3, h, w), shorter side = the training style size."""
        return self._style_resize(self.image(style, "style"))

    def _key(self, image: ImageLike) -> tuple:
        if isinstance(image, (str, os.PathLike)):
            p = Path(image).resolve()
            try:
                st = p.stat()
            except OSError:
                return ("path", str(p), None, None)  # load_image raises the one-line error
            return ("path", str(p), st.st_mtime_ns, st.st_size)
        if isinstance(image, Image.Image):
            h = hashlib.blake2b(image.tobytes(), digest_size=16)
            return ("pil", image.mode, image.size, h.hexdigest())
        if isinstance(image, torch.Tensor):
            t = image.detach().to("cpu").contiguous()
            h = hashlib.blake2b(
                t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes(), digest_size=16
            )
            return ("tensor", tuple(t.shape), str(t.dtype), h.hexdigest())
        raise TypeError(f"expected a path, a PIL image or an image tensor, got {type(image).__name__}")

    def embed(self, style: ImageLike) -> torch.Tensor:
        """Style embedding e (1, D) on :attr:`device`; cached (LRU) by file path + mtime + size or by content hash.

        Example:
            >>> e = st.embed("examples/painting_monet_water_lilies.jpg")  # doctest: +SKIP
            >>> e.shape  # doctest: +SKIP
            torch.Size([1, 100])
        """
        key = self._key(style)
        with self._cache_lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        x = self.style_image(style).to(self.device)
        with torch.inference_mode():
            # P stays in float32: its statistics span orders of magnitude
            e = self._graphs.embed(x) if self._graphs is not None else self.model.embed(x).float()
        with self._cache_lock:
            self._cache[key] = e
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return e

    # --------------------------------------------------------------------------------------- adapters
    def add_adapter(self, adapter: Adapter) -> None:
        """Use ``adapter``'s slider offsets whenever its painting is the style (see :mod:`adjustable_style.adapt`)."""
        from .adapt import check_adapter

        check_adapter(adapter, self)
        self._adapters[adapter.style_digest] = adapter.offsets.to(self.device, torch.float32)

    def remove_adapters(self) -> None:
        """Forget every adapter: the sliders are the model's own again."""
        self._adapters.clear()

    def has_adapter(self, style: ImageLike) -> bool:
        """Whether an added adapter was fitted for this painting."""
        return self._offsets(style) is not None

    def _offsets(self, style: ImageLike) -> torch.Tensor | None:
        if not self._adapters:
            return None
        from .adapt import style_digest

        key = self._key(style)
        with self._cache_lock:
            digest = self._digests.get(key)
        if digest is None:
            digest = style_digest(self, style)
            with self._cache_lock:
                self._digests[key] = digest
                while len(self._digests) > 4 * self.cache_size:
                    self._digests.popitem(last=False)
        return self._adapters.get(digest)

    def clear_cache(self) -> None:
        """Forget every cached style embedding."""
        with self._cache_lock:
            self._cache.clear()

    def embedding(self, content: ImageLike, style: ImageLike, strength: float = 1.0) -> torch.Tensor:
        """The embedding T is conditioned on: e = s·P(style) + (1 − s)·P(content) for style strength s in [0, 1];
        (1, D) on :attr:`device`, from the cache when it can."""
        strength = _check_unit("strength", strength)
        e = self.embed(style)
        if strength < 1.0:
            # Ghiasi et al.'s identity interpolation: towards the content's own style, which T reproduces.
            e = strength * e + (1.0 - strength) * self.embed(content)
        return e

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast:
            return torch.autocast("cuda", dtype=torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
        return contextlib.nullcontext()

    def _check_max_size(self, max_size: int | None) -> None:
        if max_size is not None and (
            isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < MIN_SIDE
        ):
            raise ValueError(f"max_size must be an int >= {MIN_SIDE} or None, got {max_size!r}")

    # --------------------------------------------------------------------------------------- stylizing
    def stylize(
        self,
        content: ImageLike,
        style: ImageLike,
        weights: Mapping[str, float] | None = None,
        content_weights: Mapping[str, float] | None = None,
        strength: float = 1.0,
        preserve_color: bool = False,
        max_size: int | None = 1024,
    ) -> torch.Tensor:
        """Stylize one content image with one style at the given slider values.

        Args:
            content: the photo.
            style: the painting or texture.
            weights: style-layer weights in the trained range (usually [0, 1]); missing layers are 1.
            content_weights: content-layer weights (fixed at 1 for single-content-layer models).
            strength: style strength s in [0, 1]: e = s·P(style) + (1 − s)·P(content).
            preserve_color: keep the content's chrominance (luminance-only transfer).
            max_size: shrink the content so its longer side is at most this; None keeps it.

        Returns:
            (1, 3, H, W) float32 on the CPU, in [0, 1], H×W the (resized) content size.

        Example:
            >>> st.stylize("examples/photo_cat.jpg", "examples/painting_hokusai_great_wave.jpg", {"relu4_4": 0.3})  # doctest: +SKIP
        """
        alpha = self.check_weights(weights, content_weights)
        return self.stylize_alphas(content, style, alpha, strength, preserve_color, max_size)

    def stylize_alphas(
        self,
        content: ImageLike,
        style: ImageLike,
        alphas: torch.Tensor,
        strength: float = 1.0,
        preserve_color: bool = False,
        max_size: int | None = 1024,
        batch_size: int = 8,
    ) -> torch.Tensor:
        """Stylize one content/style pair at N weight vectors, batched.

        Args:
            alphas: (N, L) in the schema's order (``schema.keys``: content layers, then style layers).
            batch_size: rows per forward pass.
            others: as in :meth:`stylize`.

        Returns:
            (N, 3, H, W) float32 on the CPU, in [0, 1].
        """
        a = self.check_alphas(alphas)
        s = _check_unit("strength", strength)
        self._check_max_size(max_size)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        c = resize(self.image(content, "content"), max_size=max_size).to(self.device)  # (1, 3, H, W)
        if self.device.type == "cuda":
            c = c.contiguous(memory_format=torch.channels_last)
        e = self.embedding(content, style, s)  # (1, D)
        offsets = self._offsets(style)
        outs = []
        for chunk in a.split(batch_size):
            b = chunk.shape[0]
            y = self._run(c.expand(b, -1, -1, -1), e, chunk, offsets)  # α checked above
            if preserve_color:
                y = _preserve_color(c.expand(b, -1, -1, -1), y)
            outs.append(y.cpu())
        return torch.cat(outs)

    def run(
        self, content: torch.Tensor, embedding: torch.Tensor, alphas: torch.Tensor, style: ImageLike | None = None
    ) -> torch.Tensor:
        """Λ and T on tensors the caller prepared (video frames, say): content (B, 3, H, W) in [0, 1], an embedding
        (1 or B, D) from :meth:`embedding`, α (B, L) in the schema's order; ``style``: the painting, so that its
        adapter (if one was added) applies. Within :attr:`memory_limit_gb` (fewer rows per pass, or overlapping
        tiles with whole-image statistics); returns float32 (B, 3, H, W) on :attr:`device`."""
        a = self.check_alphas(alphas)
        if a.shape[0] != content.shape[0]:
            raise ValueError(f"alphas has {a.shape[0]} rows for {content.shape[0]} content images")
        return self._run(content, embedding, a, self._offsets(style) if style is not None else None)

    def _run(
        self, content: torch.Tensor, embedding: torch.Tensor, a: torch.Tensor, offsets: torch.Tensor | None = None
    ) -> torch.Tensor:
        b = content.shape[0]
        x, e = content.to(self.device), embedding.to(self.device).expand(b, -1)
        rows, tile = tiling.plan(self.model.net, *x.shape[-2:], b, b, self.memory_limit_gb)
        outs = []
        with torch.inference_mode(), self._autocast():
            for i in range(0, b, rows):
                outs.append(self._net(x[i : i + rows], e[i : i + rows], a[i : i + rows].to(self.device), tile, offsets))
        return torch.cat(outs)

    def _net(
        self,
        content: torch.Tensor,
        embedding: torch.Tensor,
        alpha: torch.Tensor,
        tile: int | None = None,
        offsets: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """T and Λ on the chosen backend (tiles, adapters: torch): float32 (B, 3, H, W)."""
        if tile is None and offsets is None:
            if self._graphs is not None:
                return self._graphs.stylize(content, embedding, alpha)
            return self.model(content, embedding, alpha).float()
        gamma, beta = self.model.mlp(alpha, embedding)
        if offsets is not None:  # an adapter: γ, β += [1, 2α − 1] · D
            a = alpha.to(offsets.dtype)
            dg, db = (slider_coefficients(a) @ offsets).chunk(2, 1)
            gamma, beta = gamma + dg.to(gamma.dtype), beta + db.to(beta.dtype)
        if tile is not None:
            return tiling.stylize_tiled(self.model.net, content, gamma, beta, tile=tile).float()
        return self.model.net(content, gamma, beta).float()

    @property
    def has_base(self) -> bool:
        """Whether the model is built on a base network whose own output (Δ = 0) :meth:`stylize_base` gives."""
        return getattr(self.model.config, "conditioning", "mlp") == "base_delta"

    def stylize_base(self, content: ImageLike, style: ImageLike, max_size: int | None = 1024) -> torch.Tensor:
        """The base network's own output (Magenta's, for the bundled default), ignoring the sliders: (1, 3, H, W)."""
        if not self.has_base:
            raise ValueError("this model has no base network (it was trained from scratch)")
        self._check_max_size(max_size)
        c = resize(self.image(content, "content"), max_size=max_size).to(self.device)
        e = self.embed(style)
        alpha = self.check_weights(None).to(self.device)
        with torch.inference_mode(), self._autocast():
            return self.model(c, e, alpha, delta=False).float().cpu()

    def variations(
        self, content: ImageLike, style: ImageLike, n: int = 8, seed: int = 0, **kw
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` stylizations at seeded random weights: images (n, 3, H, W) and their α (n, L).

        Keyword arguments go to :meth:`stylize_alphas` (strength, preserve_color, max_size, batch_size).
        """
        alphas = self.random_alphas(n, seed)
        return self.stylize_alphas(content, style, alphas, **kw), alphas

    def sweep(
        self,
        content: ImageLike,
        style: ImageLike,
        layer: str,
        steps: int = 6,
        weights: Mapping[str, float] | None = None,
        low: float = 0.0,
        high: float = 1.0,
        **kw,
    ) -> tuple[torch.Tensor, list[float]]:
        """One slider's effect: ``layer`` from ``low`` to ``high`` in ``steps``, the others at ``weights``.

        ``layer="all"`` moves every style slider together (the overall amount of style; ``weights`` is unused).

        Returns:
            images (steps, 3, H, W) and the layer's values.
        """
        if layer != "all" and layer not in self.style_layers:
            raise ValueError(
                f"unknown style layer {layer!r}; this model's style layers are {', '.join(self.style_layers)} (or all)"
            )
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
            raise ValueError(f"steps must be an int >= 2, got {steps!r}")
        lo, hi = self.alpha_range
        low = _check_unit("sweep low", low, lo, hi, " (the range the model was trained on)")
        high = _check_unit("sweep high", high, lo, hi, " (the range the model was trained on)")
        if low > high:
            raise ValueError(f"sweep low ({low:g}) must not exceed high ({high:g})")
        base = self.check_weights(weights)
        values = [low + (high - low) * i / (steps - 1) for i in range(steps)]
        alphas = base.repeat(steps, 1)
        swept = self.style_layers if layer == "all" else (layer,)
        for name in swept:
            alphas[:, self.schema.keys.index(f"style/{name}")] = torch.tensor(values)
        return self.stylize_alphas(content, style, alphas, **kw), values
