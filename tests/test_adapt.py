"""Slider adapters (``adjustable_style.adapt``): a real fit on real images, exactness, files, the command line."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from adjustable_style.adapt import (
    DESIGNS,
    Adapter,
    AdapterError,
    FitSettings,
    design_alphas,
    load_adapter,
    save_adapter,
    store_dir,
    store_path,
)
from adjustable_style.cli import main
from adjustable_style.measure import slider_strength
from adjustable_style.stylizer import Stylizer

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CAT = EXAMPLES / "photo_cat.jpg"
MONET = EXAMPLES / "painting_monet_water_lilies.jpg"
KANDINSKY = EXAMPLES / "painting_kandinsky_small_worlds_i.jpg"


@pytest.fixture(scope="module")
def st() -> Stylizer:
    return Stylizer.load("default", device="cpu")


@pytest.fixture(scope="module")
def fitted(st: Stylizer) -> tuple[Adapter, dict[str, float]]:
    """A real (short) fit on the cat photo for a held-out painting, and the sliders' strength before it."""
    before = slider_strength(st, CAT, KANDINSKY, size=128)
    # 6 steps are too few for the default's three α designs (2 steps each); the two per-slider designs show it
    return st.fit_adapter(KANDINSKY, photos=[CAT], steps=6, crop=96, batch=2, lr=0.02, design=("random", "one")), before


def test_zero_adapter_changes_nothing(st: Stylizer) -> None:
    a = st.random_alphas(3, seed=1)
    plain = st.stylize_alphas(CAT, MONET, a, max_size=96)
    n = 1 + len(st.schema.keys)
    st.add_adapter(Adapter(torch.zeros(n, 2 * st.model.net.cin_channels), st.style_digest(MONET)))
    try:
        assert st.has_adapter(MONET) and not st.has_adapter(KANDINSKY)
        assert torch.allclose(st.stylize_alphas(CAT, MONET, a, max_size=96), plain, atol=1e-6)
    finally:
        st.remove_adapters()


def test_folded_offsets_equal_the_adapter_for_every_painting(st: Stylizer, fitted: tuple) -> None:
    """fold_offsets puts a painting-independent D into Δ's bias exactly: the same images as D as an adapter."""
    ad, _ = fitted
    folded = Stylizer.load("default", device="cpu")
    folded.fold_offsets(ad.offsets)
    a = st.random_alphas(3, seed=2)
    for style in (MONET, KANDINSKY):
        st.add_adapter(Adapter(ad.offsets, st.style_digest(style)))
        try:
            want = st.stylize_alphas(CAT, style, a, max_size=96)
        finally:
            st.remove_adapters()
        got = folded.stylize_alphas(CAT, style, a, max_size=96)
        assert torch.allclose(got, want, atol=1e-5)
        assert float((got - st.stylize_alphas(CAT, style, a, max_size=96)).abs().max()) > 1e-3  # D does change it
    starry = Stylizer.load("starry_night", device="cpu")
    with pytest.raises(AdapterError, match="base network"):
        starry.fold_offsets(ad.offsets)
    if importlib.util.find_spec("onnxruntime") is not None:  # the ONNX graphs would keep the old weights
        folded.backend = "onnxruntime"
        with pytest.raises(AdapterError, match="backend='torch'"):
            folded.fold_offsets(ad.offsets)


def test_calibration_over_several_paintings(st: Stylizer) -> None:
    """A real 4-step calibration over two paintings: every design, per-sample targets; nothing in the model moves."""
    before = {k: v.clone() for k, v in st.model.state_dict().items()}
    d = st.fit_calibration([MONET, KANDINSKY], [CAT], steps=3, crop=96, batch=4, lr=0.02)
    assert d.shape == (1 + len(st.schema.keys), 2 * st.model.net.cin_channels)
    assert bool(torch.isfinite(d).all()) and float(d.abs().max()) > 0.01
    assert all(torch.equal(v, before[k]) for k, v in st.model.state_dict().items())
    with pytest.raises(ValueError, match="at least one painting"):
        st.fit_calibration([], [CAT], steps=1)


