"""Wiring a training run: Trainer, logger, checkpoints (written atomically), resume.

``fit(cfg)`` is what ``adjustable-style train`` calls; tests call it too.

Resuming reads the checkpoint with :func:`adjustable_style.checkpoint.read_checkpoint` and an allow-list of the
few non-tensor types our own Lightning checkpoints can hold (:data:`RESUME_SAFE_GLOBALS`): a ``.ckpt`` from
elsewhere can never run code here, and one that needs anything more is refused with one line. A run killed
mid-save leaves at most a ``.*.ckpt.*.tmp`` file; the next resume deletes it, and resumes from the newest
complete checkpoint when ``last.ckpt`` lags one.
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning_fabric.utilities.data import AttributeDict as FabricAttributeDict
from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint, TQDMProgressBar
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger
from pytorch_lightning.strategies import DDPStrategy
from pytorch_lightning.utilities.parsing import AttributeDict

from .atomic import write_file
from .checkpoint import ModelFormatError, read_checkpoint
from .config import ConfigError, TrainConfig, to_dict
from .data import StyleDataModule
from .system import StyleTransferSystem

log = logging.getLogger(__name__)

# The only non-tensor, non-builtin types a checkpoint of ours holds (Lightning's hyper-parameter containers).
# Both are plain dict subclasses: unpickling them sets items and runs no code of the file's choosing.
RESUME_SAFE_GLOBALS: list = [AttributeDict, FabricAttributeDict]
# AtomicCheckpointIO's temporaries: ".<name>.ckpt.<random>.tmp" (atomic.write_file's names, no suffix kept).
_TMP_CHECKPOINT = re.compile(r"^\..+\.ckpt\.[A-Za-z0-9_]+\.tmp$")
_STEP_CHECKPOINT = re.compile(r"^step(\d+)\.ckpt$")


def _read_resume(path: str | Path, mmap: bool = False) -> dict[str, Any]:
    return read_checkpoint(path, allowed=RESUME_SAFE_GLOBALS, resume=True, mmap=mmap)


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporaries a run killed mid-save left in its checkpoint folder; returns what was removed."""
    d = Path(folder)
    if not d.is_dir():
        return []
    stale = [f for f in d.iterdir() if f.is_file() and _TMP_CHECKPOINT.match(f.name)]
    for f in stale:
        f.unlink(missing_ok=True)
        log.warning("removed %s, left by a run killed while saving a checkpoint", f)
    return stale


def newest_checkpoint(path: str | Path) -> Path:
    """``path``, or a newer complete ``step*.ckpt`` beside it when ``path`` is a ``last.ckpt`` that lags.

    Lightning writes the step checkpoint first and ``last.ckpt`` after it: a run killed in between leaves
    ``last.ckpt`` one save behind. Resuming from it would redo (and lose) those steps.
    """
    p = Path(path)
    if p.name != "last.ckpt" or not p.parent.is_dir():
        return p
    # A run killed during its first save of last.ckpt has step checkpoints but no last.ckpt yet.
    last_step = int(_read_resume(p, mmap=True)["global_step"]) if p.exists() else -1
    candidates = sorted(
        ((int(m.group(1)), f) for f in p.parent.iterdir() if (m := _STEP_CHECKPOINT.match(f.name))), reverse=True
    )
    for step, f in candidates:
        if step <= last_step:
            break
        try:
            if int(_read_resume(f, mmap=True)["global_step"]) > last_step:
                was = f"is at step {last_step}" if last_step >= 0 else "is missing"
                log.warning("%s %s, %s is at step %d: resuming from the newer", p, was, f.name, step)
                return f
        except ModelFormatError:  # an incomplete or damaged newer file: not a resume point
            continue
    return p


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write checkpoints to a temporary file beside the target, then rename: a run killed mid-save never
    leaves a truncated ``last.ckpt`` in place of a good one."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        def save(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)

        # No suffix on the temporary: Lightning's checkpoint callback must never take it for a .ckpt.
        write_file(path, save, keep_suffix=False)

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        # Always the safe reader, whatever Lightning asks for: resuming must never unpickle arbitrary objects.
        return _read_resume(path)


