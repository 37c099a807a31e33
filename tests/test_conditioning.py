"""Λ's per-half slider gains (ModelConfig.slider_gain_low/high) on the shipped default model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from adjustable_style.checks import InputError
from adjustable_style.conditioning import BaseDeltaConditioning
from adjustable_style.image import load_image
from adjustable_style.model_files import resolve_model
from adjustable_style.stylizer import Stylizer

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CAT = EXAMPLES / "photo_cat.jpg"
KANDINSKY = EXAMPLES / "painting_kandinsky_small_worlds_i.jpg"


@pytest.fixture(scope="module")
def st() -> Stylizer:
    return Stylizer.load("default", device="cpu", backend="torch")


def _params(lam: BaseDeltaConditioning, alpha: torch.Tensor, e: torch.Tensor, low, high) -> torch.Tensor:
    saved = lam.half_gains.clone()
    try:
        lam.half_gains.copy_(torch.tensor([low, high], dtype=torch.float32))
        return torch.cat(lam(alpha, e), dim=1)
    finally:
        lam.half_gains.copy_(saved)


def test_each_half_of_a_slider_has_its_own_gain(st: Stylizer) -> None:
    lam = st.model.conditioning
    assert isinstance(lam, BaseDeltaConditioning)
    e = st.embed(KANDINSKY)
    j = list(st.schema.keys).index("style/relu3_4")
    ones = [1.0] * lam.n_alpha
    high = [*ones[:j], 0.0, *ones[j + 1 :]]
    below, above = torch.full((1, lam.n_alpha), 0.5), torch.full((1, lam.n_alpha), 0.5)
    below[0, j], above[0, j] = 0.2, 0.9
    with torch.no_grad():
        # Below the middle the upper half's gain changes nothing; above it, it scales that slider's term alone,
        # linearly: half the gain gives γ, β half-way between gain 1 and gain 0.
        assert torch.equal(_params(lam, below, e, ones, high), _params(lam, below, e, ones, ones))
        g1, g0 = _params(lam, above, e, ones, ones), _params(lam, above, e, ones, high)
        half = _params(lam, above, e, ones, [*ones[:j], 0.5, *ones[j + 1 :]])
        assert (g1 - g0).abs().max() > 1e-2
        torch.testing.assert_close(half, (g1 + g0) / 2, atol=1e-5, rtol=0)
        # At the middle neither gain matters.
        mid = torch.full((1, lam.n_alpha), 0.5)
        torch.testing.assert_close(_params(lam, mid, e, high, high), _params(lam, mid, e, ones, ones))


def _copy_default(tmp_path: Path, **model: object) -> Path:
    out = tmp_path / "m"
    shutil.copytree(resolve_model("default"), out)
    config = json.loads((out / "config.json").read_text())
    config["model"].update(model)
    (out / "config.json").write_text(json.dumps(config))
    return out


def test_gains_come_from_the_export_config(st: Stylizer, tmp_path: Path) -> None:
    low, high = st.model.conditioning.half_gains.tolist()
    high[-1] = high[-1] / 2
    other = Stylizer.load(_copy_default(tmp_path, slider_gain_low=low, slider_gain_high=high), backend="torch")
    assert torch.equal(other.model.conditioning.half_gains, torch.tensor([low, high]))
    photo = load_image(CAT, size=96)
    with torch.no_grad():
        for v, same in ((0.0, True), (1.0, False)):
            w = {"relu4_4": v}
            a, b = st.stylize(photo, KANDINSKY, weights=w), other.stylize(photo, KANDINSKY, weights=w)
            assert torch.equal(a, b) == same


@pytest.mark.parametrize(
    "model, message",
    [
        ({"slider_gain_high": [1.0, 1.0]}, "one factor per loss layer"),
        ({"slider_gain_low": [1.0, 1.0, -1.0, 1.0]}, "slider_gain_low[2]"),
        ({"slider_gain_low": [1.0] * 4, "delta_form": "input"}, "delta_form=bilinear"),
    ],
)
def test_bad_gains_are_refused_in_one_line(tmp_path: Path, model: dict, message: str) -> None:
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace("]", r"\]")) as info:
        Stylizer.load(_copy_default(tmp_path, **model), backend="torch")
    assert "\n" not in str(info.value)
