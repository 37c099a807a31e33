"""The command line's contract for bad input, per command (cases in tests/bad_inputs.py, the README's table): exit
code 1, one line on stderr that names the subcommand, no traceback, nothing written, no folder left behind, and
nothing from a hostile file ever run. The list of commands is the parser's own."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from bad_inputs import FILES, cases, make_files

from adjustable_style.cli import build_parser, main, subcommands
from adjustable_style.cli.serve import GRADIO_SHARE_HINT, _ShareHint

CASES = cases({k: Path(k) for k in FILES})  # names and commands, to parametrize; the files are made in a fixture
COMMANDS = sorted(subcommands(build_parser()))
# Each command's required arguments, so that the unknown flag is the only mistake.
_PAIR = ["c.jpg", "s.jpg", "-o", "o.png"]
REQUIRED = {
    "optimize": _PAIR,
    "stylize": _PAIR,
    "variations": _PAIR,
    "sweep": [*_PAIR, "--layer", "relu2_2"],
    "train": ["config.yaml"],
    "export": ["default", "-o", "d"],
    "adapt": ["p.jpg", "-o", "a.safetensors"],
    "video": ["v.mp4", "s.jpg", "-o", "o.mp4"],
}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_files(tmp_path_factory.mktemp("bad_inputs"))


def _run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as e:  # argparse's own errors
        return int(e.code or 0)


def test_every_command_has_cases() -> None:
    assert len(COMMANDS) >= 11 and {"stylize", "adapt", "video", "bench", "serve"} <= set(COMMANDS)
    missing = sorted(set(COMMANDS) - {c.command for c in CASES})
    assert not missing, f"no bad-input cases for: {', '.join(missing)}"
    unknown = sorted({c.command for c in CASES} - set(COMMANDS))
    assert not unknown, f"cases for commands the parser does not have: {', '.join(unknown)}"


@pytest.mark.parametrize("index", range(len(CASES)), ids=[f"{c.command}: {c.what}" for c in CASES])
def test_bad_input_is_one_line_and_leaves_nothing(
    files: dict[str, Path], index: int, capsys: pytest.CaptureFixture[str]
) -> None:
    case = cases(files)[index]
    code = _run(list(case.argv))
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 1, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"adjustable-style {case.command}: error: "), lines[0]
    assert case.expect in lines[0], (case.expect, lines[0])
    assert not any(files["outdir"].iterdir()), sorted(files["outdir"].rglob("*"))  # no partial output, no folder
    assert not files["marker"].exists()  # no code from a hostile file ran


@pytest.mark.parametrize("command", COMMANDS)
def test_unknown_flag_names_the_subcommand(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run([command, *REQUIRED.get(command, []), "--no-such-flag"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    prog = f"adjustable-style {command}"
    assert err == [f"{prog}: error: unrecognized arguments: --no-such-flag (see {prog} --help)"]


def test_every_command_has_quiet_and_size_means_one_thing() -> None:
    for name, p in subcommands(build_parser()).items():
        flags = {s: a for a in p._actions for s in a.option_strings}
        assert "-q" in flags and "--quiet" in flags, name
        assert "--max-size" not in flags, name
        if "--seed" in flags:
            assert flags["--seed"].help, f"{name} --seed has no help"
        if "--size" in flags:
            assert "longer side" in flags["--size"].help, name
        if "--steps" in flags:  # optimisation steps only
            assert any(w in flags["--steps"].help for w in ("L-BFGS", "Adam")), name


def test_serve_names_the_share_flag_instead_of_gradios_hint() -> None:
    out = io.StringIO()
    hint = _ShareHint(out)
    print("* Running on local URL:  http://127.0.0.1:7860", file=hint)
    print(f"* {GRADIO_SHARE_HINT}", file=hint)
    assert out.getvalue().splitlines() == [
        "* Running on local URL:  http://127.0.0.1:7860",
        "* To create a public link, start again with --share.",
    ]


def test_a_bug_keeps_its_traceback_and_a_refused_write_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only the user's mistakes and the system's refusals become one line; an internal error is not dressed up as
    the user's fault."""
    import adjustable_style.cli.stylize as cli_stylize

    def bug(*args: object, **kwargs: object) -> None:
        raise ValueError("internal bug")

    monkeypatch.setattr(cli_stylize, "save_image", bug)
    photo = Path(__file__).resolve().parents[1] / "examples" / "photo_cat.jpg"
    argv = ["stylize", str(photo), str(photo), "-o", str(tmp_path / "o.png"), "--size", "32", "-q"]
    with pytest.raises(ValueError, match="internal bug"):
        main(argv)

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device", str(tmp_path / "o.png"))

    monkeypatch.setattr(cli_stylize, "save_image", full)
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"adjustable-style stylize: error: No space left on device ({tmp_path / 'o.png'})"]
