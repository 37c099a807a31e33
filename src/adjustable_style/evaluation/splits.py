"""Which images the evaluation uses: the shared data folder, the held-out (val) names of a split file, the
bundled examples as a fallback, and the seeded choice of content/style pairs.

Example:
    >>> choose_pairs([Path("a.jpg"), Path("b.jpg")], [Path("s.jpg")], 2, seed=0)  # doctest: +SKIP
    [(PosixPath('b.jpg'), PosixPath('s.jpg')), (PosixPath('a.jpg'), PosixPath('s.jpg'))]
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..image import is_image_file
from .settings import EvalError, EvalSettings

DATA_ENV = "ADJUSTABLE_STYLE_DATA"
DEFAULT_SPLIT = "configs/splits/shared_data.json"
# src/adjustable_style/evaluation/splits.py → the checkout (editable installs)
REPO_ROOT = Path(__file__).resolve().parents[3]
_BUNDLED_EXAMPLES = Path(__file__).resolve().parents[1] / "assets" / "examples"


def _first_existing(candidates: Sequence[Path]) -> Path | None:
    return next((p for p in candidates if p.exists()), None)


def shared_data_dir() -> Path | None:
    """``$ADJUSTABLE_STYLE_DATA``, else ``../shared/data`` from the working folder or from the checkout.

    Raises:
        EvalError: ``$ADJUSTABLE_STYLE_DATA`` is set but is not a folder.
    """
    env = os.environ.get(DATA_ENV)
    if env:
        p = Path(env).expanduser()
        if not p.is_dir():
            raise EvalError(f"${DATA_ENV} is '{p}', which is not a folder")
        return p
    return _first_existing([Path.cwd().parent / "shared" / "data", REPO_ROOT.parent / "shared" / "data"])


def _images(folder: Path, what: str) -> list[Path]:
    if not folder.is_dir():
        raise EvalError(f"{what} folder '{folder}' not found; check --{what}")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and is_image_file(p))
    if not files:
        raise EvalError(f"{what} folder '{folder}' holds no images (.jpg, .png, …)")
    return files


def read_split(text: str) -> dict[str, set[str]]:
    """The held-out file names of a split file: ``{"content": {...}, "style": {...}}``.

    A relative path that does not exist from the working folder is looked up in the checkout. A single-style
    split (no val styles, one train style) evaluates its one painting on the held-out photos.

    Raises:
        EvalError: the file is unreadable or not a split.
    """
    p = Path(text).expanduser()
    if not p.is_absolute() and not p.exists():
        p = REPO_ROOT / text  # the repository's own split when run from elsewhere
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
        val = {kind: set(d[kind]["val"]) for kind in ("content", "style")}
        if not val["style"] and len(d["style"].get("train", [])) == 1:
            val["style"] = set(d["style"]["train"])  # a single-style model: held-out photos, its one painting
        return val
    except (OSError, ValueError) as e:
        raise EvalError(f"cannot read split file '{text}': {' '.join(str(e).split())}") from None
    except (KeyError, TypeError):
        raise EvalError(
            f"split file '{text}' must hold {{'content': {{'val': [...]}}, 'style': {{'val': [...]}}}}"
        ) from None


def find_images(settings: EvalSettings) -> tuple[list[Path], list[Path], str]:
    """(content files, style files, a one-line description of where they came from).

    A folder given with ``--content`` / ``--style`` is used whole unless ``--split`` is given too; the default
    folders of the shared data are filtered to the split's held-out (val) names (default: the repo's split).

    Raises:
        EvalError: a folder is missing or empty, or the split leaves no image.
    """
    split = settings.split
    split_off = split is not None and split.lower() == "none"
    root = shared_data_dir() if settings.content is None or settings.style is None else None
    examples = None
    if root is None and (settings.content is None or settings.style is None):
        examples = _first_existing([Path.cwd() / "examples", REPO_ROOT / "examples", _BUNDLED_EXAMPLES])
        if examples is None:
            raise EvalError(
                "no shared data folder (../shared/data or $ADJUSTABLE_STYLE_DATA) and no examples/ folder; "
                "pass --content and --style"
            )
    found: dict[str, list[Path]] = {}
    where: list[str] = []
    for kind, given, prefix in (("content", settings.content, "photo_"), ("style", settings.style, "painting_")):
        split_file = None
        if given is not None:
            files, origin = _images(Path(given), kind), str(given)
            split_file = None if split is None or split_off else split
        elif root is not None:
            files, origin = _images(root / kind, kind), str(root / kind)
            split_file = None if split_off else (split or DEFAULT_SPLIT)
        else:
            assert examples is not None
            files = [p for p in _images(examples, kind) if p.name.startswith(prefix)]
            origin = f"bundled {examples}/{prefix}*"
            if not files:
                raise EvalError(f"'{examples}' holds no {prefix}* images; pass --{kind}")
        if split_file is not None:
            val = read_split(split_file)[kind]
            files = [p for p in files if p.name in val]
            if not files:
                raise EvalError(
                    f"none of the {kind} images in '{origin}' is in the val list of split '{split_file}'; "
                    "use --split none to take them all"
                )
            origin += f" (val of {split_file})"
        found[kind] = files
        where.append(f"{kind}: {origin}, {len(files)} images")
    return found["content"], found["style"], "; ".join(where)


def choose_pairs(contents: Sequence[Path], styles: Sequence[Path], n: int, seed: int) -> list[tuple[Path, Path]]:
    """``n`` seeded (content, style) pairs: distinct contents and distinct styles while they last.

    Example:
        >>> len(choose_pairs([Path("a.jpg"), Path("b.jpg")], [Path("s.jpg")], 3, seed=0))
        3
    """
    rng = np.random.default_rng(seed)
    cp, sp = rng.permutation(len(contents)), rng.permutation(len(styles))
    return [(contents[cp[i % len(contents)]], styles[sp[i % len(styles)]]) for i in range(n)]
