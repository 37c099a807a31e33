"""Optimisation-based transfer (Gatys et al.) on real images, with the caffe VGG19 at small sizes."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from kornia.color import rgb_to_ycbcr

from adjustable_style.gatys import GatysConfig, optimize, reference_scales
from adjustable_style.image import load_image, resize
from adjustable_style.layers import LayerSchema
from adjustable_style.losses import LossBreakdown, PerceptualLoss
from adjustable_style.vgg import VGG19Features

SIZE = 64
STEPS = 15


@pytest.fixture(scope="module")
def vgg() -> VGG19Features:
    return VGG19Features("caffe", max_layer="relu4_4")


@pytest.fixture(scope="module")
def pair(content_images: list[Path], style_images: list[Path]) -> tuple[torch.Tensor, torch.Tensor]:
    """A real photo and a real painting, longer side 64 px: ((1, 3, H, W), (1, 3, H', W'))."""
    photos = {p.stem: p for p in content_images}
    paintings = {p.stem: p for p in style_images}
    content = load_image(photos.get("kodak_kodim23", content_images[0]), size=SIZE)
    style = load_image(paintings.get("vangogh_starry_night", style_images[0]), size=SIZE)
    return content, style


@pytest.fixture(scope="module")
def run(pair: tuple[torch.Tensor, torch.Tensor], vgg: VGG19Features):
    """``run(**config)`` → optimize() on the shared pair, cached per config so that tests share runs."""
    cache: dict[tuple, tuple[torch.Tensor, LossBreakdown]] = {}

    def _run(**kwargs) -> tuple[torch.Tensor, LossBreakdown]:
        key = tuple(sorted((k, tuple(sorted(v.items())) if isinstance(v, dict) else v) for k, v in kwargs.items()))
        if key not in cache:
            cache[key] = optimize(*pair, GatysConfig(**{"steps": STEPS, **kwargs}), vgg=vgg)
        return cache[key]

    return _run


def _start_loss(
    pair: tuple[torch.Tensor, torch.Tensor], vgg: VGG19Features, cfg: GatysConfig, start: torch.Tensor
) -> LossBreakdown:
    """The objective optimize() minimises, evaluated at ``start`` (same normalisation and weights)."""
    content, style = pair
    loss = PerceptualLoss(cfg.schema, vgg, tv_weight=cfg.tv_weight).eval()
    ref, tv = reference_scales(loss, content, style)
    loss.set_ema(ref, tv=tv)
    return loss(start, loss.targets(content, style), cfg.alpha(), update_ema=False)


# ---------------------------------------------------------------------------------------------------------


def test_loss_decreases_and_output_stays_in_range(pair, vgg, run) -> None:
    content, _ = pair
    out, final = run()
    assert out.shape == content.shape
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    start = _start_loss(pair, vgg, GatysConfig(), content)
    assert float(final.total) < 0.5 * float(start.total)
    # The style terms drop; the content term, zero at the start, grows.
    assert bool((final.raw[0, 1:] < start.raw[0, 1:]).all())
    assert float(final.raw[0, 0]) > 0
    assert not torch.allclose(out, content, atol=0.05)


def test_callback_sees_every_step(pair, vgg) -> None:
    seen: list[tuple[int, LossBreakdown]] = []
    optimize(*pair, GatysConfig(steps=3), vgg=vgg, callback=lambda step, br: seen.append((step, br)))
    assert [s for s, _ in seen] == [1, 2, 3]
    for _, br in seen:
        assert not br.total.requires_grad  # plain numbers for the caller (float() would warn otherwise)
        assert math.isfinite(float(br.total)) and float(br.total) > 0
        assert br.raw.shape == (1, 4)


def test_raising_a_style_weight_lowers_that_layers_loss(run) -> None:
    # The paper's central claim, checked on the optimisation reference: each layer's weight controls its term.
    _, low = run(style_weights={"relu2_2": 0.1})
    _, high = run(style_weights={"relu2_2": 10.0})
    schema = LayerSchema()
    i = schema.keys.index("style/relu2_2")
    assert float(high.raw[0, i]) < 0.5 * float(low.raw[0, i])
    # … at the expense of the content term, which the run with more relu2_2 weight matches less well.
    assert float(high.raw[0, 0]) > float(low.raw[0, 0])


def test_a_small_content_weight_does_not_stall(pair, vgg) -> None:
    # Regression: with L-BFGS's default max_eval the line search had no evaluations; when the unit step
    # was rejected (here, at content_weight 0.1) every later step retried it and the image never moved.
    content, _ = pair
    out, _ = optimize(*pair, GatysConfig(steps=3, content_weight=0.1), vgg=vgg)
    assert float((out - content).abs().mean()) > 0.01


@pytest.mark.slow
def test_raising_the_content_weight_keeps_closer_to_the_photo(pair, run) -> None:
    content, _ = pair
    out_low, low = run(content_weight=0.1)
    out_high, high = run(content_weight=10.0)
    assert float(high.raw[0, 0]) < float(low.raw[0, 0])
    assert float((out_high - content).abs().mean()) < float((out_low - content).abs().mean())


@pytest.mark.parametrize("init", ["content", "style", "noise"])
def test_every_init_works(pair, vgg, run, init: str) -> None:
    content, style = pair
    steps = 5
    cfg = GatysConfig(steps=steps, init=init)
    out, final = run(steps=steps, init=init)
    assert out.shape == content.shape
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert torch.isfinite(final.total).all()
    if init == "content":
        start = content
    elif init == "style":
        start = resize(style, size=tuple(content.shape[-2:]))
    else:
        start = torch.rand(content.shape, generator=torch.Generator().manual_seed(cfg.seed))
    assert float(final.total) < float(_start_loss(pair, vgg, cfg, start).total)


def test_inits_lead_to_different_images(run) -> None:
    outs = {init: run(steps=5, init=init)[0] for init in ("content", "style", "noise")}
    assert float((outs["content"] - outs["style"]).abs().mean()) > 0.02
    assert float((outs["content"] - outs["noise"]).abs().mean()) > 0.02


def test_noise_init_is_reproducible_by_seed(pair, vgg) -> None:
    a, _ = optimize(*pair, GatysConfig(steps=2, init="noise", seed=7), vgg=vgg)
    b, _ = optimize(*pair, GatysConfig(steps=2, init="noise", seed=7), vgg=vgg)
    c, _ = optimize(*pair, GatysConfig(steps=2, init="noise", seed=8), vgg=vgg)
    assert torch.allclose(a, b, atol=1e-6)
    assert float((a - c).abs().mean()) > 0.05
    # The seed is local: it neither reads nor moves the global RNG.
    torch.manual_seed(0)
    before = torch.get_rng_state()
    optimize(*pair, GatysConfig(steps=1, init="noise", seed=7), vgg=vgg)
    assert torch.equal(torch.get_rng_state(), before)


def test_preserve_color_keeps_the_content_chroma(pair, run) -> None:
    content, _ = pair
    plain, _ = run(steps=5, init="content")
    kept, _ = run(steps=5, init="content", preserve_color=True)

    def chroma(x: torch.Tensor) -> torch.Tensor:
        return rgb_to_ycbcr(x)[:, 1:]

    def luma(x: torch.Tensor) -> torch.Tensor:
        return rgb_to_ycbcr(x)[:, :1]

    kept_err = float((chroma(kept) - chroma(content)).abs().mean())
    plain_err = float((chroma(plain) - chroma(content)).abs().mean())
    assert kept_err < 0.01  # only clipping to [0, 1] can move it
    assert plain_err > 5 * kept_err  # control: without it the painting's colours come through
    # The luminance is still the stylized one.
    assert float((luma(kept) - luma(plain)).abs().mean()) < 0.01
    assert float(kept.min()) >= 0.0 and float(kept.max()) <= 1.0


def test_reference_scales_are_positive_and_finite(pair, vgg) -> None:
    content, style = pair
    schema = LayerSchema()
    loss = PerceptualLoss(schema, vgg)
    ref, tv = reference_scales(loss, content, style)
    assert ref.shape == (schema.n_layers,)
    assert bool(torch.isfinite(ref).all()) and bool((ref > 0).all())
    assert math.isfinite(tv) and tv > 0
    # Identical end points give zero distances, which fall back to 1 so the normalisation stays defined.
    same, _ = reference_scales(loss, content, content)
    assert same.tolist() == [1.0] * schema.n_layers


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"init": "photo"}, "init must be one of content, style, noise"),
        ({"steps": 0}, "steps must be an int >= 1"),
        ({"content_weight": -1.0}, "content weight must be a finite number >= 0"),
        ({"content_weight": math.nan}, "content weight"),
        ({"tv_weight": math.inf}, "tv weight"),
    ],
)
def test_config_validation(kwargs: dict, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        GatysConfig(**kwargs)


def test_config_rejects_weights_for_other_layers() -> None:
    with pytest.raises(ValueError, match="'relu1_1' is not a style layer"):
        GatysConfig(style_weights={"relu1_1": 1.0}).alpha()


def test_optimize_rejects_batches_and_bad_shapes(vgg) -> None:
    img = torch.rand(1, 3, 32, 32)
    with pytest.raises(ValueError, match=r"content must have shape \(1, 3, H, W\), got \(2, 3, 32, 32\)"):
        optimize(torch.rand(2, 3, 32, 32), img, GatysConfig(steps=1), vgg=vgg)
    with pytest.raises(ValueError, match=r"style must have shape \(1, 3, H, W\), got \(3, 32, 32\)"):
        optimize(img, torch.rand(3, 32, 32), GatysConfig(steps=1), vgg=vgg)
