"""Pair preparation (``adjustable_style.prepare``): a real fit on a real pair, what it keys on, the store, the CLI."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from adjustable_style.checks import InputError
from adjustable_style.cli import main
from adjustable_style.image import resize
from adjustable_style.losses import Targets
from adjustable_style.measure import layer_losses, slider_strength
from adjustable_style.prepare import (
    PRESETS,
    PreparationError,
    PrepareSettings,
    column_scale,
    end_alphas,
    end_weights,
    estimated_seconds,
    fit_pixels,
    load_preparation,
    orthogonal_step,
    preset,
    store_dir,
)
from adjustable_style.stylizer import Stylizer

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CAT = EXAMPLES / "photo_cat.jpg"
ASTRONAUT = EXAMPLES / "photo_astronaut.jpg"
MONET = EXAMPLES / "painting_monet_water_lilies.jpg"
KANDINSKY = EXAMPLES / "painting_kandinsky_small_worlds_i.jpg"
SIZE = 128


@pytest.fixture(scope="module")
def st() -> Stylizer:
    return Stylizer.load("default", device="cpu")


@pytest.fixture(scope="module")
def prepared(st: Stylizer) -> tuple[Stylizer, dict[str, float], dict[str, float]]:
    """A second Stylizer with cat × Kandinsky prepared at 128 px (the default, quick fit), and each slider's own-layer
    loss ratio on that pair before and after."""
    before = slider_strength(st, CAT, KANDINSKY, size=SIZE)
    sp = Stylizer.load("default", device="cpu")
    sp.prepare(CAT, KANDINSKY, max_size=SIZE)
    return sp, before, slider_strength(sp, CAT, KANDINSKY, size=SIZE)


def test_end_weights_interpolate_from_the_middle() -> None:
    a = torch.tensor([[1.0, 0.5, 0.5], [1.0, 0.0, 0.75], [1.0, 1.0, 0.25], [1.0, 1.0, 0.75], [1.0, 0.0, 0.0]])
    w = end_weights(a, [1, 2], (0.0, 1.0))  # 1, (down, up) per slider, Π down, Π up
    assert w.tolist() == [
        [1, 0, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 0.5, 0, 0],
        [1, 0, 1, 0.5, 0, 0, 0],
        [1, 0, 1, 0, 0.5, 0, 0.5],
        [1, 1, 0, 1, 0, 1, 0],
    ]


def test_preparation_strengthens_every_slider(prepared: tuple) -> None:
    """Fitted to the pair, every slider lowers its own layer's loss more than the model's own sliders do."""
    _, before, after = prepared
    for layer in before:
        assert after[layer] < before[layer] - 0.05, (layer, before[layer], after[layer])
        assert after[layer] < 0.9


def test_prepared_sliders_move_their_own_loss_down_the_whole_way(prepared: tuple) -> None:
    """Swept from 0 to 1 (the others at 0.5), each prepared slider's own loss falls across the whole range: its
    upper half too, which the quick fit gets right only because each end learns what it needs beyond the middle
    (the earlier quick fit, 3 steps on 128-px crops, fitted like the middle: `relu2_2`'s loss rose 8.6 % from 0.75
    to 1 on this pair; with relative ends +0.9 %; the shipped fit, 2 steps on the whole 128-px photo with orthogonal
    ends: −0.2 %, and −6 % from 0.5 to 1)."""
    sp = prepared[0]
    keys = list(sp.schema.keys)
    for layer in sp.style_layers:
        others = {n: 0.5 for n in sp.style_layers if n != layer}
        images, _ = sp.sweep(CAT, KANDINSKY, layer, steps=5, max_size=SIZE, weights=others)
        own = layer_losses(sp, images, CAT, KANDINSKY)[:, keys.index(f"style/{layer}")].tolist()
        assert all(b < 1.02 * a for a, b in zip(own, own[1:])), (layer, own)
        assert own[-1] < 0.97 * own[2] < 0.97 * own[0], (layer, own)


def test_preparation_applies_to_its_pair_only(st: Stylizer, prepared: tuple) -> None:
    """Another photo, size or painting does not find the preparation."""
    sp = prepared[0]
    top = {"relu2_2": 1.0}
    assert (
        sp.stylize(CAT, KANDINSKY, top, max_size=SIZE) - st.stylize(CAT, KANDINSKY, top, max_size=SIZE)
    ).abs().mean() > 2 / 255
    for content, style, size in ((ASTRONAUT, KANDINSKY, SIZE), (CAT, MONET, SIZE), (CAT, KANDINSKY, SIZE + 16)):
        assert not sp.find_preparation(content, style, size)
        assert torch.equal(
            sp.stylize(content, style, top, max_size=size), st.stylize(content, style, top, max_size=size)
        )
    assert sp.find_preparation(CAT, KANDINSKY, SIZE)
    # half strength mixes in the photo's own embedding: the preparation (fitted at full strength) is not used
    half = sp.stylize(CAT, KANDINSKY, top, strength=0.5, max_size=SIZE)
    assert torch.equal(half, st.stylize(CAT, KANDINSKY, top, strength=0.5, max_size=SIZE))


def test_store_keeps_and_finds_a_preparation(st: Stylizer, tmp_path: Path) -> None:
    a = Stylizer.load("default", device="cpu")
    folder = a.use_preparation_store(tmp_path / "store")
    prep = a.prepare(CAT, MONET, max_size=96, steps=1)
    files = list(folder.glob("*.safetensors"))
    assert len(files) == 1 and float(prep.meta["seconds"]) > 0
    assert torch.equal(load_preparation(files[0], a.model).ends, prep.ends)
    b = Stylizer.load("default", device="cpu")
    b.use_preparation_store(folder)
    assert b.find_preparation(CAT, MONET, 96)
    again = b.prepare(CAT, MONET, max_size=96, steps=1)
    assert again.meta["seconds"] == "0" and torch.equal(again.ends, prep.ends)
    w = {"relu4_4": 0.0}
    assert torch.equal(a.stylize(CAT, MONET, w, max_size=96), b.stylize(CAT, MONET, w, max_size=96))
    b.remove_preparations()
    assert torch.equal(b.stylize(CAT, MONET, w, max_size=96), st.stylize(CAT, MONET, w, max_size=96))
    files[0].write_bytes(b"not a preparation")
    with pytest.raises(PreparationError, match="not a pair preparation"):
        load_preparation(files[0])
    assert store_dir(st.model).parent.name == "prepared"


def test_cli_prepare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """stylize prepares a pair by default (the quick fit) and stores it; the next run finds it; --prepare names
    another fit; --no-prepare and --no-adapter give the model's own sliders."""
    monkeypatch.setenv("ADJUSTABLE_STYLE_CACHE", str(tmp_path / "cache"))

    def run(name: str, *extra: str) -> np.ndarray:
        out = tmp_path / name
        args = ["stylize", str(CAT), str(MONET), "-o", str(out), "--size", "96", "--backend", "torch"]
        assert main([*args, "--style-weights", "relu2_2=1,relu3_4=0.5,relu4_4=0.5", *extra]) == 0
        return np.asarray(Image.open(out), dtype=np.float64)

    fitted = run("fitted.png")  # the quick fit, by default
    out = capsys.readouterr().out
    assert "prepared in" in out and "--no-prepare skips it" in out
    assert len(list((tmp_path / "cache" / "prepared").glob("*/*.safetensors"))) == 1
    found = run("found.png")
    assert "sliders prepared for photo_cat.jpg × painting_monet_water_lilies.jpg earlier" in capsys.readouterr().out
    named = run("named.png", "--prepare", "quick")
    assert "earlier (stored)" in capsys.readouterr().out
    plain = run("plain.png", "--no-prepare")
    assert "sliders prepared" not in capsys.readouterr().out
    assert np.array_equal(run("no_adapter.png", "--no-adapter"), plain)
    assert "sliders prepared" not in capsys.readouterr().out
    assert np.array_equal(fitted, found) and np.array_equal(fitted, named) and np.abs(fitted - plain).mean() > 0.1
    for flags in (["--prepare", "--no-adapter"], ["--prepare", "--no-prepare"]):
        bad = ["stylize", str(CAT), str(MONET), "-o", str(tmp_path / "x.png"), *flags]
        assert main(bad) == 1
        assert "contradict" in capsys.readouterr().err and not (tmp_path / "x.png").exists()


