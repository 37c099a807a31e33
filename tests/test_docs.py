"""The README and docs say only true things about the repository: every file they link or name exists, and every
``adjustable-style`` command they show parses with the real command line (flags, choices, argument counts)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from adjustable_style.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "scripts" / "research" / "README.md"]
# Paths the docs name in backticks that are outputs or placeholders, not files of the repository.
NOT_FILES = ("out/", "runs/", "models/", "reports/mine", "adapters/", "photos/", "paintings/", "stylized/", "/data/")
PATH_IN_TICKS = re.compile(r"`((?:src|scripts|configs|docs|examples|notebooks|tests|reports)/[^`\s*…]+)`")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def _relative_targets(page: Path) -> list[tuple[str, Path]]:
    text = page.read_text(encoding="utf-8")
    found = [(m, page.parent / m) for m in LINK.findall(text) if "://" not in m]
    found += [(m, ROOT / m) for m in PATH_IN_TICKS.findall(text) if not m.startswith(NOT_FILES)]
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_linked_or_named_file_exists(page: Path) -> None:
    missing = [m for m, target in _relative_targets(page) if not target.exists()]
    assert not missing, f"{page.name} names files that do not exist: {missing}"


def _commands(page: Path) -> list[str]:
    """``adjustable-style …`` lines of the page's code blocks, continuation lines joined, comments dropped."""
    text = page.read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```(?:bash)?\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            for part in re.split(r"&&|\|(?!\|)", line.split(" #")[0]):
                part = part.strip()
                if part.startswith("adjustable-style "):
                    commands.append(part)
    return commands


README_COMMANDS = _commands(ROOT / "README.md")


def test_the_readme_shows_commands() -> None:
    assert len(README_COMMANDS) >= 15
    assert {c.split()[1] for c in README_COMMANDS} >= {"stylize", "variations", "sweep", "optimize", "adapt", "serve"}


@pytest.mark.parametrize("command", README_COMMANDS + _commands(ROOT / "docs" / "results.md"))
def test_every_documented_command_parses(command: str) -> None:
    argv = shlex.split(command)[1:]
    try:
        build_parser().parse_args(argv)
    except SystemExit as e:  # argparse exits on an unknown flag, a bad choice or a missing argument
        pytest.fail(f"`{command}` does not parse (exit {e.code})")
