"""LowRankVGG19: the cheaper loss network the quick pair preparation fits against, checked against VGG19 itself on
real photos and paintings — its features, its Gram matrices and, what a fit follows, its gradients."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from adjustable_style.checks import InputError
from adjustable_style.image import load_image
from adjustable_style.losses import gram
from adjustable_style.prepare import PrepareSettings, fit_loss
from adjustable_style.stylizer import Stylizer
from adjustable_style.vgg import LowRankVGG19, VGG19Features

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CAT = EXAMPLES / "photo_cat.jpg"
MONET = EXAMPLES / "painting_monet_water_lilies.jpg"
KANDINSKY = EXAMPLES / "painting_kandinsky_small_worlds_i.jpg"
DEEP = ("relu3_4", "relu4_4")


@pytest.fixture(scope="module")
def st() -> Stylizer:
    return Stylizer.load("default", device="cpu")


@pytest.fixture(scope="module")
def nets(st: Stylizer) -> tuple[VGG19Features, LowRankVGG19]:
    vgg = st.exported.loss_module().vgg
    return vgg, LowRankVGG19(vgg)


@pytest.fixture(scope="module")
def images(content_images: list[Path], st: Stylizer) -> list[torch.Tensor]:
    """Real photos, a painting, and a stylization of a photo by the default model: what a fit measures."""
    photos = [_square(load_image(p, max_size=256)) for p in content_images[:2]]
    painting = _square(load_image(KANDINSKY, max_size=256))
    stylized = st.stylize(photos[0], MONET, max_size=128)
    return [*photos, painting, stylized]


def _square(x: torch.Tensor, side: int = 128) -> torch.Tensor:
    h, w = x.shape[-2:]
    return x[..., (h - side) // 2 : (h + side) // 2, (w - side) // 2 : (w + side) // 2]


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).pow(2).sum() / b.pow(2).sum())


def test_shallow_layers_are_vgg19_itself(nets: tuple, images: list[torch.Tensor]) -> None:
    vgg, lowrank = nets
    x = torch.cat(images)
    a, b = vgg(x, ["relu1_2", "relu2_2"]), lowrank(x, ["relu1_2", "relu2_2"])
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_features_and_grams_match_vgg19(nets: tuple, images: list[torch.Tensor]) -> None:
    """Relative squared error of the deep features and of their Gram matrices (measured on these images: features
    0.017–0.022 / 0.13–0.15, Grams 0.003–0.008 / 0.07–0.14 at relu3_4 / relu4_4), against the same error between
    two different photos' Gram matrices (0.8)."""
    vgg, lowrank = nets
    with torch.no_grad():
        for x in images:
            a, b = vgg(x, DEEP), lowrank(x, DEEP)
            assert _rel(b["relu3_4"], a["relu3_4"]) < 0.06 and _rel(b["relu4_4"], a["relu4_4"]) < 0.3
            assert _rel(gram(b["relu3_4"]), gram(a["relu3_4"])) < 0.03
            assert _rel(gram(b["relu4_4"]), gram(a["relu4_4"])) < 0.2
        other = vgg(images[1], DEEP)
        assert _rel(gram(other["relu4_4"]), gram(vgg(images[0], DEEP)["relu4_4"])) > 0.5


def test_gradients_aim_like_vgg19(nets: tuple, images: list[torch.Tensor]) -> None:
    """What a fit follows: each style layer's loss gradient with respect to a stylized image, towards a painting's
    Gram matrix, points where VGG19's does (pixel gradients; measured 0.89–1.0; the same image's gradient under
    VGG19 at another photo is the control)."""
    vgg, lowrank = nets
    painting, stylized = images[2], images[3]

    def grad(net: torch.nn.Module, x: torch.Tensor, layer: str) -> torch.Tensor:
        with torch.no_grad():
            target = gram(net(painting, [layer])[layer])
        x = x.clone().requires_grad_(True)
        (gram(net(x, [layer])[layer]) - target).pow(2).sum().backward()
        return x.grad.flatten()

    for layer in ("relu2_2", *DEEP):
        cos = float(F.cosine_similarity(grad(vgg, stylized, layer), grad(lowrank, stylized, layer), 0))
        assert cos > 0.8, (layer, cos)
    control = float(F.cosine_similarity(grad(vgg, stylized, "relu4_4"), grad(vgg, images[0], "relu4_4"), 0))
    assert control < 0.5


def test_only_for_the_weights_it_was_distilled_from(st: Stylizer) -> None:
    """Other VGG19 weights or pooling: a clear error, and a fit asking for it falls back to the model's VGG19."""
    for vgg in (VGG19Features("random", max_layer="relu4_4"), VGG19Features(pooling="avg", max_layer="relu4_4")):
        with pytest.raises(InputError, match="distilled from VGG19's original weights"):
            LowRankVGG19(vgg)
    loss = st.exported.loss_module()
    lowrank = fit_loss(loss, PrepareSettings(loss_net="lowrank"))
    assert isinstance(lowrank.vgg, LowRankVGG19) and torch.equal(lowrank.ema, loss.ema)
    assert fit_loss(loss, PrepareSettings(loss_net="vgg19")) is loss
    with pytest.raises(InputError, match="loss_net must be"):
        PrepareSettings(loss_net="resnet")
