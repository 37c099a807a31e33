"""Bad input, per command, and what each gets: the cases tests/test_cli_bad_inputs.py runs (each must exit 1 with
one line on stderr that names the command, no traceback, and leave no file or folder behind), and the README's
table of them.

Usage:
    python tests/bad_inputs.py            # runs every case as a child process, prints the Markdown table
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "examples" / "photo_cat.jpg"
PAINTING = ROOT / "examples" / "painting_hokusai_great_wave.jpg"
QUICK = ROOT / "configs" / "train" / "quick.yaml"


@dataclass(frozen=True)
class Case:
    command: str
    what: str  # the kind of bad input, as the README lists it
    argv: tuple[str, ...]
    expect: str  # a piece of the one-line message


FILES = (  # the names of make_files' inputs
    "empty",
    "text",
    "truncated",
    "flipped",
    "a_file",
    "evil_ckpt",
    "garbage_ckpt",
    "model_passwd",
    "model_nan",
    "model_big",
    "marker",
    "outdir",
)


class _Payload:
    """Unpickling this would create the file ``marker``: the test checks that it never appears."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (open, (str(self.marker), "w"))


def make_files(tmp: Path) -> dict[str, Path]:
    """The hostile inputs, written into ``tmp``."""
    photo = PHOTO.read_bytes()
    files = {
        "empty": tmp / "empty.jpg",
        "text": tmp / "notes.jpg",
        "truncated": tmp / "truncated.jpg",
        "flipped": tmp / "flipped.jpg",
        "a_file": tmp / "a_file",
        "evil_ckpt": tmp / "evil.ckpt",
        "garbage_ckpt": tmp / "garbage.ckpt",
        "model_passwd": tmp / "model_passwd",
        "model_nan": tmp / "model_nan",
        "model_big": tmp / "model_big",
        "marker": tmp / "PWNED",
        "outdir": tmp / "out",
    }
    assert tuple(files) == FILES
    files["empty"].write_bytes(b"")
    files["text"].write_text("not an image\n")
    files["truncated"].write_bytes(photo[: len(photo) // 3])
    flipped = bytearray(photo)
    for k in range(200, len(flipped), 97):
        flipped[k] ^= 0xFF
    files["flipped"].write_bytes(bytes(flipped))
    files["a_file"].write_text("a file where a folder should be\n")
    torch.save({"state_dict": {}, "payload": _Payload(files["marker"])}, files["evil_ckpt"])
    files["garbage_ckpt"].write_bytes(bytes(range(256)) * 16)
    default = ROOT / "src" / "adjustable_style" / "assets" / "models" / "default"
    for key, edit in (
        ("model_passwd", lambda c: c["vgg"].update(weights="/etc/passwd")),
        ("model_nan", lambda c: c["ema"].update({next(iter(c["ema"])): float("nan")})),
        ("model_big", lambda c: c["train"].update(alpha_high=1e9)),
    ):
        shutil.copytree(default, files[key])
        cfg = json.loads((files[key] / "config.json").read_text())
        edit(cfg)
        (files[key] / "config.json").write_text(json.dumps(cfg))
    files["outdir"].mkdir()
    return files


def cases(f: dict[str, Path]) -> list[Case]:
    """Every case writes (if it wrongly wrote anything) under ``f['outdir']``."""
    out = f["outdir"]
    png = str(out / "o.png")
    pair = (str(PHOTO), str(PAINTING))
    opt = ("optimize", *pair, "-o", png, "--steps", "1", "-q")
    run = ("--size", "64")
    video_out = str(out / "v.mp4")
    adapter = str(out / "a.safetensors")
    train = ("train", str(QUICK), f"log.out_dir={out / 'runs'}", "data.num_workers=0")
    return [
        Case(
            "optimize",
            "missing content file",
            ("optimize", str(out / "nope.jpg"), str(PAINTING), "-o", png),
            "does not exist",
        ),
        Case("optimize", "empty image file", ("optimize", str(f["empty"]), str(PAINTING), "-o", png), "empty"),
        Case(
            "optimize",
            "text file named .jpg",
            ("optimize", str(f["text"]), str(PAINTING), "-o", png),
            "cannot read image",
        ),
        Case("optimize", "truncated JPEG", ("optimize", str(f["truncated"]), str(PAINTING), "-o", png), "truncated"),
        Case(
            "optimize", "output with no image extension", ("optimize", *pair, "-o", str(out / "o.txt")), "must end in"
        ),
        Case(
            "optimize",
            "output folder is a file",
            ("optimize", *pair, "-o", str(f["a_file"] / "o.png")),
            "not a writable",
        ),
        Case("optimize", "`--device foo`", (*opt, "--device", "foo"), "not a device"),
        Case("optimize", "`--size 100000`", (*opt, "--size", "100000"), "memory limit"),
        Case("optimize", "`--style-size 100000`", (*opt, "--size", "64", "--style-size", "100000"), "memory limit"),
        Case("optimize", "`--style-size 0`", (*opt, "--size", "64", "--style-size", "0"), "--style-size"),
        Case("optimize", '`--style-layers ""`', (*opt, "--size", "64", "--style-layers", ""), "no layer names"),
        Case(
            "optimize",
            '`--style-weights ""`',
            (*opt, "--size", "64", "--style-weights", ""),
            "--style-weights is empty",
        ),
        Case(
            "optimize",
            "unknown layer in `--style-weights`",
            (*opt, "--size", "64", "--style-weights", "relu9_9=1"),
            "relu9_9",
        ),
        Case("optimize", "negative `--content-weight`", (*opt, "--size", "64", "--content-weight", "-1"), "content"),
        Case("optimize", "`--steps 0`", ("optimize", *pair, "-o", png, "--steps", "0", "--size", "64"), "steps"),
        Case("train", "missing config file", ("train", str(out / "nope.yaml")), "not found"),
        Case("train", "unknown key", (*train, "optim.lrr=1"), "lrr"),
        Case("train", "`trainer.max_steps=-5`", (*train, "trainer.max_steps=-5"), "trainer.max_steps"),
        Case("train", "`loss.alpha_high=1e9`", (*train, "loss.alpha_high=1e9"), "alpha_high"),
        Case("train", "`trainer.devices=-3`", (*train, "trainer.devices=-3"), "bad trainer settings"),
        Case(
            "train",
            "resume from a checkpoint holding code",
            (*train, f"resume={f['evil_ckpt']}"),
            "nothing in it was run",
        ),
        Case("train", "resume from a garbage file", (*train, f"resume={f['garbage_ckpt']}"), "corrupt"),
        Case("train", "resume from an empty file", (*train, f"resume={f['empty']}"), "empty"),
        Case("export", "checkpoint holding code", ("export", str(f["evil_ckpt"]), "-o", str(out / "m")), "evil.ckpt"),
        Case("export", "garbage checkpoint", ("export", str(f["garbage_ckpt"]), "-o", str(out / "m")), "corrupt"),
        Case("export", "output is a file", ("export", str(f["garbage_ckpt"]), "-o", str(f["a_file"])), "is a file"),
        Case(
            "stylize",
            "`--model` checkpoint holding code",
            ("stylize", *pair, "-o", png, "--model", str(f["evil_ckpt"])),
            "evil.ckpt",
        ),
        Case(
            "stylize",
            "model config naming /etc/passwd as VGG weights",
            ("stylize", *pair, "-o", png, "--model", str(f["model_passwd"])),
            "vgg.weights",
        ),
        Case(
            "stylize",
            "model config with a NaN EMA",
            ("stylize", *pair, "-o", png, "--model", str(f["model_nan"])),
            "ema",
        ),
        Case(
            "stylize",
            "model config with `alpha_high=1e9`",
            ("stylize", *pair, "-o", png, "--model", str(f["model_big"])),
            "alpha_high",
        ),
        Case("stylize", "no such bundled model", ("stylize", *pair, "-o", png, "--model", "nope"), "no bundled model"),
        Case(
            "stylize",
            '`--style-weights ""`',
            ("stylize", *pair, "-o", png, *run, "--style-weights", ""),
            "--style-weights is empty",
        ),
        Case("stylize", "`--strength 2`", ("stylize", *pair, "-o", png, *run, "--strength", "2"), "--strength"),
        Case("stylize", "`--size 5`", ("stylize", *pair, "-o", png, "--size", "5"), "--size"),
        Case(
            "stylize",
            "`--adapter` with `--no-adapter`",
            ("stylize", *pair, "-o", png, "--adapter", adapter, "--no-adapter"),
            "contradict",
        ),
        Case(
            "stylize",
            "`--prepare` with `--no-adapter`",
            ("stylize", *pair, "-o", png, "--prepare", "--no-adapter"),
            "contradict",
        ),
        Case("stylize", "`--prepare 0`", ("stylize", *pair, "-o", png, "--prepare", "0"), "number of steps >= 1"),
        Case(
            "stylize", "`--prepare slow`", ("stylize", *pair, "-o", png, "--prepare", "slow"), "quick or medium or full"
        ),
        Case(
            "stylize",
            "`--prepare` with `--strength 0.5`",
            ("stylize", *pair, "-o", png, "--prepare", "--strength", "0.5"),
            "full style strength",
        ),
        Case(
            "stylize",
            "bit-flipped JPEG content",
            ("stylize", str(f["flipped"]), str(PAINTING), "-o", png, *run),
            "flipped.jpg",
        ),
        Case(
            "stylize",
            "folder mode, `-o` under a file",
            ("stylize", str(ROOT / "examples"), str(PAINTING), "-o", str(f["a_file"] / "d"), *run),
            "not a writable",
        ),
        Case("variations", "`-n 0`", ("variations", *pair, "-o", png, "-n", "0"), "-n"),
        Case(
            "variations",
            "`--save-dir` under a file",
            ("variations", *pair, "-o", png, *run, "-n", "2", "--save-dir", str(f["a_file"] / "d")),
            "--save-dir",
        ),
        Case("sweep", "unknown `--layer`", ("sweep", *pair, "-o", png, *run, "--layer", "relu9_9"), "relu9_9"),
        Case(
            "sweep",
            '`--style-weights ""`',
            ("sweep", *pair, "-o", png, *run, "--layer", "relu2_2", "--style-weights", ""),
            "--style-weights is empty",
        ),
        Case("sweep", "`-n 1`", ("sweep", *pair, "-o", png, *run, "--layer", "relu2_2", "-n", "1"), "-n must be >= 2"),
        Case(
            "sweep",
            "`--prepare` with `--no-prepare`",
            ("sweep", *pair, "--layer", "all", "-o", png, "--prepare", "--no-prepare"),
            "contradict",
        ),
        Case(
            "evaluate",
            "`--model` checkpoint holding code",
            ("evaluate", "--model", str(f["evil_ckpt"]), "-o", str(out / "e")),
            "evil.ckpt",
        ),
        Case("serve", "`--model` checkpoint holding code", ("serve", "--model", str(f["evil_ckpt"])), "evil.ckpt"),
        Case("serve", "`--port 0`", ("serve", "--port", "0"), "--port"),
        Case("serve", "`--prepare slow`", ("serve", "--prepare", "slow"), "--prepare"),
        Case("serve", "no such bundled model", ("serve", "--model", "nope"), "no bundled model"),
        Case("export", "no such bundled model", ("export", "nope", "-o", str(out / "m")), "no bundled model"),
        Case("export", "bundled model, output is a file", ("export", "default", "-o", str(f["a_file"])), "is a file"),
        Case(
            "evaluate",
            "missing content folder",
            ("evaluate", "--content", str(out / "nope"), "-o", str(out / "e")),
            "not found",
        ),
        Case("evaluate", "`--threads 0`", ("evaluate", "--threads", "0", "-o", str(out / "e")), "--threads"),
        Case("adapt", "missing painting", ("adapt", str(out / "nope.jpg"), "-o", adapter), "not found"),
        Case("adapt", "output not .safetensors", ("adapt", str(PAINTING), "-o", str(out / "a.txt")), ".safetensors"),
        Case("adapt", "`--steps 0`", ("adapt", str(PAINTING), "-o", adapter, "--steps", "0"), "--steps"),
        Case("adapt", "`--objective x`", ("adapt", str(PAINTING), "-o", adapter, "--objective", "x"), "--objective"),
        Case("adapt", "output under a file", ("adapt", str(PAINTING), "-o", str(f["a_file"] / "a.safetensors")), "-o"),
        Case("adapt", "text file named .jpg as the painting", ("adapt", str(f["text"]), "-o", adapter), "notes.jpg"),
        Case("video", "missing video", ("video", str(out / "nope.mp4"), str(PAINTING), "-o", video_out), "not found"),
        Case("video", "a text file as the video", ("video", str(f["text"]), str(PAINTING), "-o", video_out), "notes"),
        Case(
            "video", "output with no video extension", ("video", str(f["text"]), str(PAINTING), "-o", png), "must end"
        ),
        Case(
            "video",
            "malformed `--keyframes`",
            ("video", str(f["text"]), str(PAINTING), "-o", video_out, "--keyframes", "relu2_2=1"),
            "keyframe",
        ),
        Case(
            "video",
            "`--motion magic`",
            ("video", str(f["text"]), str(PAINTING), "-o", video_out, "--motion", "magic"),
            "--motion",
        ),
        Case("bench", "`--sizes 5`", ("bench", "--sizes", "5", "--json", str(out / "b.json")), "--sizes"),
        Case("bench", "`--backends tf`", ("bench", "--backends", "tf", "--json", str(out / "b.json")), "--backends"),
        Case("bench", "`--rounds 0`", ("bench", "--rounds", "0", "--json", str(out / "b.json")), "--rounds"),
        Case(
            "bench",
            "missing content file",
            ("bench", "--content", str(out / "nope.jpg"), "--json", str(out / "b.json")),
            "not found",
        ),
    ]


def _row(case: Case, tmp: Path, files: dict[str, Path]) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "adjustable_style", *case.argv], capture_output=True, text=True, env=env, cwd=tmp
    )
    line = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "(nothing on stderr)"
    line = line.replace(str(tmp) + "/", "").replace(str(ROOT) + "/", "")
    left = sorted(p.name for p in files["outdir"].iterdir())
    ok = proc.returncode == 1 and "Traceback" not in proc.stderr and not left and not files["marker"].exists()
    verdict = "ok" if ok else f"**rc {proc.returncode}, left {left}**"
    return f"| `{case.command}` | {case.what} | {verdict} | {line.replace('|', '/')} |"


def main() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="bad-inputs-"))
    try:
        files = make_files(tmp)
        print("| command | bad input | exit 1, one line, nothing left | what it gets (stderr) |")
        print("|---|---|---|---|")
        for case in cases(files):
            print(_row(case, tmp, files), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
