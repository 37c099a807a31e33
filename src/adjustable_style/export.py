"""Inference artifacts: a folder with ``model.safetensors`` and ``config.json``, read back with no YAML.

All checkpoint and export format handling lives here (STYLE.md: no checkpoint surgery elsewhere). An export
folder holds

* ``model.safetensors``: the :class:`~adjustable_style.model.AdjustableStyleModel` weights, keyed exactly as
  ``model.state_dict()`` (no VGG: its weights are rebuilt from their source), fp16 by default;
* ``config.json``: everything needed to rebuild the model and interpret its sliders::

    {"format": "adjustable-style", "version": 1,
     "schema": {"content": [...], "style": [...]}, "model": {ModelConfig}, "vgg": {"weights", "pooling"},
     "train": {"step", "crop_size", "style_size", "ema_decay", ...}, "ema": {"content/relu3_4": v, ...},
     "ema_tv": v, "cin_layers": [[name, channels], ...], "labels": {"relu2_2": "fine texture (relu2_2)", ...}}

``version`` is bumped whenever an older reader could misread a newer file; readers refuse newer versions.

Lightning checkpoints are read with ``torch.load(weights_only=True)``. Objects the safe unpickler refuses
(anything not plain data or tensors) are replaced by inert placeholders that never run code; the export only
needs ``state_dict`` and ``hyper_parameters["config"]``, and is refused if either contains such an object.

Example:
    >>> export_checkpoint("runs/quick/version_0/checkpoints/last.ckpt", "models/quick")  # doctest: +SKIP
    PosixPath('models/quick')
    >>> exported = load_model("models/quick")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import pickle
import secrets
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .layers import LayerSchema, layer_label, sort_layers
from .losses import PerceptualLoss
from .model import AdjustableStyleModel, ModelConfig, rename_legacy_keys
from .vgg import WEIGHT_SOURCES, VGG19Features

FORMAT = "adjustable-style"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
# Files an export folder may hold; anything else means the folder is not (only) an export.
EXPORT_FILES = frozenset({CONFIG_FILE, WEIGHTS_FILE, "embed.onnx", "stylize.onnx", "LICENSE", "NOTICE"})
# Weights derived from third-party weights keep their licence: an export whose config names a "source" carries
# that attribution in NOTICE and the licence text in LICENSE.
APACHE_LICENSE = Path(__file__).parent / "assets" / "licenses" / "Apache-2.0.txt"
DEFAULT_MODEL_DIR = Path(__file__).parent / "assets" / "models"
_DTYPES = {"float16": torch.float16, "float32": torch.float32, "bfloat16": torch.bfloat16}


class ModelFormatError(ValueError):
    """A model folder or checkpoint that cannot be read; the message is one line naming the path."""


@dataclass
class ExportedModel:
    """A model rebuilt from an export (or a checkpoint), ready for inference.

    Attributes:
        model: the network in eval mode, float32, on the requested device.
        schema: loss layers and the order of α.
        config: the parsed ``config.json`` (plain dict).
        ema: (L,) the training EMA of each layer's loss, in ``schema.keys`` order (zeros if never updated).
        ema_tv: the EMA of the total-variation term.
        style_size: style images are resized so that their shorter side is this (the training style size).
    """

    model: AdjustableStyleModel
    schema: LayerSchema
    config: dict[str, Any]
    ema: torch.Tensor
    ema_tv: float
    style_size: int
    _loss: PerceptualLoss | None = field(default=None, init=False, repr=False)

    def loss_module(self) -> PerceptualLoss:
        """The loss the model was trained with (eval mode, its VGG19, schema and EMA), on the model's device;
        built once. Measure rendered images with it (:mod:`adjustable_style.measure`), or fit against it."""
        if self._loss is None:
            train = self.config.get("train", {})
            loss = PerceptualLoss(
                self.schema,
                self.model.vgg,
                ema_decay=float(train.get("ema_decay", 0.99)),
                tv_weight=float(train.get("tv_weight", 0.0)),
            )
            if self.config.get("ema_initialized", True) and bool((self.ema > 0).all()) and self.ema_tv > 0:
                loss.set_ema(self.ema, self.ema_tv)
            device = next(self.model.parameters()).device
            self._loss = loss.to(device).eval()
        return self._loss


# ------------------------------------------------------------------------------------------ checkpoint reading


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


def _short(e: BaseException) -> str:
    return " ".join(str(e).split())[:300]


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a Lightning checkpoint with the safe (weights-only) unpickler.

    Objects the safe unpickler refuses are replaced by inert placeholders rather than loaded with
    ``weights_only=False``: a checkpoint from an untrusted source can never run code here.

    Returns:
        The checkpoint dict; ``state_dict`` and ``hyper_parameters`` are checked to be plain data.

    Raises:
        ModelFormatError: missing or unreadable file, or a checkpoint that is not one of ours.
    """
    p = Path(path)
    if not p.is_file():
        raise ModelFormatError(f"checkpoint '{p}' not found; pass the .ckpt file a training run wrote")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # Not plain data somewhere (optimizer or loop state of another Lightning version, numpy scalars,
        # argparse Namespaces…). Stand in inert placeholders for exactly the refused globals and retry.
        try:
            names = torch.serialization.get_unsafe_globals_in_checkpoint(p)
        except Exception:
            names = []
        if not names:  # not about refused globals: garbage or a truncated file
            raise ModelFormatError(f"cannot read checkpoint '{p}': it is corrupt or not a PyTorch checkpoint") from None
        stubs = [(_placeholder_for(n), n) for n in names]
        try:
            with torch.serialization.safe_globals(stubs):
                ckpt = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as e2:
            raise ModelFormatError(
                f"cannot read checkpoint '{p}' safely: it holds objects a weights-only load refuses "
                f"({', '.join(names) or _short(e2)}); re-save it with plain data only"
            ) from None
    except Exception as e:  # truncated zip, not a torch file, …
        reason = _short(e).split(". ")[0]
        raise ModelFormatError(f"cannot read checkpoint '{p}': it is corrupt or truncated ({reason})") from None
    if not isinstance(ckpt, Mapping) or "state_dict" not in ckpt:
        raise ModelFormatError(f"'{p}' is not a Lightning checkpoint (no state_dict)")
    hp = ckpt.get("hyper_parameters")
    bad = _non_plain_state(ckpt["state_dict"]) or (_non_plain(hp.get("config")) if isinstance(hp, Mapping) else None)
    if bad:
        raise ModelFormatError(f"cannot export '{p}': its {bad} could not be loaded safely (not plain data)")
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