def test_cli_prepares_one_pair_at_full_strength(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """Without --prepare, a style strength below 1 (which the fit is not for) and folders of images (a fit per pair)
    run the model's own sliders; with --prepare, folders are prepared pair by pair."""
    monkeypatch.setenv("ADJUSTABLE_STYLE_CACHE", str(tmp_path / "cache"))
    base = ["--size", "64", "--backend", "torch"]
    assert main(["stylize", str(CAT), str(MONET), "-o", str(tmp_path / "half.png"), "--strength", "0.5", *base]) == 0
    assert "preparing the sliders" not in capsys.readouterr().out
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / CAT.name).write_bytes(CAT.read_bytes())
    assert main(["stylize", str(photos), str(MONET), "-o", str(tmp_path / "plain"), *base]) == 0
    assert "preparing the sliders" not in capsys.readouterr().out and (tmp_path / "plain" / "photo_cat.png").is_file()
    assert not (tmp_path / "cache" / "prepared").exists()
    assert main(["stylize", str(photos), str(MONET), "-o", str(tmp_path / "fitted"), *base, "--prepare"]) == 0
    assert "prepared in" in capsys.readouterr().out
    assert len(list((tmp_path / "cache" / "prepared").glob("*/*.safetensors"))) == 1


def test_an_unreadable_stored_preparation_is_ignored(tmp_path: Path) -> None:
    """A file in the store that is not a preparation of this format (an older version's, a damaged one) counts as
    absent: renders use the model's own sliders, and preparing the pair again replaces it."""
    a = Stylizer.load("default", device="cpu")
    folder = a.use_preparation_store(tmp_path / "store")
    a.prepare(CAT, MONET, max_size=96, steps=1)
    (path,) = folder.glob("*.safetensors")
    path.write_bytes(b"an older preparation")
    b = Stylizer.load("default", device="cpu")
    b.use_preparation_store(folder)
    assert not b.find_preparation(CAT, MONET, 96)
    assert float(b.prepare(CAT, MONET, max_size=96, steps=1).meta["seconds"]) > 0
    assert load_preparation(path, b.model).ends.shape[0] == 3 + 2 * len(b.style_layers)