def test_ema_objective_is_the_one_optimize_uses(st: Stylizer) -> None:
    """objective="ema" fits D to Σ α_l·L_l / EMA_l (no base-network pass, style weight α): a different D from the
    recipe's objective on the same crops and α, recorded in the adapter; unknown objectives are refused."""
    kw = dict(steps=2, crop=96, batch=2, lr=0.02, design=("one",))
    ema = st.fit_adapter(MONET, photos=[CAT], objective="ema", **kw)
    base = st.fit_adapter(MONET, photos=[CAT], objective="base", **kw)
    assert ema.meta["objective"] == "ema" and base.meta["objective"] == "base"
    assert FitSettings().objective == "ema"  # adapters fit the objective the exact reference minimises
    assert bool(torch.isfinite(ema.offsets).all()) and float(ema.offsets.abs().max()) > 1e-3
    assert float((ema.offsets - base.offsets).abs().max()) > 1e-4
    with pytest.raises(ValueError, match="objective"):
        st.fit_adapter(MONET, steps=1, objective="gram")


def test_fit_makes_the_sliders_stronger_on_its_painting_only(st: Stylizer, fitted: tuple) -> None:
    ad, before = fitted
    assert ad.offsets.shape == (1 + len(st.schema.keys), 2 * st.model.net.cin_channels)
    assert bool(torch.isfinite(ad.offsets).all()) and float(ad.offsets.abs().max()) > 0
    assert not any(p.grad is not None for p in st.model.parameters())  # only D learned
    a = st.check_weights({"relu2_2": 1.0})
    other = st.stylize_alphas(CAT, MONET, a, max_size=96)
    st.add_adapter(ad)
    try:
        after = slider_strength(st, CAT, KANDINSKY, size=128)
        assert torch.equal(st.stylize_alphas(CAT, MONET, a, max_size=96), other)  # another painting: untouched
        # the same rows through run() (the video path) use the adapter when told the style
        x = torch.rand(1, 3, 64, 64)
        e = st.embedding(x, KANDINSKY)
        with_style, without = st.run(x, e, a, style=KANDINSKY), st.run(x, e, a)
        assert not torch.allclose(with_style, without)
    finally:
        st.remove_adapters()
    # fine texture is the quickest to adapt: its own-layer loss ratio (α 1 / α 0) drops clearly in 6 steps
    assert after["relu2_2"] < before["relu2_2"] - 0.05, (before, after)


def test_file_round_trip_and_checks(st: Stylizer, fitted: tuple, tmp_path: Path) -> None:
    ad, _ = fitted
    path = save_adapter(ad, tmp_path / "k.safetensors")
    back = load_adapter(path, st.model)
    assert torch.equal(back.offsets, ad.offsets) and back.style_digest == ad.style_digest
    assert back.meta["style"] == KANDINSKY.name and back.meta["steps"] == "6"
    assert [p.name for p in tmp_path.iterdir()] == ["k.safetensors"]  # no temporary file left behind
    with pytest.raises(AdapterError, match="must end in .safetensors"):
        save_adapter(ad, tmp_path / "k.pt")
    (tmp_path / "junk.safetensors").write_text("not a tensor file")
    with pytest.raises(AdapterError, match="not a slider adapter"):
        load_adapter(tmp_path / "junk.safetensors", st.model)
    with pytest.raises(AdapterError, match="another model"):
        st.add_adapter(Adapter(torch.zeros(3, 10), ad.style_digest))
    with pytest.raises(AdapterError, match="does not exist"):
        load_adapter(tmp_path / "missing.safetensors")