def _non_plain_state(state: Any) -> str | None:
    if not isinstance(state, Mapping):
        return "state_dict"
    for k, v in state.items():
        if not isinstance(v, torch.Tensor):
            return f"state_dict entry {k!r}"
    return None


def _model_config_from_dict(d: Mapping[str, Any], where: str) -> ModelConfig:
    known = {f.name for f in fields(ModelConfig)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ModelFormatError(
            f"{where}: unknown model setting(s) {', '.join(unknown)}; this model needs a newer adjustable-style"
        )
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
    try:
        return ModelConfig(**values)
    except TypeError as e:
        raise ModelFormatError(f"{where}: bad model settings ({_short(e)})") from None


def _predictor_max_layer(schema: LayerSchema, mcfg: ModelConfig) -> str:
    # One frozen VGG serves P and the loss network (for measuring raw losses), as in training.
    return sort_layers((schema.deepest, *mcfg.vgg_layers))[-1]


def _skeleton(schema: LayerSchema, mcfg: ModelConfig) -> AdjustableStyleModel:
    """The model with a cheap random VGG: for checking that a state dict fits, not for running."""
    vgg = VGG19Features("random", max_layer=sort_layers(mcfg.vgg_layers or ("relu1_1",))[-1])
    return AdjustableStyleModel(schema, mcfg, vgg)


def export_config(
    cfg: Any, step: int, ema: torch.Tensor, ema_tv: float, ema_initialized: bool, cin_layers: Any
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
        from .magenta import LICENSE_NOTE

        config["source"] = LICENSE_NOTE
    return config


def checkpoint_payload(path: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """``(config.json dict, float32 model state dict)`` for a Lightning checkpoint, without writing anything.

    Raises:
        ModelFormatError: unreadable checkpoint, or one whose weights do not fit its own config.
    """
    from .config import from_dict

    p = Path(path)
    ckpt = read_checkpoint(p)
    hp = ckpt.get("hyper_parameters")
    if not isinstance(hp, Mapping) or not isinstance(hp.get("config"), Mapping):
        raise ModelFormatError(
            f"'{p}' has no training config in its hyper-parameters; is it an adjustable-style checkpoint?"
        )
    try:
        cfg = from_dict(dict(hp["config"]))
    except Exception as e:
        raise ModelFormatError(f"'{p}': its training config does not fit this package ({_short(e)})") from None
    schema = cfg.loss.schema
    sd = ckpt["state_dict"]
    state = {k[len("model.") :]: v.detach().float().contiguous() for k, v in sd.items() if k.startswith("model.")}
    # torch.compile wraps modules in `_orig_mod`; strip it here, the one place that knows about formats.
    state = {k.replace("._orig_mod", ""): v for k, v in state.items()}
    skeleton = _skeleton(schema, cfg.model)
    try:
        skeleton.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ModelFormatError(f"'{p}': model weights do not fit its config ({_short(e)})") from None
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


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def swap_in_directory(tmp: Path, out: Path) -> None:
    """Put the finished folder ``tmp`` at ``out`` (same parent), replacing what is there.

    Directories cannot be swapped in one step: the old one is moved aside, the new one moved in, then the
    old one deleted (and restored if the second rename fails), so ``out`` is never half-written.
    """
    if out.exists():
        old = out.parent / f".{out.name}.{secrets.token_hex(6)}.old"
        os.replace(out, old)
        try:
            os.replace(tmp, out)
        except BaseException:
            os.replace(old, out)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


def write_export(
    config: Mapping[str, Any],
    state: Mapping[str, torch.Tensor],
    out_dir: str | Path,
    dtype: str = "float16",
    extra: Callable[[Path], list[str]] | None = None,
) -> Path:
    """Write ``config.json`` and ``model.safetensors`` into ``out_dir`` atomically.

    ``extra(folder)`` may write more files into the unfinished folder (the ONNX graphs) and returns their names.

    Everything is written into a temporary folder beside ``out_dir`` and renamed into place, so a failure
    never leaves a half-written export and never damages an existing one.
    """
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}")
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
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"format": FORMAT, "version": str(FORMAT_VERSION)})
        with open(tmp / CONFIG_FILE, "w", encoding="utf-8") as f:
            json.dump(config, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        with open(tmp / WEIGHTS_FILE, "rb+") as f:
            os.fsync(f.fileno())
        names = [CONFIG_FILE, WEIGHTS_FILE]
        if config.get("source"):
            (tmp / "NOTICE").write_text(str(config["source"]) + "\n", encoding="utf-8")
            shutil.copyfile(APACHE_LICENSE, tmp / "LICENSE")
            names += ["NOTICE", "LICENSE"]
        if extra is not None:
            names += extra(tmp)
        os.chmod(tmp, 0o755)  # mkdtemp makes 0700 folders; give an export the usual permissions
        for name in names:
            os.chmod(tmp / name, 0o644)
        _check_destination(out)  # again: something may have appeared while we wrote
        swap_in_directory(tmp, out)
        _fsync_dir(out.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


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


# ------------------------------------------------------------------------------------------------- reading


def resolve_model(path_or_name: str | Path) -> Path:
    """Find a model: an export folder, a ``.ckpt`` file, or the name of a bundled model (``"default"``).

    Raises:
        ModelFormatError: nothing found, with what to do instead.
    """
    text = str(path_or_name)
    p = Path(path_or_name).expanduser()
    looks_like_path = (
        isinstance(path_or_name, Path)
        or os.sep in text
        or "/" in text
        or text.endswith(".ckpt")
        or text.startswith(".")
    )
    if p.exists():
        return p
    if looks_like_path:
        raise ModelFormatError(
            f"model '{text}' not found; pass an export folder (adjustable-style export) or a .ckpt file"
        )
    bundled = DEFAULT_MODEL_DIR / text
    if bundled.is_dir():
        return bundled
    raise ModelFormatError(f"no bundled model named '{text}'; train one and pass --model DIR")


def read_config(model_dir: str | Path) -> dict[str, Any]:
    """Read and check an export's ``config.json`` (format and version)."""
    d = Path(model_dir)
    if not d.is_dir():
        raise ModelFormatError(f"model folder '{d}' not found")
    cfg_path = d / CONFIG_FILE
    if not cfg_path.is_file():
        raise ModelFormatError(f"not an adjustable-style model: '{d}' has no {CONFIG_FILE}")
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ModelFormatError(f"not an adjustable-style model: '{cfg_path}' is not valid JSON ({_short(e)})") from None
    if not isinstance(cfg, dict) or cfg.get("format") != FORMAT:
        found = cfg.get("format") if isinstance(cfg, dict) else type(cfg).__name__
        raise ModelFormatError(f"not an adjustable-style model: '{cfg_path}' has format {found!r}, expected {FORMAT!r}")
    version = cfg.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ModelFormatError(f"not an adjustable-style model: '{cfg_path}' has no valid version ({version!r})")
    if version > FORMAT_VERSION:
        raise ModelFormatError(
            f"model format version {version} is newer than this package supports; upgrade adjustable-style"
        )
    return cfg


def load_model(path: str | Path, device: str | torch.device = "cpu", vgg_weights: str | None = None) -> ExportedModel:
    """Rebuild a model from an export folder (``config.json`` alone, no YAML) or a ``.ckpt`` file.

    Args:
        path: export folder, ``.ckpt`` file, or bundled model name (see :func:`resolve_model`).
        device: where to put the model.
        vgg_weights: override the VGG19 weight source recorded at training (e.g. a local file).

    Returns:
        An :class:`ExportedModel` whose ``model`` is float32 and in eval mode.

    Raises:
        ModelFormatError: one line naming the path and what is wrong.

    Example:
        >>> m = load_model("models/quick")  # doctest: +SKIP
        >>> m.schema.style
        ('relu2_2', 'relu3_4', 'relu4_4')
    """
    p = resolve_model(path)
    if p.is_file():
        if p.suffix != ".ckpt":
            raise ModelFormatError(f"model '{p}' is a file but not a .ckpt checkpoint; pass an export folder")
        config, state = checkpoint_payload(p)
    else:
        config = read_config(p)
        weights = p / WEIGHTS_FILE
        if not weights.is_file():
            raise ModelFormatError(f"model folder '{p}' has no {WEIGHTS_FILE} (incomplete export?)")
        try:
            state = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(weights)).items()}
        except (SafetensorError, OSError, ValueError) as e:
            raise ModelFormatError(f"cannot read '{weights}': {_short(e)}") from None
    return _build(config, state, p, device, vgg_weights)