def test_corner_stage_leaves_the_single_sliders_alone(st: Stylizer) -> None:
    """The corner terms are fitted after the middle and the single sliders' ends, with those fixed: with or without
    the corner stage the other rows are the same, and without it the corner rows stay zero."""
    a = Stylizer.load("default", device="cpu")
    without = a.prepare(CAT, MONET, max_size=96, steps=2, corner_steps=0, bf16=False).ends
    b = Stylizer.load("default", device="cpu")
    with_corners = b.prepare(CAT, MONET, max_size=96, steps=2, corner_steps=2, bf16=False).ends
    assert torch.equal(without[:-2], with_corners[:-2])
    assert not without[-2:].any() and with_corners[-2:].abs().amax(1).min() > 0


def test_bfloat16_fit_matches_float32(st: Stylizer) -> None:
    """A fit in bfloat16 autocast (the default where the hardware has it) renders what the float32 fit does: with each
    end's row learning from its point's whole objective the two differ far less than either differs from the model's
    own sliders; with relative ends (the shipped fits) an end learns from the small difference of two gradients,
    whose rounding moves Adam's few large steps more (at 96 px ~28 % of the preparation's effect), still well below
    the effect itself."""
    w = {"relu2_2": 1.0, "relu3_4": 0.0}
    own = st.stylize(CAT, MONET, w, max_size=96)
    for relative, bound in ((False, 0.15), (True, 0.4)):
        renders = []
        for bf16 in (False, True):
            s = Stylizer.load("default", device="cpu")
            s.prepare(CAT, MONET, max_size=96, preset="full", bf16=bf16, relative_ends=relative)
            renders.append(s.stylize(CAT, MONET, w, max_size=96))
        effect = (renders[0] - own).abs().mean()
        assert effect > 2 / 255 and (renders[1] - renders[0]).abs().mean() < bound * effect, relative