def test_only_models_with_a_base_network() -> None:
    starry = Stylizer.load("starry_night", device="cpu")
    with pytest.raises(AdapterError, match="base network"):
        starry.fit_adapter(MONET, steps=1)


def test_alpha_designs(st: Stylizer) -> None:
    keys = list(st.schema.keys)
    style = torch.tensor([k.startswith("style/") for k in keys])
    g = torch.Generator().manual_seed(0)
    for design in DESIGNS:
        a = design_alphas(8, keys, design, g)
        assert a.shape == (16, len(keys))
        assert bool((a[:, ~style] == 1).all()), "content weights stay 1"
        lo, hi = a[0::2][:, style], a[1::2][:, style]
        if design == "random":
            assert torch.allclose(lo + hi, torch.ones_like(lo)) and float(lo.std()) > 0.1
        elif design == "corners":
            assert bool((lo == 0).all() and (hi == 1).all())
        else:  # one slider 0 → 1, the others at 0.5
            assert bool(((hi - lo) != 0).sum(1).eq(1).all()) and set(lo.unique().tolist()) == {0.0, 0.5}
    with pytest.raises(ValueError, match="design"):
        st.fit_adapter(MONET, steps=1, design=("random", "sideways"))


def test_cli_adapt_then_stylize(st: Stylizer, fitted: tuple, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ad, _ = fitted
    path = save_adapter(ad, tmp_path / "k.safetensors")
    out = tmp_path / "o.png"
    assert (
        main(
            [
                "stylize",
                str(CAT),
                str(KANDINSKY),
                "-o",
                str(out),
                "--adapter",
                str(path),
                "--size",
                "96",
                "--backend",
                "torch",
            ]
        )
        == 0
    )
    assert out.is_file()
    wrong = tmp_path / "wrong.png"
    assert main(["stylize", str(CAT), str(MONET), "-o", str(wrong), "--adapter", str(path), "--size", "96"]) == 1
    assert "fitted for another painting" in capsys.readouterr().err and not wrong.exists()
    assert main(["adapt", str(MONET), "-o", str(tmp_path / "m.pt")]) == 1
    assert "must end in .safetensors" in capsys.readouterr().err
    # an existing adapter is kept unless --force (nothing a user made is lost)
    before = path.read_bytes()
    assert main(["adapt", str(KANDINSKY), "-o", str(path), "--steps", "1", "--crop", "64", "--no-report"]) == 0
    assert path.read_bytes() == before and "skipped" in capsys.readouterr().out
    # --force fits again; --objective base records the recipe's objective (the default is the paper's, "ema")
    args = ["adapt", str(KANDINSKY), "-o", str(path), "--steps", "1", "--crop", "64", "--no-report", "--force"]
    assert main([*args, "--objective", "base"]) == 0
    assert load_adapter(path).meta["objective"] == "base"


def test_adapter_folders(st: Stylizer, fitted: tuple, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ad, _ = fitted
    with pytest.raises(AdapterError, match="not a folder"):
        st.add_adapters_from(tmp_path / "none")
    with pytest.raises(AdapterError, match="holds no"):
        st.add_adapters_from(tmp_path)
    save_adapter(ad, tmp_path / "k.safetensors")
    try:
        assert st.add_adapters_from(tmp_path) == 1 and st.has_adapter(KANDINSKY)
    finally:
        st.remove_adapters()
    # the same painting re-encoded as PNG under another name is the same painting (matched by pixels)
    from PIL import Image

    png = tmp_path / "renamed.png"
    Image.open(KANDINSKY).save(png)
    st.add_adapter(ad)
    try:
        assert st.has_adapter(png)
    finally:
        st.remove_adapters()
    assert main(["evaluate", "--adapters", str(tmp_path / "none"), "-o", str(tmp_path / "r"), "--no-peer"]) == 1
    assert "not a folder" in capsys.readouterr().err and not (tmp_path / "r").exists()


def test_offsets_formula_and_file_mode(st: Stylizer, fitted: tuple, tmp_path: Path) -> None:
    """The model adds D as γ, β += [1, g · (2α − 1)] · D, g the model's gain for the half each α is in (the
    default's relu3_4 and relu4_4 halves differ); adapter files get the usual 0666 less the umask (0644)."""
    ad, _ = fitted
    a, e = st.random_alphas(2, seed=3), st.embed(MONET).expand(2, -1)
    halves = st.model.conditioning.half_gains
    assert not torch.equal(halves[0], halves[1])
    with torch.no_grad():
        g0, b0 = st.model.conditioning(a, e)
        g, b = st.model.cin_params(a, e, offsets=ad.offsets)
    s = 2 * a - 1
    dg, db = (torch.cat([torch.ones(2, 1), s * torch.where(s < 0, halves[0], halves[1])], 1) @ ad.offsets).chunk(2, 1)
    assert torch.allclose(g, g0 + dg, atol=1e-6) and torch.allclose(b, b0 + db, atol=1e-6)
    with pytest.raises(ValueError, match="delta=False"):
        st.model.cin_params(a, e, offsets=ad.offsets, delta=False)
    umask = os.umask(0)
    os.umask(umask)
    assert save_adapter(ad, tmp_path / "m.safetensors").stat().st_mode & 0o777 == 0o666 & ~umask


def test_adapt_does_not_import_the_stylizer() -> None:
    code = "import sys, adjustable_style.adapt; assert 'adjustable_style.stylizer' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_adapter_store(
    st: Stylizer, fitted: tuple, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """`adapt` without -o writes into the per-user store; stylize then uses it for that painting only, unless
    --no-adapter; the store is per model (a changed weight is another model)."""
    import copy

    import numpy as np
    from PIL import Image

    monkeypatch.setenv("ADJUSTABLE_STYLE_CACHE", str(tmp_path / "cache"))
    store = store_dir(st.model)
    assert store.parent == tmp_path / "cache" / "adapters"
    assert main(["adapt", str(KANDINSKY), "--steps", "1", "--crop", "64", "--no-report"]) == 0
    path = store_path(store, st.style_digest(KANDINSKY))
    assert path.is_file() and str(path) in capsys.readouterr().out
    save_adapter(fitted[0], path)  # the 6-step fit: a change the 8-bit output shows

    def run(style: Path, name: str, *extra: str) -> np.ndarray:
        out = tmp_path / name
        args = ["stylize", str(CAT), str(style), "-o", str(out), "--size", "96", "--backend", "torch", *extra]
        assert main(args) == 0
        return np.asarray(Image.open(out), dtype=np.float64)

    stored = run(KANDINSKY, "stored.png")
    assert "stored adapter" in capsys.readouterr().out
    plain = run(KANDINSKY, "plain.png", "--no-adapter")
    assert "stored adapter" not in capsys.readouterr().out
    explicit = run(KANDINSKY, "explicit.png", "--adapter", str(path))
    assert np.array_equal(stored, explicit) and np.abs(stored - plain).mean() > 0.1
    run(MONET, "monet.png")  # no adapter stored for this painting
    assert "stored adapter" not in capsys.readouterr().out
    assert (
        main(
            ["stylize", str(CAT), str(KANDINSKY), "-o", str(tmp_path / "x.png"), "--adapter", str(path), "--no-adapter"]
        )
        == 1
    )
    assert "contradict" in capsys.readouterr().err and not (tmp_path / "x.png").exists()

    # the Python API: opt in; remove_adapters turns the store off again
    st.use_adapter_store()
    try:
        assert st.has_adapter(KANDINSKY) and not st.has_adapter(MONET)
    finally:
        st.remove_adapters()
    assert not st.has_adapter(KANDINSKY)
    other = copy.deepcopy(st.model)
    with torch.no_grad():
        next(other.conditioning.parameters()).add_(1e-3)
    assert store_dir(other) != store
