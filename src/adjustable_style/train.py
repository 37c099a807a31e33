"""Wiring a training run: Trainer, logger, checkpoints (written atomically), resume.

``fit(cfg)`` is what ``adjustable-style train`` calls; tests call it too.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint, TQDMProgressBar
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

from .config import ConfigError, TrainConfig, to_dict
from .data import StyleDataModule
from .system import StyleTransferSystem

log = logging.getLogger(__name__)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write checkpoints to a temporary file beside the target, then rename: a run killed mid-save never
    leaves a truncated ``last.ckpt`` in place of a good one."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(checkpoint, f)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


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
        from pytorch_lightning.strategies import DDPStrategy  # noqa: PLC0415

        # EMA buffers are all-reduced by the loss itself, and the frozen VGG is identical by construction:
        # broadcasting 40 MB of buffers every step would only cost bandwidth.
        strategy = DDPStrategy(broadcast_buffers=False)
    cbs: list[pl.Callback] = [ckpt, *(callbacks or [])]
    if lg.progress_bar:
        cbs.append(TQDMProgressBar(refresh_rate=max(1, t.log_every_n_steps // 5)))
    if lg.logger == "tensorboard":
        cbs.append(LearningRateMonitor("step"))
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


def fit(cfg: TrainConfig, callbacks: list[pl.Callback] | None = None) -> tuple[pl.Trainer, StyleTransferSystem]:
    """Train (or resume, when ``cfg.resume`` is set) and return the trainer and the system."""
    if cfg.resume is not None and not Path(cfg.resume).is_file():
        raise ConfigError(f"resume checkpoint {cfg.resume!r} not found; point resume= at a .ckpt file")
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    system = StyleTransferSystem(to_dict(cfg))
    if cfg.compile:
        system.model.net = torch.compile(system.model.net)  # type: ignore[assignment]
    data = StyleDataModule(cfg.data, seed=cfg.seed)
    trainer = build_trainer(cfg, callbacks)
    # weights_only=False: a Lightning checkpoint holds optimizer and loop state; only resume your own runs.
    trainer.fit(system, datamodule=data, ckpt_path=cfg.resume, weights_only=False)
    return trainer, system