def test_presets_name_the_fits() -> None:
    assert preset("full") == PrepareSettings() and not PrepareSettings().precondition
    quick = preset("quick")
    assert quick.precondition and quick.steps < PRESETS["full"].steps
    # crops of five eighths of the photo, 128 to 256 px; the full fit's of up to 256 px
    assert [quick.crop_side(n) for n in (96, 256, 384, 512, 1024)] == [96, 128, 192, 256, 256]
    assert [preset("full").crop_side(n) for n in (96, 256, 512)] == [96, 256, 256]
    assert preset("12") == preset(12) == PrepareSettings(steps=12)
    medium = preset("medium")  # between the two: more steps than quick on larger crops, fewer than full
    assert medium.precondition and quick.steps < medium.steps < PRESETS["full"].steps
    assert quick.crop_side(256) < medium.crop_side(256) < preset("full").crop_side(256)
    # quick's sliders step orthogonally to other layers' gradients (relu4_4 to relu2_2's only); the longer fits need not
    assert quick.orthogonal_ends["relu4_4"] == ("relu2_2",) and len(quick.orthogonal_ends["relu2_2"]) == 2
    assert not PRESETS["full"].orthogonal_ends
    # quick gives relu4_4's ends a larger step of their own, relu2_2's top end a smaller step, all its crops half
    # the photo (128 px at 256 px), and rounds the deeper layers' Gram matrices in bfloat16 (relu2_2's aim
    # suffered from it)
    assert quick.solo_ends == ("relu4_4",) and not PRESETS["medium"].solo_ends
    assert (quick.solo_steps, quick.solo_step, quick.total_steps) == (1, 2.0, 4)
    assert quick.top_step == {"relu2_2": 0.7}
    assert "relu2_2" not in quick.low_precision_gram and not PRESETS["full"].low_precision_gram
    assert [quick.crop_side(n, corners=True) for n in (96, 256, 384)] == [96, 128, 192]
    assert preset("full").crop_side(256, corners=True) == 256
    # quick and medium fit against the low-rank VGG19, full against VGG19 itself
    assert [PRESETS[n].loss_net for n in ("quick", "medium", "full")] == ["lowrank", "lowrank", "vgg19"]
    seconds = {name: estimated_seconds(fit, 256) for name, fit in PRESETS.items()}
    assert 1 < seconds["quick"] < 3 < seconds["medium"] < seconds["full"] < 60, seconds
    assert seconds["quick"] < estimated_seconds(replace(quick, loss_net="vgg19"), 256)
    # every fit ends with a pixel step on the middle's and the ends' images, up to 384 px (its cost grows with the
    # photo's area; the γ, β steps' with their crops', five eighths of the photo, up to 256 px)
    assert all((fit.pixel_steps, fit.pixel_lr, fit.pixel_side) == (1, 0.035, 384) for fit in PRESETS.values())
    assert [quick.pixel_steps_at(n) for n in (256, 384, 385, 1024)] == [1, 1, 0, 0]
    assert estimated_seconds(quick, 384) > estimated_seconds(quick, 1024) > 1.3 * seconds["quick"]
    assert seconds["quick"] > estimated_seconds(replace(quick, pixel_steps=0), 256) + 0.5
    for bad, says in (("slow", "quick or medium or full"), ("0", "steps >= 1"), (-2, "steps >= 1")):
        with pytest.raises(InputError, match=says):
            preset(bad)


