"""The research scripts whose numbers the docs quote: the parts that must be exact to mean anything."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from adjustable_style.image import load_image
from adjustable_style.stylizer import Stylizer

ROOT = Path(__file__).resolve().parents[1]
CAT = ROOT / "examples" / "photo_cat.jpg"
MONET = ROOT / "examples" / "painting_monet_water_lilies.jpg"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("k", [2, 4])
def test_widen_keeps_the_function(k: int) -> None:
    """Net2Wider on the shipped T: k× the channels, the same output on a real photo and painting (no noise),
    and nearly the same with the symmetry-breaking noise; the wider net's copies can then diverge."""
    widen = _script("t_headroom").widen
    st = Stylizer.load("default", device="cpu", backend="torch")
    m = st.model
    g0, b0 = m.conditioning.base(st.embed(MONET))
    c = load_image(CAT, size=96)
    with torch.no_grad():
        ref = m.net(c, g0, b0)
        wide, idx = widen(m.net, m.config, k, noise=0.0)
        assert wide.cin_channels == k * (m.net.cin_channels - 3) + 3  # the last CIN (3 RGB channels) stays
        assert torch.allclose(wide(c, g0[:, idx], b0[:, idx]), ref, atol=1e-5)
        noisy, idx = widen(m.net, m.config, k, noise=1e-3)
        diff = (noisy(c, g0[:, idx], b0[:, idx]) - ref).abs().max()
    assert 0 < diff < 0.02
    w = noisy.residuals[0].conv1.conv.conv.weight
    c3 = m.net.residuals[0].conv1.conv.conv.weight.shape[0]
    assert not torch.equal(w[0], w[c3])  # copies differ: gradients can tell them apart
