"""Finding, checking and loading exported models: an export folder, a bundled name or a ``.ckpt`` → a model.

An export folder (written by :mod:`adjustable_style.export`) is untrusted input: its ``config.json`` is checked
against the schema with bounds before anything is allocated, its weights must match the shapes the config asks
for, and its VGG19 may only come from a built-in source. A ``.ckpt`` file is read safely
(:mod:`adjustable_style.checkpoint`) and exported in memory.

Example:
    >>> exported = load_model("models/quick")  # doctest: +SKIP
    >>> exported.schema.style  # doctest: +SKIP
    ('relu2_2', 'relu3_4', 'relu4_4')
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from .checkpoint import ModelFormatError, one_line
from .checks import InputError, check_int, check_number
from .export import CONFIG_FILE, FORMAT, FORMAT_VERSION, WEIGHTS_FILE, checkpoint_payload, skeleton_model
from .layers import LayerSchema, sort_layers
from .losses import PerceptualLoss
from .model import AdjustableStyleModel, ModelConfig, rename_legacy_keys
from .vgg import WEIGHT_SOURCES, VGG19Features

DEFAULT_MODEL_DIR = Path(__file__).parent / "assets" / "models"


def cache_root() -> Path:
    """The per-user cache (ONNX graphs, slider adapters, pair preparations, evaluate's L-BFGS references):
    ``$ADJUSTABLE_STYLE_CACHE``, else ``$XDG_CACHE_HOME/adjustable-style``, else ``~/.cache/adjustable-style``."""
    base = os.environ.get("ADJUSTABLE_STYLE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "adjustable-style"
    )
    return Path(base)


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
        raise ModelFormatError(f"{where}: bad model settings ({one_line(e)})") from None


def _predictor_max_layer(schema: LayerSchema, mcfg: ModelConfig) -> str:
    # One frozen VGG serves P and the loss network (for measuring raw losses), as in training.
    return sort_layers((schema.deepest, *mcfg.vgg_layers))[-1]


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
        raise ModelFormatError(
            f"not an adjustable-style model: '{cfg_path}' is not valid JSON ({one_line(e)})"
        ) from None
    if not isinstance(cfg, dict) or cfg.get("format") != FORMAT:
        found = cfg.get("format") if isinstance(cfg, dict) else type(cfg).__name__
        raise ModelFormatError(f"not an adjustable-style model: '{cfg_path}' has format {found!r}, expected {FORMAT!r}")
    version = cfg.get("version")
    if type(version) is not int or version < 1:
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
            raise ModelFormatError(f"cannot read '{weights}': {one_line(e)}") from None
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
    # JSON numbers only: a string or a bool where a number belongs is a damaged or forged file, not a value.
    try:
        if integer:
            return check_int(what, value, int(lo), int(hi))
        if type(value) not in (int, float):
            raise InputError(f"{what} must be a number in [{lo:g}, {hi:g}], got {value!r}")
        return check_number(what, value, lo, hi)  # also refuses nan and ±inf
    except InputError as e:
        raise ModelFormatError(str(e)) from None


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
            f"{at} train.alpha_low must be below train.alpha_high, "
            f"got {train.get('alpha_low')!r}, {train.get('alpha_high')!r}"
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
        raise ModelFormatError(
            f"not an adjustable-style model: '{where}' config is incomplete ({one_line(e)})"
        ) from None
    # Shapes first, on the meta device (no memory): a config asking for a huge network whose weights are not in
    # the file is refused here instead of being allocated.
    with torch.device("meta"):
        wanted = {k: tuple(v.shape) for k, v in skeleton_model(schema, mcfg).state_dict().items()}
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
        raise ModelFormatError(f"'{where}': cannot build its VGG19 loss network: {one_line(e)}") from None
    model = AdjustableStyleModel(schema, mcfg, vgg)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ModelFormatError(f"'{where}': weights do not match config.json ({one_line(e)})") from None
    model.to(device).eval().requires_grad_(False)
    return ExportedModel(model=model, schema=schema, config=config, ema=ema, ema_tv=ema_tv, style_size=style_size)