def test_a_quick_fit_does_not_stand_in_for_a_full_one(tmp_path: Path) -> None:
    """A stored fit is used for a request of no more work than it had (a full fit serves a quick request); a quick one
    is fitted again when the full fit is asked for, and the store then holds the full one."""
    a = Stylizer.load("default", device="cpu")
    folder = a.use_preparation_store(tmp_path / "store")
    quick = a.prepare(CAT, MONET, max_size=96, preset="quick")
    assert a.find_preparation(CAT, MONET, 96, preset="quick") and not a.find_preparation(CAT, MONET, 96, preset=4)
    full = a.prepare(CAT, MONET, max_size=96, preset=4, corner_steps=1)  # 4 + 1 steps, more than quick's 2 + 1
    assert float(full.meta["seconds"]) > 0 and not torch.equal(full.ends, quick.ends)
    b = Stylizer.load("default", device="cpu")
    b.use_preparation_store(folder)
    again = b.prepare(CAT, MONET, max_size=96, preset="quick", steps=1, corner_steps=1)
    assert again.meta["seconds"] == "0" and torch.equal(again.ends, full.ends)
    # a fit against the low-rank VGG19 serves a request for one, not one for VGG19 itself
    assert quick.meta["loss_net"] == "lowrank" and full.meta["loss_net"] == "vgg19"
    done = {**quick.meta, "steps": "9", "corner_steps": "9"}
    assert PRESETS["quick"].covered_by(done, 96) and not replace(PRESETS["quick"], loss_net="vgg19").covered_by(
        done, 96
    )
    # as many shared steps without the solo step asked for: fitted again; more shared steps serve
    assert quick.meta["solo_ends"] == "relu4_4" and PRESETS["quick"].covered_by(quick.meta, 96)
    assert not PRESETS["quick"].covered_by({**quick.meta, "solo_ends": ""}, 96)
    assert PRESETS["quick"].covered_by({**quick.meta, "solo_ends": "", "steps": "3"}, 96)
    # ... or with fewer solo steps than asked for (fits stored before the count was kept had one)
    assert quick.meta["solo_steps"] == "1"
    two = replace(PRESETS["quick"], solo_steps=2)
    assert not two.covered_by(quick.meta, 96) and not two.covered_by({**quick.meta, "solo_steps": "1"}, 96)
    assert not two.covered_by({k: v for k, v in quick.meta.items() if k != "solo_steps"}, 96)


def test_column_scale_follows_what_the_sliders_move(st: Stylizer) -> None:
    """The quick fit's per-column step: RMS 1, never zero, largest where Λ moves γ, β most as the sliders move."""
    e = st.embed(MONET)
    s = column_scale(st.model, e, st.alpha_range)
    assert s.shape == (2 * st.model.net.cin_channels,)
    assert abs(float(s.pow(2).mean()) - 1) < 1e-4 and float(s.min()) > 0.05
    lo, hi = st.alpha_range
    a = torch.full((2, len(st.schema.keys)), (lo + hi) / 2)
    a[0, 1:], a[1, 1:] = lo, hi  # every style slider at its bottom, then at its top
    with torch.no_grad():
        g, b = st.model.cin_params(a, e.expand(2, -1))
    moved = torch.cat([g, b], 1).diff(dim=0).abs()[0]
    big, small = moved > moved.quantile(0.9), moved < moved.quantile(0.1)
    assert float(s[big].mean()) > 2 * float(s[small].mean())


