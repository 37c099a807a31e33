"""Every kind of bad input in scripts/bad_inputs.py (the README's table), per command: exit code 1, one line on
stderr, no traceback, nothing written, no folder left behind, and nothing from a hostile file ever run."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from adjustable_style.cli import main

_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bad_inputs.py"
_spec = importlib.util.spec_from_file_location("bad_inputs", _SCRIPT)
assert _spec is not None and _spec.loader is not None
bad_inputs = importlib.util.module_from_spec(_spec)
sys.modules["bad_inputs"] = bad_inputs  # dataclasses look their module up there
_spec.loader.exec_module(bad_inputs)

CASES = bad_inputs.cases(
    {
        k: Path(k)
        for k in (
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
    }
)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return bad_inputs.make_files(tmp_path_factory.mktemp("bad_inputs"))


def test_every_command_has_cases() -> None:
    from adjustable_style.cli import COMMANDS

    covered = {c.command for c in CASES}
    assert {"optimize", "train", "export", "stylize", "variations", "sweep", "evaluate", "serve"} <= covered
    assert len(COMMANDS) >= 6


@pytest.mark.parametrize("index", range(len(CASES)), ids=[f"{c.command}: {c.what}" for c in CASES])
def test_bad_input_is_one_line_and_leaves_nothing(
    files: dict[str, Path], index: int, capsys: pytest.CaptureFixture[str]
) -> None:
    case = bad_inputs.cases(files)[index]
    try:
        code = main(list(case.argv))
    except SystemExit as e:  # argparse's own errors
        code = int(e.code or 0)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 1, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert case.expect in lines[0], (case.expect, lines[0])
    assert not any(files["outdir"].iterdir()), sorted(files["outdir"].rglob("*"))  # no partial output, no folder
    assert not files["marker"].exists()  # no code from a hostile file ran
