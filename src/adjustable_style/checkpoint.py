"""Reading Lightning ``.ckpt`` files safely: the one reader behind export, loading a checkpoint and resuming training.

A checkpoint may come from anywhere, so it is always read with torch's weights-only unpickler: nothing in the
file can run code here. Types outside plain data and tensors are handled one of two ways:

* to export or load weights, each refused object is replaced by an inert placeholder that runs nothing; only
  ``state_dict`` (tensors) and ``hyper_parameters["config"]`` (plain data) are needed, and a checkpoint whose
  needed parts hold such an object is refused;
* to resume training, only the types the caller allows (Lightning's hyper-parameter dicts) are loaded, and a
  checkpoint holding anything else is refused, with the offending names in the message.

Every failure is a :class:`ModelFormatError` with a one-line message naming the file.

Example:
    >>> ckpt = read_checkpoint("runs/quick/version_0/checkpoints/last.ckpt")  # doctest: +SKIP
    >>> ckpt["global_step"]  # doctest: +SKIP
    300
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from .checks import InputError

# What every Lightning checkpoint written by `adjustable-style train` holds at the top level.
RESUME_KEYS = ("state_dict", "optimizer_states", "loops", "global_step", "epoch", "hyper_parameters")


class ModelFormatError(InputError):
    """A checkpoint or model folder that cannot be read; the message is one line naming the path."""


class _Placeholder(dict):
    """Inert stand-in for a global the safe unpickler refuses: swallows its arguments and state, runs nothing.

    A dict subclass so that pickled dict subclasses (e.g. Lightning's ``AttributeDict``) keep their items.
    """

    qualified_name = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> _Placeholder:
        return super().__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<unloaded {self.qualified_name}>"


def _placeholder_for(name: str) -> type[_Placeholder]:
    return type(f"Unloaded_{name.replace('.', '_')}", (_Placeholder,), {"qualified_name": name})


def one_line(e: BaseException) -> str:
    """An exception's message on one line, at most 300 characters (for embedding in a ModelFormatError)."""
    return " ".join(str(e).split())[:300]


def read_checkpoint(
    path: str | Path, allowed: Sequence[type] = (), resume: bool = False, mmap: bool = False
) -> dict[str, Any]:
    """Read a Lightning checkpoint with the weights-only unpickler.

    Args:
        path: the ``.ckpt`` file.
        allowed: non-builtin types that may be unpickled as themselves; plain dict subclasses only (e.g.
            Lightning's ``AttributeDict``), whose unpickling sets items and runs no code of the file's choosing.
        resume: read it to continue training: any object outside ``allowed`` is refused, and every key of a
            training checkpoint (:data:`RESUME_KEYS`) must be present. Otherwise refused objects become inert
            placeholders and only ``state_dict`` and ``hyper_parameters["config"]`` must be plain data.
        mmap: map tensors instead of reading them (a cheap check before the real load).

    Returns:
        The checkpoint dict, its ``state_dict`` checked to hold only tensors.

    Raises:
        ModelFormatError: missing, empty, truncated or garbage file; a checkpoint that is not one of ours; or
            one holding objects a safe load cannot use (named in the message; nothing from it was run).
    """
    p = Path(path)
    doing = "resume from" if resume else "read checkpoint"
    if not p.is_file():
        what = "point resume= at a .ckpt file" if resume else "pass the .ckpt file a training run wrote"
        raise ModelFormatError(f"checkpoint '{p}' not found; {what}")
    if p.stat().st_size == 0:
        raise ModelFormatError(f"cannot {doing} '{p}': the file is empty")
    try:
        with torch.serialization.safe_globals(list(allowed)):
            ckpt = torch.load(p, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError:
        # Not plain data somewhere (optimizer or loop state of another Lightning version, numpy scalars,
        # argparse Namespaces…): the globals the safe unpickler refused, less those allowed.
        try:
            names = torch.serialization.get_unsafe_globals_in_checkpoint(p)
        except Exception:
            names = []
        names = [n for n in names if n not in {f"{t.__module__}.{t.__qualname__}" for t in allowed}]
        if not names:  # not about refused globals: garbage or a truncated file
            raise ModelFormatError(f"cannot {doing} '{p}': it is corrupt or not a PyTorch checkpoint") from None
        if resume:
            shown = ", ".join(names[:3]) + ("…" if len(names) > 3 else "")
            raise ModelFormatError(
                f"refusing to resume from '{p}': it holds objects a weights-only load does not allow ({shown}); "
                "nothing in it was run. Only checkpoints written by `adjustable-style train` can be resumed"
            ) from None
        stubs = [(_placeholder_for(n), n) for n in names]
        try:
            with torch.serialization.safe_globals([*allowed, *stubs]):
                ckpt = torch.load(p, map_location="cpu", weights_only=True, mmap=mmap)
        except Exception as e2:
            raise ModelFormatError(
                f"cannot read checkpoint '{p}' safely: it holds objects a weights-only load refuses "
                f"({', '.join(names) or one_line(e2)}); re-save it with plain data only"
            ) from None
    except Exception as e:  # truncated zip, not a torch file, …
        reason = one_line(e).split(". ")[0][:160] or type(e).__name__
        if "mmap can only be used" in reason:  # torch's wording for "not a zip checkpoint" when mapping
            reason = "not a PyTorch zip archive"
        raise ModelFormatError(f"cannot {doing} '{p}': it is corrupt or truncated ({reason})") from None
    needed = RESUME_KEYS if resume else ("state_dict",)
    missing = [k for k in needed if not isinstance(ckpt, Mapping) or k not in ckpt]
    if missing:
        raise ModelFormatError(
            f"cannot {doing} '{p}': not a training checkpoint of this package (no {', '.join(missing)})"
        )
    hp = ckpt.get("hyper_parameters")
    bad = _non_tensor(ckpt["state_dict"]) or (_non_plain(hp.get("config")) if isinstance(hp, Mapping) else None)
    if bad:
        raise ModelFormatError(f"cannot {doing} '{p}': its {bad} could not be loaded safely (not plain data)")
    return dict(ckpt)


def _non_plain(obj: Any, where: str = "hyper-parameters") -> str | None:
    """Name of the first part of ``obj`` that is a placeholder (i.e. not plain data), or None."""
    if isinstance(obj, _Placeholder):
        return f"{where} ({obj.qualified_name})"
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            found = _non_plain(v, f"{where}.{k}")
            if found:
                return found
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            found = _non_plain(v, f"{where}[{i}]")
            if found:
                return found
    return None


def _non_tensor(state: Any) -> str | None:
    if not isinstance(state, Mapping):
        return "state_dict"
    for k, v in state.items():
        if not isinstance(v, torch.Tensor):
            return f"state_dict entry {k!r}"
    return None