def test_top_step_sizes_the_top_ends_only() -> None:
    """``top_step`` scales the first stage's steps of each slider's top end (E's rows 2, 4, 6) and nothing else;
    given per layer, only that slider's top end (row 2 for relu2_2)."""
    rows = {}
    for top in (1.0, 1e-4, {"relu2_2": 1e-4}):
        s = Stylizer.load("default", device="cpu")
        rows[str(top)] = s.prepare(
            CAT, MONET, max_size=96, preset="full", steps=1, corner_steps=0, bf16=False, top_step=top
        ).ends
    tops, others = [2, 4, 6], [0, 1, 3, 5]
    assert rows["0.0001"][tops].abs().max() < 1e-3 * rows["1.0"][tops].abs().max()
    assert torch.equal(rows["0.0001"][others], rows["1.0"][others])  # the first step: each row follows its own gradient
    one = rows[str({"relu2_2": 1e-4})]
    assert one[2].abs().max() < 1e-3 * rows["1.0"][2].abs().max()
    assert torch.equal(one[[0, 1, 3, 4, 5, 6]], rows["1.0"][[0, 1, 3, 4, 5, 6]])
    with pytest.raises(InputError, match="relu9_9, not a style layer"):
        Stylizer.load("default", device="cpu").prepare(CAT, MONET, max_size=96, steps=1, top_step={"relu9_9": 0.5})


def test_orthogonal_step_leaves_the_other_layers_losses_to_first_order() -> None:
    """A listed slider's ends step orthogonally to the other sliders' layer gradients (so, to first order, the
    other layers' losses do not change), keep their component along their own layer's gradient, and every other
    row of the step is returned unchanged; projecting twice changes nothing more."""
    g = torch.Generator().manual_seed(0)
    step, grads = torch.randn(7, 40, generator=g), torch.randn(3, 40, generator=g)
    out = orthogonal_step(step, grads, {0: [1, 2]})
    assert (out[1:3] @ grads[1:].T).abs().max() < 1e-5 * step.abs().max() * grads.abs().max()
    assert (out[1:3] @ grads[0]).abs().min() > 0.1 * (step[1:3] @ grads[0]).abs().min()
    assert torch.equal(out[[0, 3, 4, 5, 6]], step[[0, 3, 4, 5, 6]])
    assert torch.allclose(orthogonal_step(out, grads, {0: [1, 2]}), out, atol=1e-5)
    both = orthogonal_step(step, grads, {0: [1, 2], 1: [0, 2]})
    assert (both[3:5] @ grads[[0, 2]].T).abs().max() < 1e-4 and torch.equal(both[5:], step[5:])
    part = orthogonal_step(step, grads, {2: [0]})  # slider 2's ends off slider 0's gradient only
    assert (part[5:] @ grads[0]).abs().max() < 1e-4 and (part[5:] @ grads[1]).abs().min() > 1e-3
    assert torch.equal(part[:5], step[:5])


def test_orthogonal_ends_change_only_the_listed_sliders_rows() -> None:
    """On a real pair, ``orthogonal_ends`` changes the first step of the listed slider's ends (E's rows 1, 2 for
    relu2_2, 5, 6 for relu4_4) and no other row; an unknown layer or a wrong type is a one-line error."""
    plain, ortho, part = (
        Stylizer.load("default", device="cpu")
        .prepare(CAT, MONET, max_size=96, preset="full", steps=1, corner_steps=0, bf16=False, orthogonal_ends=names)
        .ends
        for names in ((), ("relu2_2",), {"relu4_4": ("relu2_2",)})
    )
    assert not torch.allclose(ortho[1:3], plain[1:3], atol=1e-4)
    assert torch.equal(ortho[[0, 3, 4, 5, 6]], plain[[0, 3, 4, 5, 6]])  # the first step: each row its own gradient
    assert not torch.allclose(part[5:7], plain[5:7], atol=1e-4) and torch.equal(part[:5], plain[:5])
    with pytest.raises(InputError, match="relu9_9, not a style layer"):
        Stylizer.load("default", device="cpu").prepare(CAT, MONET, max_size=96, steps=1, orthogonal_ends=("relu9_9",))
    with pytest.raises(InputError, match="relu9_9, not a style layer"):
        Stylizer.load("default", device="cpu").prepare(CAT, MONET, max_size=96, orthogonal_ends={"relu2_2": "relu9_9"})
    for bad in (3, {"relu2_2": ()}, {"relu2_2": ["relu2_2"]}, {"relu2_2": [3]}):
        with pytest.raises(InputError, match="orthogonal_ends must be style layer names"):
            PrepareSettings(orthogonal_ends=bad)
    assert PrepareSettings(orthogonal_ends="relu2_2").orthogonal_ends == ("relu2_2",)
    assert PrepareSettings(orthogonal_ends={"relu4_4": "relu2_2"}).orthogonal_ends == {"relu4_4": ("relu2_2",)}


