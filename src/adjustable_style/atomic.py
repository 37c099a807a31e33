"""Writing files and folders so that a crash, an error or a full disk never leaves half of one.

Everything this package writes for a user (images, videos, exported models, adapters, reports, checkpoints) goes
through :func:`write_file` or :func:`write_directory`: the content is written beside its destination under a
hidden temporary name, flushed to disk, then renamed into place. The old file or folder stays intact until the
new one is complete. New files get the usual permissions (0666 less the umask), not ``mkstemp``'s 0600.

Example:
    >>> write_file("out/notes.txt", lambda p: p.write_text("hello"))  # doctest: +SKIP
    PosixPath('out/notes.txt')
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path

StrPath = str | os.PathLike


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_path(path: Path) -> None:
    """Flush a file's or folder's data and metadata to disk (a no-op where the platform cannot)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. folders on Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _temporary(parent: Path, name: str, suffix: str = "") -> Path:
    """Reserve a new, empty, hidden file beside the destination (mode 0666 less the umask)."""
    for _ in range(100):
        tmp = parent / f".{name}.{secrets.token_hex(6)}.tmp{suffix}"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666))
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file in '{parent}'")


def write_file(path: StrPath, write: Callable[[Path], object], keep_suffix: bool = True) -> Path:
    """Create or replace the file ``path`` atomically.

    Args:
        path: the destination; missing parent folders are created.
        write: called with a temporary path beside ``path`` (an existing empty file) and writes the content there,
            e.g. ``lambda p: p.write_bytes(data)`` or ``lambda p: save_file(tensors, str(p))``.
        keep_suffix: give the temporary file ``path``'s extension (writers that pick a format by it need this).

    Returns:
        ``path`` as a ``Path``. On any error the temporary file is removed and the old file, if any, is untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(target.parent, target.name, target.suffix if keep_suffix else "")
    try:
        write(tmp)
        fsync_path(tmp)  # data on disk before the rename, or a power cut can leave an empty file at `path`
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_path(target.parent)
    return target


def replace_directory(staged: Path, out: Path) -> None:
    """Put the finished folder ``staged`` at ``out`` (same parent), replacing what is there.

    Folders cannot be swapped in one step: the old one is moved aside, the new one moved in, then the old one
    deleted (and restored if the second rename fails), so ``out`` is never half-written.
    """
    if out.exists():
        old = out.parent / f".{out.name}.{secrets.token_hex(6)}.old"
        os.replace(out, old)
        try:
            os.replace(staged, out)
        except BaseException:
            os.replace(old, out)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staged, out)
    fsync_path(out.parent)


def write_directory(
    out: StrPath, fill: Callable[[Path], object], check: Callable[[Path], object] | None = None
) -> Path:
    """Create or replace the folder ``out`` atomically.

    Args:
        out: the destination folder; missing parents are created.
        fill: called with an empty staging folder beside ``out``; writes every file of the result there.
        check: called with ``out`` just before the swap (e.g. to refuse a folder that appeared meanwhile and is not
            ours); may raise, and then nothing is replaced.

    Returns:
        ``out`` as a ``Path``.
    """
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = target.parent / f".{target.name}.{secrets.token_hex(6)}.tmp"
    staged.mkdir(mode=0o777 & ~_umask())
    try:
        fill(staged)
        for f in staged.rglob("*"):
            if f.is_file():
                fsync_path(f)
        if check is not None:
            check(target)
        replace_directory(staged, target)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    return target
