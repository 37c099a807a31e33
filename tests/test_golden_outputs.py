"""The shipped models' outputs do not change when the code around them does.

``tests/data/golden_outputs.safetensors`` holds renders of both bundled models (``default`` and ``starry_night``)
made with this package at a known-good commit: slider rows, seeded variations, style strength, the base network's
own output, tiled rendering and a slider adapter. The test renders them again and compares. Here (x86-64, torch
2.13 CPU) they are bit-identical; the tolerance only allows for float kernels that differ between CPU models.

Regenerate (only when a change of output is intended, and say why in the commit):
    python tests/test_golden_outputs.py --write
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from adjustable_style.adapt import Adapter
from adjustable_style.stylizer import Stylizer

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "data" / "golden_outputs.safetensors"
PHOTO = ROOT / "examples" / "photo_cat.jpg"
PAINTING = ROOT / "examples" / "painting_hokusai_great_wave.jpg"
SIZE = 96


def render() -> dict[str, torch.Tensor]:
    """Every render the golden file holds, by name: float32 (N, 3, H, W)."""
    torch.set_num_threads(1)
    out: dict[str, torch.Tensor] = {}
    st = Stylizer.load("default", device="cpu")
    rows = [st.check_weights({n: v for n in st.style_layers}) for v in (0.0, 0.5, 1.0)]
    for n in st.style_layers:
        rows += [st.check_weights({m: (v if m == n else 0.5) for m in st.style_layers}) for v in (0.0, 1.0)]
    alphas = torch.cat(rows)
    out["default/rows"] = st.stylize_alphas(PHOTO, PAINTING, alphas, max_size=SIZE)
    out["default/variations"] = st.variations(PHOTO, PAINTING, n=3, seed=7, max_size=SIZE)[0]
    out["default/strength"] = st.stylize(PHOTO, PAINTING, {"relu3_4": 0.3}, strength=0.4, max_size=SIZE)
    out["default/base"] = st.stylize_base(PHOTO, PAINTING, max_size=SIZE)
    # An adapter with fixed offsets: the adapter path of the conditioning.
    g = torch.Generator().manual_seed(0)
    offsets = 0.05 * torch.randn(1 + st.schema.n_layers, 2 * st.model.net.cin_channels, generator=g)
    st.add_adapter(Adapter(offsets, st.style_digest(PAINTING), {"keys": "[]"}))
    out["default/adapter"] = st.stylize_alphas(PHOTO, PAINTING, alphas[:3], max_size=SIZE)
    st.remove_adapters()
    # Tiles with whole-image statistics: force them with a tiny memory budget.
    st.memory_limit_gb = 0.02
    out["default/tiled"] = st.stylize_alphas(PHOTO, PAINTING, alphas[:2], max_size=4 * SIZE)
    starry = Stylizer.load("starry_night", device="cpu")
    out["starry_night/rows"] = starry.stylize_alphas(
        PHOTO,
        PAINTING,
        torch.cat([starry.check_weights({n: v for n in starry.style_layers}) for v in (0.0, 1.0)]),
        max_size=SIZE,
    )
    return {k: v.contiguous() for k, v in out.items()}


def test_shipped_models_render_as_before() -> None:
    ref = load_file(str(GOLDEN))
    got = render()
    assert sorted(got) == sorted(ref)
    for name in ref:
        assert got[name].shape == ref[name].shape, name
        diff = float((got[name] - ref[name]).abs().max())
        assert diff <= 1e-5, f"{name}: max difference {diff:.2e}"


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/test_golden_outputs.py --write")
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    save_file(render(), str(GOLDEN))
    print(f"wrote {GOLDEN}")
