"""The LightningModule: a thin shell that builds T, P and Λ from config, samples α and logs every loss term.

Training objective (per batch of B content/style pairs, each with its own α ~ U(0, 1)^L):

    mean_b [ Σ_l α_bl · L_bl · (Σ_i EMA_i) / EMA_l + w_tv · TV_b · (Σ_i EMA_i) / EMA_tv ] / Σ_i EMA_i

The last division by Σ EMA (a constant within a step) only brings the objective to O(1), so that gradient
clipping and Adam's ε mean the same for every style layer set and VGG weight source.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from .atomic import write_file
from .config import TrainConfig, from_dict
from .image import save_image
from .layers import sort_layers
from .losses import LossBreakdown, PerceptualLoss, Targets, total_variation
from .magenta import base_model
from .model import AdjustableStyleModel
from .model_files import load_model
from .sheet import contact_sheet
from .vgg import VGG19Features


def preview_alphas(schema) -> tuple[list[str], torch.Tensor]:
    """A few telling α rows for image grids: all style layers low, all high, then each layer alone high."""
    rows, labels = [], []
    n_c = len(schema.content)

    def row(style_vals: list[float]) -> torch.Tensor:
        return torch.tensor([1.0] * n_c + style_vals)

    k = len(schema.style)
    rows += [row([0.1] * k), row([1.0] * k)]
    labels += ["all style 0.1", "all style 1"]
    for j, name in enumerate(schema.style):
        vals = [0.1] * k
        vals[j] = 1.0
        rows.append(row(vals))
        labels.append(f"{name} 1, others 0.1")
    return labels, torch.stack(rows)


class StyleTransferSystem(pl.LightningModule):
    """Trains T, Λ and the style head of P jointly on α ~ U(0, 1) (Babaeizadeh & Ghiasi, 2018).

    Args:
        config: a :class:`TrainConfig` as a plain dict (so ``save_hyperparameters`` and
            ``load_from_checkpoint`` rebuild the same networks with no modules passed in).
    """

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.save_hyperparameters({"config": config})
        self.cfg: TrainConfig = from_dict(config)
        cfg = self.cfg
        self.schema = cfg.loss.schema
        deepest = sort_layers((self.schema.deepest, *cfg.model.vgg_layers))[-1]
        # One frozen VGG serves the loss and the style predictor; its weights are never checkpointed.
        vgg = VGG19Features(cfg.loss.vgg_weights, pooling=cfg.loss.pooling, max_layer=deepest)
        self.model = AdjustableStyleModel(self.schema, cfg.model, vgg)
        if cfg.init_from:
            self._init_from(cfg.init_from)
        self.loss = PerceptualLoss(
            self.schema, vgg, ema_decay=cfg.loss.ema_decay, tv_weight=cfg.loss.tv_weight, normalize=cfg.loss.normalize
        )
        n_c = len(self.schema.content)
        gains = [1.0] * n_c + [cfg.loss.style_gain] * len(self.schema.style)
        self.register_buffer("weight_gain", torch.tensor(gains), persistent=False)
        self.skipped_files: set[int] = set()  # distinct unreadable files this rank met (data.py ids), resumed
        self._tick: tuple[float, int] | None = None  # (time, samples seen) at the last throughput log
        self._seen = 0

    def _init_from(self, source: str) -> None:
        """Copy trained weights into the model: ``"magenta"`` or an export folder / bundled name."""
        if source == "magenta":
            state = base_model(self.schema, self.cfg.model).state_dict()
        else:
            state = load_model(source).model.state_dict()
        own = self.model.state_dict()
        state = {k: v for k, v in state.items() if not k.startswith("vgg.")}
        bad = [k for k, v in state.items() if k not in own or own[k].shape != v.shape]
        if bad:
            raise ValueError(f"init_from={source!r}: weights {bad[:3]} do not fit this model's config")
        self.model.load_state_dict(state, strict=False)

    # ------------------------------------------------------------------------------------------- the step
    def sample_alpha(self, batch_size: int) -> torch.Tensor:
        """α for this step: a pure function of (seed, step, rank), so resumed runs draw the same α."""
        g = torch.Generator().manual_seed(hash((self.cfg.seed, int(self.global_step), int(self.global_rank))) % 2**63)
        lo, hi = self.cfg.loss.alpha_low, self.cfg.loss.alpha_high
        return self.schema.sample(batch_size, g, fix_single_content=self.cfg.loss.fix_single_content, low=lo, high=hi)

    def antithetic(
        self, content: torch.Tensor, style: torch.Tensor, alpha: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Samples 2i and 2i+1 become the same pair (the even one's) at α and low + high − α (style columns)."""
        lo, hi = self.cfg.loss.alpha_low, self.cfg.loss.alpha_high
        n_c = len(self.schema.content)
        alpha = alpha.clone()
        alpha[1::2, n_c:] = lo + hi - alpha[0::2, n_c:]
        if not self.cfg.loss.fix_single_content or n_c > 1:
            alpha[1::2, :n_c] = lo + hi - alpha[0::2, :n_c]
        return content[0::2].repeat_interleave(2, 0), style[0::2].repeat_interleave(2, 0), alpha

    def _prepare(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        c, s = batch["content"], batch["style"]
        if self.cfg.channels_last and c.is_cuda:
            c, s = c.contiguous(memory_format=torch.channels_last), s.contiguous(memory_format=torch.channels_last)
        return c, s

    def _step(
        self, content: torch.Tensor, style: torch.Tensor, alpha: torch.Tensor, update_ema: bool
    ) -> tuple[torch.Tensor, LossBreakdown, torch.Tensor]:
        # One VGG pass over the style batch serves both the style predictor and the style targets.
        with torch.no_grad():
            style_feats = self._style_features(style)
        embedding = self.model.embed(style, style_feats)
        output = self.model(content, embedding, alpha)
        targets = Targets(self.loss.content_targets(content), self.loss.style_targets_from(style_feats))
        weights = alpha * self.weight_gain.to(alpha.dtype)
        if self.cfg.loss.reference == "base":
            # Each pair's own yardstick: the base model's losses on the same content, style and crop.
            with torch.no_grad():
                base = self.model(content, embedding.detach(), alpha, delta=False)
                reference = (self.loss.raw_losses(base, targets), total_variation(base))
            breakdown = self.loss(output, targets, weights, update_ema=update_ema, reference=reference)
            return breakdown.total.mean(), breakdown, output
        breakdown = self.loss(output, targets, weights, update_ema=update_ema)
        objective = breakdown.total.mean() / self.loss.ema.sum().clamp_min(1e-30)
        return objective, breakdown, output

    def _style_features(self, style: torch.Tensor) -> dict[str, torch.Tensor]:
        """VGG features of the style batch; with ``data.styles_per_batch`` each distinct style goes through once."""
        layers = {*self.cfg.model.vgg_layers, *self.schema.style}
        k, b = self.cfg.data.styles_per_batch, style.shape[0]
        share = b // k if k and b % k == 0 else 1
        if share > 1:
            unique = style[::share]
            if torch.equal(style.unflatten(0, (k, share)), unique.unsqueeze(1).expand(-1, share, -1, -1, -1)):
                return {n: f.repeat_interleave(share, 0) for n, f in self.model.vgg(unique, layers).items()}
        return self.model.vgg(style, layers)

    def _log_breakdown(self, stage: str, breakdown: LossBreakdown, objective: torch.Tensor, **kw: Any) -> None:
        metrics = {f"{stage}/objective": objective.detach()}
        for which, suffix in (("raw", ""), ("normalized", "_normalized")):
            for key, value in breakdown.layer_means(self.schema, which).items():
                kind, layer = key.split("/")
                metrics[f"{stage}/{kind}{suffix}/{layer}"] = value
        metrics[f"{stage}/tv"] = float(breakdown.tv.detach().mean())
        if stage == "train":
            for key, value in zip(self.schema.keys, self.loss.ema.tolist()):
                kind, layer = key.split("/")
                metrics[f"train/{kind}_ema/{layer}"] = value
            metrics["train/tv_ema"] = float(self.loss.ema_tv)
        self.log_dict(metrics, **kw)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        content, style = self._prepare(batch)
        alpha = self.sample_alpha(content.shape[0]).to(self.device)
        if self.cfg.loss.antithetic:
            content, style, alpha = self.antithetic(content, style, alpha)
        freeze = self.cfg.loss.freeze_ema_at
        update_ema = freeze is None or self.global_step < freeze
        objective, breakdown, output = self._step(content, style, alpha, update_ema=update_ema)
        if not torch.isfinite(objective):
            raise FloatingPointError(f"non-finite loss at step {self.global_step}: {breakdown.raw.tolist()}")
        ids = batch["skipped_ids"]
        self.skipped_files.update(ids[ids >= 0].tolist())
        self._log_breakdown("train", breakdown, objective, prog_bar=False)
        self.log("train/loss", objective.detach(), prog_bar=True)
        self.log("data/skipped_files", float(len(self.skipped_files)))
        self._log_throughput(content.shape[0])
        every = self.cfg.log.image_every_n_steps
        if every > 0 and self.global_step % every == 0 and self.global_rank == 0:
            self.log_images(content[:1], style[:1])
        return objective

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["skipped_files"] = sorted(self.skipped_files)  # plain ints: weights-only readable

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.skipped_files = {int(k) for k in checkpoint.get("skipped_files", [])}

    def _log_throughput(self, batch_size: int) -> None:
        """``perf/images_per_s``: training samples per second on this rank since the last log (wall clock, so it
        includes data waits; on CUDA the queue makes single steps meaningless, an interval is not)."""
        now = time.perf_counter()
        every = max(1, self.cfg.trainer.log_every_n_steps)
        if self._tick is not None and self.global_step % every == 0:
            t0, n0 = self._tick
            self.log("perf/images_per_s", (self._seen - n0) / max(now - t0, 1e-9))
            self._tick = (now, self._seen)
        elif self._tick is None:
            self._tick = (now, self._seen)
        self._seen += batch_size

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        content, style = self._prepare(batch)
        # Fixed α per validation sample, so val curves compare like with like across steps.
        g = torch.Generator().manual_seed(1234 + batch_idx)
        alpha = self.schema.sample(content.shape[0], g, fix_single_content=self.cfg.loss.fix_single_content)
        objective, breakdown, _ = self._step(content, style, alpha.to(self.device), update_ema=False)
        self._log_breakdown("val", breakdown, objective, sync_dist=True)

    # ---------------------------------------------------------------------------------------- previews
    @torch.no_grad()
    def render_grid(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """content | style | outputs at :func:`preview_alphas`, labelled: (1, 3, H, W) in [0, 1]."""
        labels, alphas = preview_alphas(self.schema)
        alphas = alphas.to(self.device)
        n = alphas.shape[0]
        was_training = self.model.training
        self.model.eval()
        with torch.autocast(self.device.type, enabled=False):
            c, s = content.float().contiguous(), style.float().contiguous()
            e = self.model.embed(s)
            out = self.model(c.expand(n, -1, -1, -1), e.expand(n, -1), alphas)
        self.model.train(was_training)
        tiles = [c[0], s[0], *out]
        return contact_sheet(tiles, ["content", "style", *labels], cell=min(256, c.shape[-1]))

    def log_images(self, content: torch.Tensor, style: torch.Tensor) -> None:
        grid = self.render_grid(content, style)
        log_dir = self.trainer.log_dir if self.trainer is not None else None
        if log_dir:
            save_image(grid, Path(log_dir) / "images" / f"step{self.global_step:07d}.png")
        experiment = getattr(self.logger, "experiment", None)
        if experiment is not None and hasattr(experiment, "add_image"):
            experiment.add_image("preview", grid[0].cpu(), self.global_step)

    # ------------------------------------------------------------------------------------ optimisation
    def configure_optimizers(self) -> Any:
        o = self.cfg.optim
        base = [p for n, p in self.model.conditioning.named_parameters() if n.startswith("base_")]
        mlp = [p for n, p in self.model.conditioning.named_parameters() if not n.startswith("base_")]
        groups = []
        for params, scale in (
            (mlp, 1.0),
            (list(self.model.net.parameters()), o.net_lr_scale),
            (base, o.base_lr_scale),
            (list(self.model.predictor.parameters()), o.predictor_lr_scale),
        ):
            if scale > 0:
                groups.append({"params": params, "lr": o.lr * scale})
            else:  # frozen: no gradients, no optimizer state
                for p in params:
                    p.requires_grad_(False)
        groups = [g for g in groups if g["params"]]
        opt = torch.optim.Adam(groups, lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)
        warm = max(o.warmup_steps, 0)
        total = max(self.cfg.trainer.max_steps, warm + 1)

        def schedule(step: int) -> float:  # linear warm-up, then cosine decay to 10 %
            if step < warm:
                return (step + 1) / warm
            t = min((step - warm) / max(total - warm, 1), 1.0)
            return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_fit_start(self) -> None:
        if self.cfg.channels_last and self.device.type == "cuda":
            self.model.net.to(memory_format=torch.channels_last)

    def on_train_end(self) -> None:
        # Proof that the EMA buffers agree across ranks: each rank writes its own copy beside the logs.
        if self.trainer is not None and self.trainer.world_size > 1 and self.trainer.log_dir:
            path = Path(self.trainer.log_dir) / f"ema_rank{self.global_rank}.json"
            text = json.dumps({"ema": self.loss.ema.tolist(), "ema_tv": float(self.loss.ema_tv)})
            write_file(path, lambda tmp: tmp.write_text(text))
