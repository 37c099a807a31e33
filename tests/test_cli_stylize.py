"""``adjustable-style export | stylize | variations | sweep`` through ``main(argv)`` on the example images."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from adjustable_style.cli import main
from adjustable_style.model import rename_legacy_keys

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CAT = str(EXAMPLES / "photo_cat.jpg")
ROCKET = str(EXAMPLES / "photo_rocket_launch.jpg")
WAVE = str(EXAMPLES / "painting_hokusai_great_wave.jpg")
MONET = str(EXAMPLES / "painting_monet_water_lilies.jpg")


def _size(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        return im.size


def _expected(path: str, max_size: int) -> tuple[int, int]:
    w, h = _size(Path(path))
    s = max_size / max(w, h)
    return round(w * s), round(h * s)


def test_export(tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "model"
    assert main(["export", str(tiny_checkpoint), "-o", str(out), "--fp32"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    assert f"wrote {out}" in capsys.readouterr().out
    assert main(["export", str(tmp_path / "missing.ckpt"), "-o", str(tmp_path / "m2")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not found" in err and not (tmp_path / "m2").exists()


def test_stylize(tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sub" / "out.png"
    argv = ["stylize", CAT, WAVE, "--model", str(tiny_model_dir), "--size", "96", "-o", str(out)]
    assert main([*argv, "--style-weights", "relu2_2=0.2,relu4_4=1", "--strength", "0.8", "--preserve-color"]) == 0
    assert _size(out) == _expected(CAT, 96)
    assert capsys.readouterr().out.strip() == f"wrote {out}"
    out.unlink()
    assert main([*argv, "-q"]) == 0 and out.is_file()
    assert capsys.readouterr() == ("", "")  # -q: nothing on stdout, and nothing went wrong


def test_single_style_model_warns_that_the_style_image_is_ignored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.png"
    assert main(["stylize", CAT, WAVE, "--model", "starry_night", "--size", "64", "-q", "-o", str(out)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("adjustable-style stylize: warning: --model starry_night knows one")
    assert out.is_file()
    assert main(["stylize", CAT, WAVE, "--size", "64", "-q", "-o", str(out)]) == 0  # the default knows any painting
    assert capsys.readouterr().err == ""


def test_export_a_bundled_model_copies_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from adjustable_style.model_files import DEFAULT_MODEL_DIR

    out = tmp_path / "m"
    assert main(["export", "default", "-o", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    source = DEFAULT_MODEL_DIR / "default"
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in source.iterdir())
    for name in ("LICENSE", "NOTICE"):
        assert (out / name).read_bytes() == (source / name).read_bytes(), name
    config = json.loads((out / "config.json").read_text())
    assert config == json.loads((source / "config.json").read_text()) and config["dtype"] == "float16"
    copied = load_file(out / "model.safetensors")
    original = rename_legacy_keys(load_file(source / "model.safetensors"))  # the bundled file keeps Λ's old key names
    assert copied.keys() == original.keys() and all(torch.equal(copied[k], original[k]) for k in original)
    assert main(["export", "nosuchmodel", "-o", str(tmp_path / "m2")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("adjustable-style export: error: no bundled model named 'nosuchmodel'")
    assert not (tmp_path / "m2").exists()


def test_variations(tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sheet, saved = tmp_path / "sheet.png", tmp_path / "vars"
    argv = ["variations", CAT, MONET, "-n", "3", "--seed", "1", "-o", str(sheet), "--model", str(tiny_model_dir)]
    assert main([*argv, "--size", "96", "--save-dir", str(saved), "--cell", "96"]) == 0
    files = sorted(saved.iterdir())
    assert len(files) == 3 and all(_size(f) == _expected(CAT, 96) for f in files)
    w, h = _size(sheet)
    assert w == 5 * 96 + 6 * 4 and h > 96  # content | style | 3 outputs, labels below
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if re.match(r"^\s+\d+\s+[\d.]+\s+[\d.]+\s+[\d.]+$", line)]
    assert len(rows) == 3 and "relu2_2" in out.splitlines()[0]


def test_sweep_prints_losses(tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    strip = tmp_path / "strip.png"
    argv = ["sweep", CAT, WAVE, "--layer", "relu4_4", "-n", "3", "-o", str(strip), "--model", str(tiny_model_dir)]
    assert main([*argv, "--style-weights", "relu2_2=0.2,relu4_4=0.1", "--size", "96", "--cell", "64"]) == 0
    w, _ = _size(strip)
    assert w == 5 * 64 + 6 * 4
    out = capsys.readouterr().out
    assert "relu2_2=0.20 relu3_4=0.50" in out and "style/relu4_4*" in out  # unnamed others: 0.5, as in the README
    steps = [line.split() for line in out.splitlines() if re.match(r"^\s+[01]\.\d\d\s+\S+e\+", line)]
    assert [s[0] for s in steps] == ["0.00", "0.50", "1.00"]
    assert all(len(s) == 5 and all(float(x) > 0 for x in s[1:]) for s in steps)  # 1 content + 3 style losses
    assert "style/relu4_4 loss" in out


def test_sweep_all_layers(tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    strip = tmp_path / "strip.png"
    argv = ["sweep", CAT, WAVE, "--layer", "all", "-n", "2", "-o", str(strip), "--model", str(tiny_model_dir)]
    assert main([*argv, "--size", "64", "--cell", "64"]) == 0
    out = capsys.readouterr().out
    assert "every style layer together; other style weights: none" in out
    assert all(f"style/{n}*" in out and f"style/{n} loss" in out for n in ("relu2_2", "relu3_4", "relu4_4"))
    assert main([*argv, "--style-weights", "relu2_2=0.5"]) == 1
    assert "drop --style-weights" in capsys.readouterr().err


def test_folder_mode(tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    contents, styles = tmp_path / "photos", tmp_path / "styles"
    contents.mkdir()
    styles.mkdir()
    for src in (CAT, ROCKET):
        (contents / Path(src).name).write_bytes(Path(src).read_bytes())
    (contents / "broken.jpg").write_bytes(b"not a jpeg")
    (contents / "notes.txt").write_text("ignored")
    for src in (WAVE, MONET):
        (styles / Path(src).name).write_bytes(Path(src).read_bytes())
    model = ["--model", str(tiny_model_dir), "--size", "64"]

    out = tmp_path / "out1"
    assert main(["stylize", str(contents), WAVE, "-o", str(out), *model]) == 1  # one bad image
    assert sorted(p.name for p in out.iterdir()) == ["photo_cat.png", "photo_rocket_launch.png"]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "broken.jpg" in err[0]

    out = tmp_path / "out2"
    (contents / "broken.jpg").unlink()
    assert main(["stylize", str(contents), str(styles), "-o", str(out), *model]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        f"{c}__{s}.png"
        for c in ("photo_cat", "photo_rocket_launch")
        for s in ("painting_hokusai_great_wave", "painting_monet_water_lilies")
    ]
    assert _size(out / names[0]) == _expected(CAT, 64)

    assert main(["stylize", str(contents), WAVE, "-o", str(tmp_path / "x.png"), *model]) == 1
    assert "must be a folder" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--style-weights", "relu2_2=1.5"], "weight for relu2_2 must be in [0, 1]"),
        (["--style-weights", "relu2_2=nan"], "weight for relu2_2 must be"),
        (["--style-weights", "relu9_9=1"], "unknown layer 'relu9_9'"),
        (["--style-weights", "relu1_1=1"], "'relu1_1' is not a style layer of this model; its style layers are"),
        (["--strength", "2"], "--strength must be in [0, 1]"),
        (["--model", "{tmp}/no_model"], "not found"),
        (["--model", "nosuchmodel"], "no bundled model named 'nosuchmodel'"),
        (["--content", "{tmp}/missing.jpg"], "content '"),
        (["--out", "{tmp}/out.txt"], "must end in one of"),
    ],
)
def test_bad_stylize_inputs(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    extra = [e.replace("{tmp}", str(tmp_path)) for e in extra]
    content, out = CAT, str(tmp_path / "out.png")
    if extra[0] == "--content":
        content, extra = extra[1], []
    elif extra[0] == "--out":
        out, extra = extra[1], []
    argv = ["stylize", content, WAVE, "-o", out, "--size", "64", "--model", str(tiny_model_dir), *extra]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and message in captured.err, captured.err
    assert captured.out == ""
    assert list(tmp_path.iterdir()) == []


def test_bad_sweep_and_variations_inputs(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = ["--model", str(tiny_model_dir), "--size", "64"]
    out = str(tmp_path / "s.png")
    for argv, message in [
        (["sweep", CAT, WAVE, "--layer", "relu5_1", "-o", out, *model], "unknown style layer 'relu5_1'"),
        (["sweep", CAT, WAVE, "--layer", "relu4_4", "-n", "1", "-o", out, *model], "-n must be >= 2"),
        (
            ["sweep", CAT, WAVE, "--layer", "relu4_4", "--high", "1.5", "-o", out, *model],
            "sweep high must be in [0, 1]",
        ),
        (["variations", CAT, WAVE, "-n", "0", "-o", out, *model], "-n must be >= 1"),
        (["variations", CAT, str(tmp_path / "nope.jpg"), "-o", out, *model], "style '"),
    ]:
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
    assert list(tmp_path.iterdir()) == []


def test_bundled_default_model_stylizes_with_no_model_path(tmp_path: Path) -> None:
    """The shipped model: no --model, no network; an fp16 export well under 20 MB that changes the photo."""
    from adjustable_style.image import load_image
    from adjustable_style.model_files import DEFAULT_MODEL_DIR

    model = DEFAULT_MODEL_DIR / "default"
    config = json.loads((model / "config.json").read_text())
    assert config["train"]["step"] > 0 and config["dtype"] == "float16"
    assert (model / "model.safetensors").stat().st_size < 20 * 2**20
    out = tmp_path / "out.png"
    photo = EXAMPLES / "photo_cat.jpg"
    code = main(
        ["stylize", str(photo), str(EXAMPLES / "painting_vangogh_starry_night.jpg"), "-o", str(out), "--size", "96"]
    )
    assert code == 0 and out.is_file()
    result, original = load_image(out), load_image(photo, size=96)
    assert result.shape == original.shape
    assert float((result - original).abs().mean()) > 0.01  # it did something to the photo