def build_trainer(cfg: TrainConfig, callbacks: list[pl.Callback] | None = None) -> pl.Trainer:
    t, lg = cfg.trainer, cfg.log
    if lg.logger == "tensorboard":
        logger: Any = TensorBoardLogger(lg.out_dir, name=lg.name, version=lg.version, default_hp_metric=False)
    else:
        logger = CSVLogger(lg.out_dir, name=lg.name, version=lg.version)
    ckpt = ModelCheckpoint(
        filename="step{step:07d}",
        auto_insert_metric_name=False,
        every_n_train_steps=lg.checkpoint_every_n_steps,
        save_top_k=lg.keep_checkpoints,
        monitor="step",
        mode="max",
        save_last=True,
    )
    strategy: Any = t.strategy
    if t.strategy == "ddp":
        # EMA buffers are all-reduced by the loss itself, and the frozen VGG is identical by construction:
        # broadcasting 40 MB of buffers every step would only cost bandwidth.
        strategy = DDPStrategy(broadcast_buffers=False)
    cbs: list[pl.Callback] = [ckpt, *(callbacks or [])]
    if lg.progress_bar:
        cbs.append(TQDMProgressBar(refresh_rate=max(1, t.log_every_n_steps // 5)))
    if lg.logger == "tensorboard":
        cbs.append(LearningRateMonitor("step"))
    try:
        return _trainer(cfg, strategy, cbs, logger)
    except (TypeError, ValueError) as e:  # Lightning's own checks of accelerator/devices/precision/strategy
        raise ConfigError(f"bad trainer settings: {' '.join(str(e).split())}") from None


def _trainer(cfg: TrainConfig, strategy: Any, cbs: list[pl.Callback], logger: Any) -> pl.Trainer:
    t, lg = cfg.trainer, cfg.log
    return pl.Trainer(
        max_steps=t.max_steps,
        max_time=t.max_time,
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=strategy,
        precision=t.precision,
        logger=logger,
        callbacks=cbs,
        log_every_n_steps=t.log_every_n_steps,
        val_check_interval=t.val_check_interval,
        check_val_every_n_epoch=None,
        limit_val_batches=cfg.data.val_batches,
        num_sanity_val_steps=0,
        gradient_clip_val=t.gradient_clip_val,
        accumulate_grad_batches=t.accumulate_grad_batches,
        deterministic=t.deterministic,
        enable_progress_bar=lg.progress_bar,
        enable_model_summary=False,
        use_distributed_sampler=False,  # our sampler shards by rank itself (see data.py)
        plugins=[AtomicCheckpointIO()],
        benchmark=t.accelerator != "cpu",
    )


def _check_resume(cfg: TrainConfig, system: StyleTransferSystem) -> str:
    """The checkpoint to resume from (see :func:`newest_checkpoint`), checked to fit ``system``; raises
    ConfigError before anything is written."""
    assert cfg.resume is not None
    remove_stale_temporaries(Path(cfg.resume).parent)
    path = newest_checkpoint(cfg.resume)
    state = _read_resume(path, mmap=True)["state_dict"]
    own = system.state_dict()
    missing, extra = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or extra or wrong:
        what = (
            f"lacks {missing[0]}"
            if missing
            else f"has unknown {extra[0]}"
            if extra
            else f"has {wrong[0]} of shape {tuple(state[wrong[0]].shape)}, expected {tuple(own[wrong[0]].shape)}"
        )
        raise ConfigError(f"cannot resume from {str(path)!r}: it does not fit this config's model (it {what})")
    return str(path)


def _run_dir(trainer: pl.Trainer) -> Path | None:
    logger = trainer.logger
    return Path(logger.log_dir) if logger is not None and logger.log_dir else None


def fit(cfg: TrainConfig, callbacks: list[pl.Callback] | None = None) -> tuple[pl.Trainer, StyleTransferSystem]:
    """Train (or resume, when ``cfg.resume`` is set) and return the trainer and the system.

    A run that fails before writing its first checkpoint removes the log folder it created, so bad input
    (a damaged resume file, a missing data folder) leaves nothing behind.
    """
    if cfg.resume is not None and not Path(cfg.resume).is_file() and not Path(cfg.resume).parent.is_dir():
        raise ConfigError(f"resume checkpoint {cfg.resume!r} not found; point resume= at a .ckpt file")
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    system = StyleTransferSystem(to_dict(cfg))
    if cfg.compile:
        system.model.net = torch.compile(system.model.net)  # type: ignore[assignment]
    resume = _check_resume(cfg, system) if cfg.resume is not None else None
    data = StyleDataModule(cfg.data, seed=cfg.seed)
    trainer = build_trainer(cfg, callbacks)
    run_dir = _run_dir(trainer)
    made = [d for d in (run_dir, *run_dir.parents) if not d.exists()] if run_dir is not None else []
    try:
        # weights_only: AtomicCheckpointIO reads with the allow-listed safe unpickler in any case.
        trainer.fit(system, datamodule=data, ckpt_path=resume, weights_only=True)
    except Exception:
        if trainer.global_rank == 0 and run_dir is not None and not any(run_dir.rglob("*.ckpt")):
            shutil.rmtree(run_dir, ignore_errors=True)
            for d in made[1:]:  # the folders above it that this run created, innermost first, if empty
                try:
                    d.rmdir()
                except OSError:
                    break
        raise
    if run_dir is not None:
        remove_stale_temporaries(run_dir / "checkpoints")
    return trainer, system
