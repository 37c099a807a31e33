"""`adjustable-style train`: a training run from a YAML config and key=value overrides (Lightning)."""

from __future__ import annotations

import argparse
import logging

import torch.distributed as dist

from ..config import load_config
from ..train import fit
from .common import quiet_arg, say


def cmd_train(args: argparse.Namespace) -> int:
    overrides = list(args.overrides)
    if args.quiet:  # no progress bar, and Lightning's info lines (devices, model summary) hidden
        overrides.append("log.progress_bar=false")
        for name in ("pytorch_lightning", "lightning", "lightning_fabric"):
            logging.getLogger(name).setLevel(logging.WARNING)
    cfg = load_config(args.config, overrides)
    trainer, _ = fit(cfg)
    ckpt = trainer.checkpoint_callback
    last = getattr(ckpt, "last_model_path", "") if ckpt is not None else ""
    log_dir = trainer.log_dir  # a collective call under DDP: every rank must make it
    if trainer.global_rank == 0:
        say(args, f"trained {trainer.global_step} steps; logs in {log_dir}")
        if last:
            say(args, f"checkpoint: {last}")
            say(args, f"export it for inference: adjustable-style export {last} -o MODEL_DIR")
    if dist.is_available() and dist.is_initialized():  # tear the process group down before the interpreter does
        dist.barrier()  # (left to exit, gloo's threads can abort the process after a finished run)
        dist.destroy_process_group()
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train an adjustable model (Lightning); resume with resume=PATH",
        description="Train T, Λ and the style head jointly on α ~ U(0, 1). CONFIG is a YAML file "
        "(configs/train/quick.yaml, configs/train/default.yaml); key=value pairs override it, e.g. "
        "trainer.max_steps=1000 'data.content_dirs=[/data/photos]' resume=runs/x/checkpoints/last.ckpt. "
        "Several GPUs: trainer.devices=4 trainer.strategy=ddp.",
    )
    p.add_argument("config", help="YAML config file")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    quiet_arg(p)
    p.set_defaults(func=cmd_train)
