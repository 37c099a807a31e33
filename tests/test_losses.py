"""Perceptual losses: the pure functions (reference values, gradcheck, per-sample) and PerceptualLoss's algebra."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from adjustable_style.image import load_image
from adjustable_style.layers import LayerSchema
from adjustable_style.losses import (
    PerceptualLoss,
    Targets,
    content_loss,
    gram,
    style_loss,
    total_variation,
)
from adjustable_style.model import conditional_instance_norm
from adjustable_style.vgg import VGG19Features

# ---------------------------------------------------------------------------------------------------------
# Pure functions: hand-computed values on tiny inputs


def test_gram_hand_computed() -> None:
    # Two channels over two pixels: F = [[1, 2], [3, 4]]; G = F Fᵀ / (H·W) with H·W = 2.
    f = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 2, 1, 2)
    assert gram(f).tolist() == [[[2.5, 5.5], [5.5, 12.5]]]
    # The same pixels laid out as 2x1 instead of 1x2 give the same Gram (it ignores spatial layout).
    assert torch.equal(gram(f.view(1, 2, 2, 1)), gram(f))
    # Batch entries are separate: sample 1 = 2 × sample 0 gives 4 × its Gram.
    g = gram(torch.cat([f, 2 * f]))
    assert g.shape == (2, 2, 2)
    assert torch.equal(g[1], 4 * g[0])


def test_content_loss_hand_computed() -> None:
    feats = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 2, 1, 2)
    assert content_loss(feats, torch.zeros_like(feats)).tolist() == [7.5]  # (1 + 4 + 9 + 16) / 4
    assert content_loss(feats, feats).tolist() == [0.0]
    assert content_loss(feats, feats + 3).tolist() == [9.0]


def test_style_loss_hand_computed() -> None:
    g = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    assert style_loss(g, torch.zeros_like(g)).tolist() == [7.5]
    assert style_loss(g, g).tolist() == [0.0]
    # A shared target (batch 1) broadcasts over the batch.
    batch = torch.stack([g[0], g[0] + 1])
    assert style_loss(batch, g).tolist() == [0.0, 1.0]


def test_total_variation_hand_computed() -> None:
    img = torch.tensor([[0.0, 1.0, 3.0], [2.0, 2.0, 2.0]]).view(1, 1, 2, 3)
    # vertical diffs: 2, 1, -1 -> squares 4, 1, 1, mean 2
    # horizontal diffs: 1, 2, 0, 0 -> squares 1, 4, 0, 0, mean 1.25
    assert total_variation(img).tolist() == [(2 + 1.25) / 2]
    assert total_variation(torch.full((2, 3, 5, 5), 0.3)).tolist() == [0.0, 0.0]


@pytest.mark.parametrize(
    ("call", "pattern"),
    [
        (lambda: gram(torch.rand(2, 3, 4)), r"features must have shape \(B, C, H, W\), got \(2, 3, 4\)"),
        (lambda: content_loss(torch.rand(1, 2, 3, 3), torch.rand(1, 2, 3, 4)), "differ in shape"),
        (lambda: style_loss(torch.rand(1, 2, 2), torch.rand(1, 3, 3)), "Gram shapes differ"),
        (lambda: total_variation(torch.rand(3, 4, 4)), r"got \(3, 4, 4\)"),
    ],
)
def test_pure_functions_reject_bad_shapes(call, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        call()


# ---------------------------------------------------------------------------------------------------------
# Precision


def test_gram_is_float32_under_bf16_autocast() -> None:
    x = torch.rand(2, 8, 12, 12, generator=torch.Generator().manual_seed(0)) * 50  # caffe-scale activations
    expected = gram(x.double())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        # Control: a plain matmul under autocast really does run in bf16 …
        naive = torch.bmm(x.flatten(2), x.flatten(2).transpose(1, 2)) / 144
        assert naive.dtype == torch.bfloat16
        # … while gram leaves autocast and stays float32.
        g = gram(x)
        g_bf16_input = gram(x.bfloat16())
    assert g.dtype == torch.float32 and g_bf16_input.dtype == torch.float32
    assert torch.allclose(g.double(), expected, rtol=1e-5)
    naive_err = float((naive.double() - expected).abs().max() / expected.abs().max())
    ours_err = float((g.double() - expected).abs().max() / expected.abs().max())
    assert ours_err < naive_err / 100


def test_low_precision_gram_rounds_bfloat16_only() -> None:
    """``low_precision=True`` multiplies bfloat16 features as they are: float32 out, within bfloat16's rounding of
    the exact Gram of those same features (not bit-equal to it), and gradients flow; float32 features are
    unaffected."""
    x = torch.rand(2, 8, 12, 12, generator=torch.Generator().manual_seed(0)) * 50
    xb = x.bfloat16().requires_grad_(True)
    low, exact = gram(xb, low_precision=True), gram(xb.detach())
    assert low.dtype == torch.float32 and not torch.equal(low, exact)
    assert float((low.detach() - exact).abs().max() / exact.abs().max()) < 1e-2
    low.sum().backward()
    assert xb.grad is not None and xb.grad.abs().sum() > 0
    assert torch.equal(gram(x, low_precision=True), gram(x))


def test_gram_reads_channels_last_features_as_they_are() -> None:
    """Channels-last features (what VGG returns for a channels-last input) give the Gram matrix of the same values,
    float32 and bfloat16 alike, and gradients in the input's layout; a 1-pixel map (both layouts at once) too."""
    x = torch.rand(2, 8, 6, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 3
    cl = x.contiguous(memory_format=torch.channels_last).requires_grad_(True)
    assert not cl.is_contiguous()
    assert torch.allclose(gram(cl), gram(x), rtol=1e-12, atol=0)
    assert torch.autograd.gradcheck(gram, (cl,))
    xb = x.bfloat16()
    xl = xb.contiguous(memory_format=torch.channels_last)
    assert (gram(xl) - gram(xb)).abs().max() < 1e-5 * gram(xb).abs().max()
    assert (gram(xl, low_precision=True) - gram(xb)).abs().max() < 1e-2 * gram(xb).abs().max()
    one = x[:, :, :1, :1]
    assert torch.allclose(gram(one.contiguous(memory_format=torch.channels_last)), gram(one))


def test_losses_are_float32_for_half_inputs() -> None:
    a, b = torch.rand(2, 3, 4, 4).bfloat16(), torch.rand(2, 3, 4, 4).bfloat16()
    assert content_loss(a, b).dtype == torch.float32
    assert total_variation(a).dtype == torch.float32


# ---------------------------------------------------------------------------------------------------------
# Gradients (float64 gradcheck)


def _r(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).requires_grad_(True)


def test_gradcheck_gram() -> None:
    assert torch.autograd.gradcheck(gram, (_r(2, 3, 4, 5),))


def test_gradcheck_content_loss() -> None:
    assert torch.autograd.gradcheck(content_loss, (_r(2, 3, 4, 4), _r(2, 3, 4, 4, seed=1)))


def test_gradcheck_style_loss() -> None:
    assert torch.autograd.gradcheck(style_loss, (_r(2, 3, 3), _r(1, 3, 3, seed=1)))
    # and through gram, as the loss module uses it
    assert torch.autograd.gradcheck(lambda f, g: style_loss(gram(f), g), (_r(2, 3, 4, 4), _r(1, 3, 3, seed=2)))


def test_gradcheck_total_variation() -> None:
    assert torch.autograd.gradcheck(total_variation, (_r(2, 3, 5, 6),))


def test_gradcheck_conditional_instance_norm() -> None:
    x = _r(2, 2, 3, 4)
    gamma, beta = _r(2, 2, seed=1), _r(2, 2, seed=2)
    assert torch.autograd.gradcheck(conditional_instance_norm, (x, gamma, beta))


def test_conditional_instance_norm_values() -> None:
    x = torch.tensor([[0.0, 2.0], [4.0, 6.0]]).view(1, 1, 2, 2)  # mean 3, var 5
    z = conditional_instance_norm(x, torch.tensor([[2.0]]), torch.tensor([[1.0]]), eps=0.0)
    expected = 2.0 * (x - 3.0) / math.sqrt(5.0) + 1.0
    assert torch.allclose(z, expected, atol=1e-6)


# ---------------------------------------------------------------------------------------------------------
# One value per sample, and samples do not mix


@pytest.mark.parametrize(
    "fn",
    [
        lambda x, y: content_loss(x, y),
        lambda x, y: style_loss(gram(x), gram(y)),
        lambda x, y: total_variation(x),
        lambda x, y: gram(x).flatten(1).sum(1),
    ],
    ids=["content", "style", "tv", "gram"],
)
def test_per_sample_outputs_are_independent(fn) -> None:
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(3, 4, 6, 6, generator=g), torch.rand(3, 4, 6, 6, generator=g)
    base = fn(x, y)
    assert base.shape == (3,)
    x2 = x.clone()
    x2[1] = torch.rand(4, 6, 6, generator=g)
    changed = fn(x2, y)
    assert torch.equal(changed[0], base[0]) and torch.equal(changed[2], base[2])
    assert not torch.equal(changed[1], base[1])


# ---------------------------------------------------------------------------------------------------------
# PerceptualLoss: module == functions, EMA, normalisation, weights

SCHEMA = LayerSchema(content=("relu2_1",), style=("relu1_1", "relu1_2", "relu2_1"))


@pytest.fixture(scope="module")
def small_vgg() -> VGG19Features:
    # Random weights are fine for the algebra; the caffe weights are used on real images further down.
    return VGG19Features("random", max_layer="relu2_1")


def _images(seed: int, b: int = 2, size: int = 24) -> torch.Tensor:
    return torch.rand(b, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _setup(vgg: VGG19Features, **kwargs) -> tuple[PerceptualLoss, Targets]:
    loss = PerceptualLoss(SCHEMA, vgg, **kwargs)
    return loss, loss.targets(_images(1), _images(2, b=1))


def test_raw_losses_equal_the_pure_functions(small_vgg: VGG19Features) -> None:
    loss, targets = _setup(small_vgg)
    out = _images(3)
    content, style = _images(1), _images(2, b=1)
    fo = small_vgg(out, ["relu1_1", "relu1_2", "relu2_1"])
    fc = small_vgg(content, ["relu2_1"])
    fs = small_vgg(style, ["relu1_1", "relu1_2", "relu2_1"])
    expected = torch.stack(
        [
            content_loss(fo["relu2_1"], fc["relu2_1"]),
            style_loss(gram(fo["relu1_1"]), gram(fs["relu1_1"])),
            style_loss(gram(fo["relu1_2"]), gram(fs["relu1_2"])),
            style_loss(gram(fo["relu2_1"]), gram(fs["relu2_1"])),
        ],
        dim=1,
    )
    br = loss(out, targets, torch.ones(2, 4), update_ema=False)
    assert br.raw.shape == (2, 4)
    assert torch.allclose(br.raw, expected, rtol=1e-6)
    assert torch.allclose(loss.raw_losses(out, targets), expected, rtol=1e-6)
    assert torch.allclose(br.tv, total_variation(out))
    # Before any EMA update the scales are 1: normalised == raw and total == Σ α raw.
    assert torch.equal(br.normalized, br.raw)
    assert torch.allclose(br.total, br.raw.sum(1))


def test_targets_are_detached_and_style_targets_are_grams(small_vgg: VGG19Features) -> None:
    loss = PerceptualLoss(SCHEMA, small_vgg)
    content = _images(1).requires_grad_(True)
    t = loss.targets(content, _images(2, b=1))
    assert set(t.content) == {"relu2_1"} and set(t.style) == {"relu1_1", "relu1_2", "relu2_1"}
    assert not t.content["relu2_1"].requires_grad
    assert t.style["relu1_2"].shape == (1, 64, 64) and t.style["relu1_2"].dtype == torch.float32


def test_ema_starts_at_first_batch_mean_then_decays(small_vgg: VGG19Features) -> None:
    d = 0.9
    loss, targets = _setup(small_vgg, ema_decay=d)
    loss.train()
    assert not bool(loss.ema_initialized)

    b1 = loss(_images(3), targets, torch.ones(2, 4))
    mean1 = b1.raw.detach().mean(0)
    assert torch.allclose(loss.ema, mean1, rtol=1e-6)
    assert torch.allclose(loss.ema_tv, b1.tv.mean(), rtol=1e-6)
    assert bool(loss.ema_initialized)

    b2 = loss(_images(4), targets, torch.ones(2, 4))
    mean2 = b2.raw.detach().mean(0)
    expected = d * mean1 + (1 - d) * mean2
    assert torch.allclose(loss.ema, expected, rtol=1e-6)
    assert torch.allclose(loss.ema_tv, d * b1.tv.mean() + (1 - d) * b2.tv.mean(), rtol=1e-6)
    assert not torch.allclose(loss.ema, mean1)  # the second batch really moved it

    b3 = loss(_images(5), targets, torch.ones(2, 4))
    expected = d * expected + (1 - d) * b3.raw.detach().mean(0)
    assert torch.allclose(loss.ema, expected, rtol=1e-6)


def test_ema_decay_one_keeps_the_first_batch_scales(small_vgg: VGG19Features) -> None:
    loss, targets = _setup(small_vgg, ema_decay=1.0)
    loss.train()
    b1 = loss(_images(3), targets, torch.ones(2, 4))
    first = loss.ema.clone()
    torch.testing.assert_close(first, b1.raw.detach().mean(0))
    b2 = loss(_images(4), targets, torch.ones(2, 4))
    assert not torch.allclose(b2.raw.mean(0), b1.raw.mean(0))  # a different batch …
    assert torch.equal(loss.ema, first)  # … leaves the normalisers where the first batch put them


def test_ema_is_detached(small_vgg: VGG19Features) -> None:
    loss, targets = _setup(small_vgg)
    out = _images(3).requires_grad_(True)
    loss.train()(out, targets, torch.ones(2, 4))
    assert not loss.ema.requires_grad and loss.ema.grad_fn is None


def test_normalised_and_weighted_terms(small_vgg: VGG19Features) -> None:
    loss, targets = _setup(small_vgg, tv_weight=0.3)
    loss.set_ema(torch.tensor([2.0, 0.5, 4.0, 8.0]), tv=0.25)
    alpha = torch.tensor([[1.0, 0.0, 0.5, 2.0], [1.0, 3.0, 0.25, 0.0]])
    br = loss(_images(3), targets, alpha, update_ema=False)
    total_ema = 2.0 + 0.5 + 4.0 + 8.0
    scales = torch.tensor([total_ema / 2.0, total_ema / 0.5, total_ema / 4.0, total_ema / 8.0])
    assert torch.allclose(br.normalized, br.raw * scales, rtol=1e-6)
    assert torch.allclose(br.weighted, br.normalized * alpha, rtol=1e-6)
    assert br.weighted[0, 1] == 0 and br.weighted[1, 3] == 0  # α = 0 switches a layer off for that sample only
    assert torch.allclose(br.tv_weighted, 0.3 * (total_ema / 0.25) * br.tv, rtol=1e-6)
    assert torch.allclose(br.total, br.weighted.sum(1) + br.tv_weighted, rtol=1e-6)
    # A (1, L) weight row applies to every sample.
    shared = loss(_images(3), targets, alpha[:1], update_ema=False)
    assert torch.allclose(shared.weighted[1], br.normalized[1] * alpha[0], rtol=1e-6)


def test_normalisation_equalises_layers_after_one_batch(small_vgg: VGG19Features) -> None:
    # With B = 1 the EMA after the first batch is that batch's loss, so each normalised term is Σ raw.
    loss = PerceptualLoss(SCHEMA, small_vgg).train()
    targets = loss.targets(_images(1, b=1), _images(2, b=1))
    br = loss(_images(3, b=1), targets, torch.ones(1, 4))
    assert torch.allclose(br.normalized, br.raw.sum().expand(1, 4), rtol=1e-5)


def test_normalize_false_uses_raw_losses(small_vgg: VGG19Features) -> None:
    loss, targets = _setup(small_vgg, normalize=False)
    loss.set_ema(torch.tensor([2.0, 0.5, 4.0, 8.0]), tv=0.25)
    br = loss(_images(3), targets, torch.full((2, 4), 2.0))
    assert torch.equal(br.normalized, br.raw)
    assert torch.allclose(br.total, 2 * br.raw.sum(1))


def test_ema_in_state_dict_round_trip(small_vgg: VGG19Features) -> None:
    loss, targets = _setup(small_vgg)
    loss.train()
    loss(_images(3), targets, torch.ones(2, 4))
    loss(_images(4), targets, torch.ones(2, 4))
    sd = loss.state_dict()
    assert set(sd) == {"ema", "ema_tv", "ema_initialized"}  # and no VGG weights
    fresh = PerceptualLoss(SCHEMA, small_vgg).eval()
    fresh.load_state_dict(sd)
    assert torch.equal(fresh.ema, loss.ema) and torch.equal(fresh.ema_tv, loss.ema_tv)
    loss.eval()
    a = loss(_images(5), targets, torch.ones(2, 4))
    b = fresh(_images(5), targets, torch.ones(2, 4))
    assert torch.equal(a.normalized, b.normalized) and torch.equal(a.total, b.total)


def test_ema_not_updated_in_eval_or_when_told_not_to(small_vgg: VGG19Features) -> None:
    loss, targets = _setup(small_vgg)
    loss.set_ema(torch.tensor([1.0, 2.0, 3.0, 4.0]), tv=5.0)
    before = (loss.ema.clone(), loss.ema_tv.clone())

    loss.train()
    loss(_images(3), targets, torch.ones(2, 4), update_ema=False)
    assert torch.equal(loss.ema, before[0]) and torch.equal(loss.ema_tv, before[1])

    loss.eval()
    loss(_images(3), targets, torch.ones(2, 4))
    assert torch.equal(loss.ema, before[0]) and torch.equal(loss.ema_tv, before[1])

    loss(_images(3), targets, torch.ones(2, 4), update_ema=True)  # explicit update works in eval too
    assert not torch.equal(loss.ema, before[0])


@pytest.mark.parametrize("shape", [(2, 3), (2, 5), (3, 4), (4,), (2, 4, 1)])
def test_bad_weights_shape(small_vgg: VGG19Features, shape: tuple[int, ...]) -> None:
    loss, targets = _setup(small_vgg)
    with pytest.raises(ValueError, match=r"weights must have shape \(B, 4\) or \(1, 4\)"):
        loss(_images(3), targets, torch.ones(shape))


@pytest.mark.parametrize(
    ("values", "tv"),
    [
        ([1.0, 2.0, 3.0], 1.0),  # wrong length
        ([1.0, 0.0, 3.0, 4.0], 1.0),  # zero
        ([1.0, -2.0, 3.0, 4.0], 1.0),  # negative
        ([1.0, math.nan, 3.0, 4.0], 1.0),
        ([1.0, math.inf, 3.0, 4.0], 1.0),
        ([1.0, 2.0, 3.0, 4.0], 0.0),
        ([1.0, 2.0, 3.0, 4.0], -1.0),
        ([1.0, 2.0, 3.0, 4.0], math.nan),
        ([1.0, 2.0, 3.0, 4.0], math.inf),
    ],
)
def test_set_ema_validation(small_vgg: VGG19Features, values: list[float], tv: float) -> None:
    loss = PerceptualLoss(SCHEMA, small_vgg)
    with pytest.raises(ValueError, match="EMA values must be 4 finite positive numbers"):
        loss.set_ema(torch.tensor(values), tv=tv)
    assert not bool(loss.ema_initialized)


def test_set_ema_from_dict(small_vgg: VGG19Features) -> None:
    loss = PerceptualLoss(SCHEMA, small_vgg)
    loss.set_ema({"style/relu1_2": 3.0, "content/relu2_1": 1.0, "style/relu2_1": 4.0, "style/relu1_1": 2.0}, tv=0.5)
    assert loss.ema.tolist() == [1.0, 2.0, 3.0, 4.0] and float(loss.ema_tv) == 0.5
    layer_scales, tv_scale = loss.scales()
    assert torch.allclose(layer_scales, torch.tensor([10.0, 5.0, 10 / 3, 2.5]))  # (Σ EMA) / EMA_l
    assert float(tv_scale) == 20.0


def test_constructor_validation(small_vgg: VGG19Features) -> None:
    with pytest.raises(ValueError, match="ema_decay must be in"):
        PerceptualLoss(SCHEMA, small_vgg, ema_decay=1.5)
    with pytest.raises(ValueError, match="stops before relu4_4"):
        PerceptualLoss(LayerSchema(), small_vgg)


# ---------------------------------------------------------------------------------------------------------
# Real weights on real images


def test_caffe_losses_on_real_images(content_images: list[Path], style_images: list[Path]) -> None:
    by_name = {p.stem: p for p in style_images}
    photo = load_image(content_images[0], size=(64, 64))
    painting = load_image(by_name.get("vangogh_starry_night", style_images[0]), size=(64, 64))
    schema = LayerSchema()  # the paper's layers
    loss = PerceptualLoss(schema, VGG19Features("caffe", max_layer=schema.deepest))
    targets = loss.targets(photo, painting)

    at_content = loss(photo, targets, torch.ones(1, 4), update_ema=False).raw[0]
    at_style = loss(painting, targets, torch.ones(1, 4), update_ema=False).raw[0]
    # The photo has zero content loss and positive style losses; the painting the reverse.
    assert float(at_content[0]) == 0.0
    assert bool((at_content[1:] > 0).all())
    assert float(at_style[0]) > 0
    assert torch.allclose(at_style[1:], torch.zeros(3), atol=1e-3 * float(at_content[1:].min()))
    # Raw layer losses live on very different scales: the reason for the EMA normalisation.
    assert float(at_content[1:].max() / at_content[1:].min()) > 10

    # Halfway between the two, every term sits in between, and after one batch the normalised terms agree.
    mid = (photo + painting) / 2
    br = loss.train()(mid, targets, torch.ones(1, 4))
    assert bool((br.raw[0, 1:] < at_content[1:]).all()) and float(br.raw[0, 0]) < float(at_style[0])
    assert torch.allclose(br.normalized[0], br.raw[0].sum().expand(4), rtol=1e-5)
