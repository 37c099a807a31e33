"""The ``adjustable-style optimize`` command: the happy path on real images, and every user error as one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from adjustable_style.cli import main
from adjustable_style.layers import DEFAULT_STYLE_LAYERS

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def photo(content_images: list[Path]) -> Path:
    by_name = {p.stem: p for p in content_images}
    return by_name.get("kodak_kodim23", content_images[0])


@pytest.fixture(scope="module")
def painting(style_images: list[Path]) -> Path:
    by_name = {p.stem: p for p in style_images}
    return by_name.get("vangogh_starry_night", style_images[0])


def _run(argv: list[str]) -> int:
    """main(argv) as the console script would exit: argparse errors raise SystemExit."""
    try:
        return main(argv)
    except SystemExit as e:
        return int(e.code or 0)


def _assert_one_line_error(err: str, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert "error" in lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def _expected_size(path: Path, longer: int) -> tuple[int, int]:
    with Image.open(path) as img:
        w, h = img.size
    return (longer, round(h * longer / w)) if w >= h else (round(w * longer / h), longer)


# ---------------------------------------------------------------------------------------------------------
# Happy path


def test_optimize_in_process(photo: Path, painting: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "result.png"
    code = main(
        ["optimize", str(photo), str(painting), "-o", str(out), "--size", "64", "--steps", "3", "-q", "--device", "cpu"]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert out.is_file()
    with Image.open(out) as img:
        img.load()
        assert img.format == "PNG" and img.mode == "RGB"
        w, h = img.size
    ew, eh = _expected_size(photo, 64)
    assert max(w, h) == 64 and abs(w - ew) <= 1 and abs(h - eh) <= 1
    for layer in DEFAULT_STYLE_LAYERS:
        assert f"style/{layer}" in captured.out
    assert "content/relu3_4" in captured.out
    assert "final losses after 3 steps" in captured.out  # the result still prints with -q
    assert "wrote" not in captured.out and captured.err == ""  # -q: no status line
    # No temporary files left beside the output.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.png"]


def test_optimize_with_a_models_normalizers(
    photo: Path, painting: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # --normalizers MODEL: the weighted terms are the raw losses scaled by that model's EMA (eq. 9), so the
    # weights mean what its sliders mean; the default normalisers (end-point distances) give other scales.
    from adjustable_style.model_files import load_model

    model = load_model("default")
    argv = ["optimize", str(photo), str(painting), "--size", "48", "--steps", "2", "-q", "--device", "cpu"]

    def printed(extra: list[str]) -> dict[str, tuple[float, float]]:
        out = tmp_path / f"r{len(extra)}.png"
        assert main([*argv, "-o", str(out), *extra]) == 0
        rows = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("  ")]
        return {r[0]: (float(r[1]), float(r[2])) for r in rows if len(r) == 3 and r[0] != "layer"}

    ours = printed(["--normalizers", "default"])
    total = float(model.ema.sum())
    for key, ema in zip(model.schema.keys, model.ema.tolist()):
        raw, weighted = ours[key]
        assert weighted == pytest.approx(raw * total / ema, rel=1e-3), key
    plain = printed([])
    key = model.schema.keys[0]
    assert plain[key][1] / plain[key][0] != pytest.approx(ours[key][1] / ours[key][0], rel=1e-2)


def test_normalizers_and_layer_flags_conflict(
    photo: Path, painting: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x.png"
    argv = [
        "optimize",
        str(photo),
        str(painting),
        "-o",
        str(out),
        "--normalizers",
        "default",
        "--style-layers",
        "relu1_1",
    ]
    assert main(argv) == 1
    _assert_one_line_error(capsys.readouterr().err, "--normalizers")
    assert main([*argv[:-4], "--normalizers", str(tmp_path / "nope")]) == 1
    _assert_one_line_error(capsys.readouterr().err, "nope")
    assert not out.exists()


def test_optimize_as_a_subprocess(tmp_path: Path) -> None:
    # The shipped examples, run the way a user would; also covers `python -m adjustable_style`.
    content, style = EXAMPLES / "photo_cat.jpg", EXAMPLES / "painting_vangogh_starry_night.jpg"
    if not (content.is_file() and style.is_file()):
        pytest.skip("examples folder missing")
    out = tmp_path / "sub" / "cat.jpg"  # a missing folder is created
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "adjustable_style",
            "optimize",
            str(content),
            str(style),
            "-o",
            str(out),
            "--size",
            "64",
            "--steps",
            "3",
            "-q",
            "--style-weights",
            "relu2_2=2,relu4_4=0.5",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    for layer in DEFAULT_STYLE_LAYERS:
        assert f"style/{layer}" in proc.stdout
    with Image.open(out) as img:
        img.load()
        assert img.format == "JPEG"
        assert img.size == _expected_size(content, 64)


# ---------------------------------------------------------------------------------------------------------
# Bad input: exit code 1, one line on stderr naming the problem, no traceback, no output file


def _bad_files(tmp_path: Path, photo: Path) -> dict[str, Path]:
    files = {}
    files["empty"] = tmp_path / "empty.jpg"
    files["empty"].write_bytes(b"")
    files["text"] = tmp_path / "notes.jpg"
    files["text"].write_text("this is not an image\n")
    data = photo.read_bytes()
    files["truncated"] = tmp_path / "truncated.jpg"
    files["truncated"].write_bytes(data[: len(data) // 3])
    files["tiny"] = tmp_path / "tiny.png"
    Image.new("RGB", (10, 12), (200, 30, 30)).save(files["tiny"])
    return files


@pytest.mark.parametrize(
    ("which", "needles"),
    [
        ("missing", ("does not exist",)),
        ("empty", ("empty",)),
        ("text", ("not a recognised image",)),
        ("truncated", ("corrupt or truncated",)),
        ("tiny", ("10x12", "at least 16 px")),
    ],
)
@pytest.mark.parametrize("role", ["content", "style"])
def test_bad_image_files(
    which: str,
    needles: tuple[str, ...],
    role: str,
    photo: Path,
    painting: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    files = _bad_files(tmp_path, photo)
    bad = files.get(which, tmp_path / "missing.jpg")
    content, style = (bad, painting) if role == "content" else (photo, bad)
    out = tmp_path / "out.png"
    code = _run(["optimize", str(content), str(style), "-o", str(out), "--size", "64", "--steps", "1", "-q"])
    err = capsys.readouterr().err
    assert code == 1
    _assert_one_line_error(err, str(bad), *needles)
    assert not out.exists()


@pytest.mark.parametrize(
    ("extra", "needles"),
    [
        (["--style-weights", "relu9_9=1"], ("unknown layer 'relu9_9'",)),
        (["--style-weights", "relu1_1=1"], ("'relu1_1' is not a style layer",)),
        (["--style-weights", "relu2_2"], ("malformed weight 'relu2_2'",)),
        (["--style-weights", "relu2_2=abc"], ("relu2_2", "must be a number")),
        (["--style-weights", "relu2_2=-1"], ("relu2_2", ">= 0", "-1")),
        (["--style-weights", "relu2_2=nan"], ("relu2_2", "nan")),
        (["--style-weights", "relu2_2=1,relu2_2=2"], ("given twice",)),
        (["--content-weight", "nan"], ("content weight", "nan")),
        (["--content-weight", "-2"], ("content weight", "-2")),
        (["--tv-weight", "inf"], ("tv weight", "inf")),
        (["--style-layers", "relu2_2,relu9_1"], ("unknown layer 'relu9_1'",)),
        (["--steps", "0"], ("steps must be an int >= 1",)),
        (["--steps", "abc"], ("--steps", "invalid int value: 'abc'")),
        (["--init", "photo"], ("--init", "invalid choice: 'photo'")),
    ],
)
def test_bad_arguments(
    extra: list[str],
    needles: tuple[str, ...],
    photo: Path,
    painting: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "out.png"
    code = _run(["optimize", str(photo), str(painting), "-o", str(out), "--size", "64", "--steps", "1", "-q", *extra])
    err = capsys.readouterr().err
    assert code == 1
    _assert_one_line_error(err, *needles)
    assert not out.exists()


def test_cuda_device_without_cuda(
    photo: Path, painting: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    out = tmp_path / "out.png"
    code = _run(["optimize", str(photo), str(painting), "-o", str(out), "--steps", "1", "-q", "--device", "cuda"])
    assert code == 1
    _assert_one_line_error(capsys.readouterr().err, "--device cuda", "no CUDA device")
    assert not out.exists()


def test_missing_required_arguments_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["optimize", "only_one.jpg"]) == 1
    _assert_one_line_error(capsys.readouterr().err, "required")
    assert _run([]) == 1
    _assert_one_line_error(capsys.readouterr().err, "required")


def test_output_under_a_regular_file(
    photo: Path, painting: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("I am a file")
    out = blocker / "out.png"
    code = _run(["optimize", str(photo), str(painting), "-o", str(out), "--size", "64", "--steps", "1", "-q"])
    assert code == 1
    _assert_one_line_error(capsys.readouterr().err, str(out))
    assert blocker.read_text() == "I am a file"


def test_output_with_unknown_extension(
    photo: Path, painting: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.xyz"
    code = _run(["optimize", str(photo), str(painting), "-o", str(out), "--size", "64", "--steps", "1", "-q"])
    assert code == 1
    _assert_one_line_error(capsys.readouterr().err, str(out), ".png")
    assert not out.exists()


def test_output_is_a_directory(photo: Path, painting: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "folder.png"
    out.mkdir()
    code = _run(["optimize", str(photo), str(painting), "-o", str(out), "--size", "64", "--steps", "1", "-q"])
    assert code == 1
    _assert_one_line_error(capsys.readouterr().err, "is a directory")
    assert out.is_dir() and not any(out.iterdir())


def test_existing_output_untouched_when_the_run_fails(
    photo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "keep.png"
    Image.new("RGB", (20, 20), (1, 2, 3)).save(out)
    before = out.read_bytes()
    mtime = out.stat().st_mtime_ns
    bad_style = tmp_path / "style.jpg"
    bad_style.write_text("not an image")
    code = _run(["optimize", str(photo), str(bad_style), "-o", str(out), "--size", "64", "--steps", "1", "-q"])
    assert code == 1
    _assert_one_line_error(capsys.readouterr().err, str(bad_style))
    assert out.read_bytes() == before and out.stat().st_mtime_ns == mtime
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.png", "style.jpg"]


def test_argparse_error_as_a_subprocess(tmp_path: Path) -> None:
    out = tmp_path / "out.png"
    proc = subprocess.run(
        [sys.executable, "-m", "adjustable_style", "optimize", "a.jpg", "b.jpg", "-o", str(out), "--steps", "abc"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    _assert_one_line_error(proc.stderr, "--steps", "abc")
    assert proc.stdout == ""
    assert not out.exists()