def test_solo_ends_step_only_their_sliders_rows() -> None:
    """``solo_ends`` gives the listed sliders' ends ``solo_steps`` more steps of their own after the shared steps, of
    ``solo_step`` times Adam's size: on a real pair they change relu4_4's ends (E's rows 5, 6) and no other row (the
    corners' crop sides: the presets test). Bad values are one-line errors."""
    s = Stylizer.load("default", device="cpu")

    def fit(**kw: object) -> torch.Tensor:
        s.remove_preparations()
        common = dict(preset="quick", corner_steps=0, bf16=False, crop_share=0.8, top_step=1.0, solo_step=1.0)
        return s.prepare(CAT, MONET, max_size=160, **{**common, "solo_steps": 1, **kw}).ends  # type: ignore[arg-type]

    plain, solo = fit(solo_ends=()), fit(solo_ends=("relu4_4",))
    assert torch.equal(plain[:5], solo[:5]) and not solo[-2:].any()
    change = (solo[5:7] - plain[5:7]).abs().amax(1)
    assert float(change.min()) > 0.1 * float(plain[5:7].abs().amax())  # a step of Adam's size, not a rounding
    # a step 1.5 times the size: Adam's update (same moments) scaled by the learning rate, exactly
    larger = fit(solo_ends=("relu4_4",), solo_step=1.5)
    assert torch.equal(larger[:5], plain[:5])
    assert torch.allclose(larger[5:7] - plain[5:7], 1.5 * (solo[5:7] - plain[5:7]), rtol=1e-4, atol=1e-6)
    two = fit(solo_ends=("relu4_4",), solo_steps=2)  # a second step, on a crop of its own
    assert torch.equal(two[:5], plain[:5]) and float((two[5:7] - solo[5:7]).abs().amax()) > 0.5 * float(change.min())
    meta = s.prepare(CAT, MONET, max_size=96, steps=1, corner_steps=0, solo_ends=("relu4_4",), solo_steps=3).meta
    assert (meta["solo_ends"], meta["solo_steps"]) == ("relu4_4", "3")
    with pytest.raises(InputError, match="relu9_9, not a style layer"):
        Stylizer.load("default", device="cpu").prepare(CAT, MONET, max_size=96, steps=1, solo_ends=("relu9_9",))
    for name in ("solo_ends", "low_precision_gram"):
        for bad in (3, ("relu4_4", "relu4_4"), {"relu4_4": 1}):
            with pytest.raises(InputError, match=f"{name} must be distinct style layer names"):
                PrepareSettings(**{name: bad})
    with pytest.raises(InputError, match="relu9_9, not a style layer"):
        Stylizer.load("default", device="cpu").prepare(CAT, MONET, max_size=96, steps=1, low_precision_gram="relu9_9")
    for bad in (0, 1.5, "half"):
        with pytest.raises(InputError, match="corner_crop_share"):
            PrepareSettings(corner_crop_share=bad)
    for name, bad in (("solo_steps", 0), ("solo_steps", 1.5), ("solo_step", 0), ("solo_step", -1.0)):
        with pytest.raises(InputError, match=name):
            PrepareSettings(**{name: bad})
    assert PrepareSettings(solo_ends="relu4_4").solo_ends == ("relu4_4",)