# Bounds on the numbers a config.json may hold (a downloaded model is untrusted input): (low, high), inclusive.
_TRAIN_BOUNDS = {
    "style_size": (16, 4096),
    "crop_size": (16, 4096),
    "alpha_low": (0.0, 10.0),
    "alpha_high": (0.0, 10.0),
    "tv_weight": (0.0, 1e6),
    "style_gain": (1e-6, 1e6),
    "ema_decay": (0.0, 1.0),
}


def _number(value: Any, what: str, lo: float, hi: float, integer: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (not integer or isinstance(value, int))
    if not ok or not lo <= value <= hi:  # also refuses nan and ±inf
        kind = "an integer" if integer else "a number"
        raise ModelFormatError(f"{what} must be {kind} in [{lo:g}, {hi:g}], got {value!r}")
    return value


def check_export_config(config: Mapping[str, Any], where: str | Path) -> None:
    """Check an export's ``config.json`` against the schema, with bounds, before anything is allocated.

    A model folder comes from anywhere: every number is bounded (sizes, α range, EMA values finite and
    non-negative), model settings pass :meth:`ModelConfig.check`, and ``vgg.weights`` may only name a
    built-in source, never a local file.

    Raises:
        ModelFormatError: one line naming the file, the key and the value found.
    """
    at = f"'{where}' config.json:"
    mcfg = _model_config_from_dict(config["model"], str(where)) if isinstance(config.get("model"), Mapping) else None
    if mcfg is None:
        raise ModelFormatError(f"{at} 'model' must be an object")
    try:
        mcfg.check()
    except ValueError as e:
        raise ModelFormatError(f"{at} {e}") from None
    train = config.get("train")
    if not isinstance(train, Mapping):
        raise ModelFormatError(f"{at} 'train' must be an object")
    for key, (lo, hi) in _TRAIN_BOUNDS.items():
        if key in train or key == "style_size":
            _number(train.get(key), f"{at} train.{key}", lo, hi, integer=key.endswith("_size"))
    if not train.get("alpha_low", 0.0) < train.get("alpha_high", 1.0):
        raise ModelFormatError(
            f"{at} train.alpha_low must be below train.alpha_high, got {train.get('alpha_low')!r}, {train.get('alpha_high')!r}"
        )
    ema = config.get("ema")
    if not isinstance(ema, Mapping):
        raise ModelFormatError(f"{at} 'ema' must be an object")
    for k, v in ema.items():
        _number(v, f"{at} ema[{k!r}]", 0.0, 1e30)
    _number(config.get("ema_tv"), f"{at} ema_tv", 0.0, 1e30)
    vgg = config.get("vgg")
    if (
        not isinstance(vgg, Mapping)
        or vgg.get("weights") not in WEIGHT_SOURCES
        or vgg.get("pooling", "max") not in ("max", "avg")
    ):
        found = vgg.get("weights") if isinstance(vgg, Mapping) else vgg
        raise ModelFormatError(
            f"{at} vgg.weights must be one of {', '.join(WEIGHT_SOURCES)} (a model folder may not point at a local "
            f"file; pass vgg_weights= to use one), got {found!r}"
        )


def _build(
    config: dict[str, Any],
    state: dict[str, torch.Tensor],
    where: Path,
    device: str | torch.device,
    vgg_weights: str | None,
) -> ExportedModel:
    try:
        schema = LayerSchema.from_dict(config["schema"])
        check_export_config(config, where)
        mcfg = _model_config_from_dict(config["model"], str(where))
        vgg_cfg = config["vgg"]
        style_size = int(config["train"]["style_size"])
        ema = torch.tensor([float(config["ema"][k]) for k in schema.keys])
        ema_tv = float(config["ema_tv"])
    except (KeyError, TypeError, ValueError) as e:
        if isinstance(e, ModelFormatError):
            raise
        raise ModelFormatError(f"not an adjustable-style model: '{where}' config is incomplete ({_short(e)})") from None
    # Shapes first, on the meta device (no memory): a config asking for a huge network whose weights are not in
    # the file is refused here instead of being allocated.
    with torch.device("meta"):
        wanted = {k: tuple(v.shape) for k, v in _skeleton(schema, mcfg).state_dict().items()}
    found = {k: tuple(v.shape) for k, v in rename_legacy_keys(state).items()}
    if wanted != found:
        diff = sorted(set(wanted) ^ set(found)) or [k for k in wanted if wanted[k] != found[k]]
        k = diff[0]
        raise ModelFormatError(
            f"'{where}': weights do not match config.json ({k}: config wants {wanted.get(k)}, file has {found.get(k)})"
        )
    try:
        vgg = VGG19Features(
            vgg_weights or vgg_cfg["weights"],
            pooling=vgg_cfg.get("pooling", "max"),
            max_layer=_predictor_max_layer(schema, mcfg),
        )
    except RuntimeError as e:  # e.g. torchvision named but missing or broken: its message says what to install
        raise ModelFormatError(f"'{where}': cannot build its VGG19 loss network: {_short(e)}") from None
    model = AdjustableStyleModel(schema, mcfg, vgg)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ModelFormatError(f"'{where}': weights do not match config.json ({_short(e)})") from None
    model.to(device).eval().requires_grad_(False)
    return ExportedModel(model=model, schema=schema, config=config, ema=ema, ema_tv=ema_tv, style_size=style_size)
