"""The README's evaluation block: the summary goes between ``<!-- eval:begin -->`` and ``<!-- eval:end -->``, so
that the README's numbers always come from the evaluation code.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..atomic import write_file
from .settings import EvalError

README_BEGIN = "<!-- eval:begin -->"
README_END = "<!-- eval:end -->"


def check_readme(path: str | Path) -> str:
    """Read a README and check that it has exactly one eval:begin … eval:end block; returns its text."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise EvalError(f"cannot read README '{p}': {' '.join(str(e).split())}") from None
    nb, ne = text.count(README_BEGIN), text.count(README_END)
    if nb != 1 or ne != 1 or text.index(README_BEGIN) > text.index(README_END):
        raise EvalError(
            f"README '{p}' needs exactly one '{README_BEGIN}' line followed by one '{README_END}' line "
            f"(found {nb} and {ne}); add them where the evaluation summary should go"
        )
    return text


def update_readme(path: str | Path, block: str) -> Path:
    """Replace the text between the eval markers of ``path`` with ``block``, atomically.

    Raises:
        EvalError: the README is unreadable or lacks the markers.

    Example:
        >>> update_readme("README.md", "| layer | ρ |")  # doctest: +SKIP
    """
    p = Path(path)
    text = check_readme(p)
    head, rest = text.split(README_BEGIN, 1)
    _, tail = rest.split(README_END, 1)
    new = f"{head}{README_BEGIN}\n{block.strip()}\n{README_END}{tail}"
    mode = p.stat().st_mode & 0o777  # the README keeps its permissions

    def write(tmp: Path) -> None:
        tmp.write_text(new, encoding="utf-8")
        os.chmod(tmp, mode)

    write_file(p, write)
    return p