def test_pixel_ends_step_each_end_down_its_own_objective(tmp_path: Path) -> None:
    """Pixel steps after the γ, β fit: a residual per single slider end at the rendered size, each lowering its end's
    objective (the paper's, with total variation, as optimize takes it); a render adds them with the ends' weights
    (nothing at the middle); the store keeps them; a fit without them does not serve a request for them; a photo
    rendered larger than pixel_side gets none."""
    a = Stylizer.load("default", device="cpu")
    folder = a.use_preparation_store(tmp_path / "store")
    fit = {"steps": 1, "corner_steps": 0, "bf16": False, "loss_net": "vgg19"}
    plain = a.prepare(CAT, MONET, max_size=96, **fit, pixel_steps=0)
    assert plain.pixels is None and plain.meta["pixel_steps"] == "0"
    prep = a.prepare(CAT, MONET, max_size=96, **fit, pixel_steps=2, pixel_lr=0.05)
    assert float(prep.meta["seconds"]) > 0, "a fit without pixel steps stood in for one with them"
    n = 1 + 2 * len(a.style_layers)  # the middle, then each slider's two ends
    photo = resize(a.image(CAT), max_size=96)
    assert prep.pixels is not None and prep.pixels.shape == (n, 3, *photo.shape[-2:])
    assert prep.meta["pixel_steps"] == "2" and float(prep.pixels.float().abs().mean()) > 1 / 255

    # Each end's objective is lower with its residual than without (the loss the fit used: VGG19, float32).
    loss = a.exported.loss_module()
    alphas = end_alphas(a.model, a.alpha_range)[:n]
    with torch.no_grad():
        tg = loss.targets(photo, a.style_image(MONET))
        tg = Targets({k: v.expand(n, *v.shape[1:]) for k, v in tg.content.items()}, tg.style)
        start = a.stylize_alphas(photo, MONET, alphas, max_size=None) - a.pixel_residual(photo, MONET, alphas, None)
        before = loss(start.clamp(0, 1), tg, alphas, update_ema=False).total
        after = loss(a.stylize_alphas(photo, MONET, alphas, max_size=None), tg, alphas, update_ema=False).total
    assert bool((after < before).all()), (before, after)

    # At the middle the residual is the middle's; halfway to an end, the middle's and half the end's beyond it.
    mid = a.check_weights(dict.fromkeys(a.style_layers, 0.5))
    assert torch.equal(a.pixel_residual(CAT, MONET, mid, 96)[0], prep.pixels[0].float())
    half = a.check_weights({"relu2_2": 0.25, "relu3_4": 0.5, "relu4_4": 0.5})
    want = prep.pixels[0].float() + 0.5 * prep.pixels[1].float()
    assert torch.allclose(a.pixel_residual(CAT, MONET, half, 96)[0], want, atol=1e-6)

    # Stored and read back; fitted from the same E, the residuals equal fit_pixels' own.
    b = Stylizer.load("default", device="cpu")
    b.use_preparation_store(folder)
    again = b.prepare(CAT, MONET, max_size=96, **fit, pixel_steps=2, pixel_lr=0.05)
    assert again.meta["seconds"] == "0" and torch.equal(again.pixels, prep.pixels)
    settings = replace(preset("full"), **fit, pixel_steps=2, pixel_lr=0.05)
    with torch.no_grad():
        targets = loss.style_targets(a.style_image(MONET))
    direct = fit_pixels(a.model, loss, photo, a.embed(MONET), targets, a.alpha_range, prep.ends, settings)
    assert torch.equal(direct, prep.pixels)

    # Above pixel_side: no pixel steps, and a γ, β fit serves the request.
    big = a.prepare(CAT, MONET, max_size=128, **fit, pixel_steps=2, pixel_side=100)
    assert big.pixels is None and big.meta["pixel_steps"] == "0"
    assert replace(settings, pixel_side=100).covered_by(big.meta, 128)
    assert not settings.covered_by(plain.meta, 96) and settings.covered_by(prep.meta, 96)
