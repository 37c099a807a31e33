"""Perceptual losses: pure functions first, then the EMA-normalised, α-weighted loss module.

All functions return one value per sample (shape (B,)), so a batch can carry a different weight vector α for
every sample, which is what the adjustable model trains on.

The module implements the paper's eq. 9 (Babaeizadeh & Ghiasi, arXiv 1811.08560), written out correctly:
each layer's loss L^l is rescaled by (Σ_i L̄^i) / L̄^l, where L̄^l is an exponential moving average of that
layer's loss, so that every layer contributes on the same scale and α^l alone decides its share:

    L = Σ_l α^l · L^l · (Σ_i L̄^i) / L̄^l  +  w_tv · TV · (Σ_i L̄^i) / T̄V

The total-variation term is normalised the same way (with its own EMA T̄V), so ``w_tv`` is a share of one
layer's weight, whatever the scale of the VGG features, instead of a magic number like 1e-6.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from .layers import LayerSchema
from .vgg import VGG19Features


def _at_least_float32(x: torch.Tensor) -> torch.Tensor:
    # Half precision goes up to float32; float64 stays (gradcheck, exact references).
    return x.to(torch.promote_types(x.dtype, torch.float32))


def gram(features: torch.Tensor, low_precision: bool = False) -> torch.Tensor:
    """Gram matrix G = Fᵀ F / (H·W), computed in float32 even under autocast (unless ``low_precision``).

    Args:
        features: (B, C, H, W), contiguous in either memory layout (channels-last is read without a copy).
        low_precision: multiply bfloat16 features as they are, the product rounded to bfloat16 (~0.4 % per entry):
            on a CPU with native bfloat16 about 0.06 s per layer of a quick pair fit at 256 px. Float32 features are
            unaffected.

    Returns:
        (B, C, C) float32 (float64 for float64 input).

    Example:
        >>> gram(torch.ones(1, 2, 3, 3)).tolist()
        [[[1.0, 1.0], [1.0, 1.0]]]
    """
    if features.ndim != 4:
        raise ValueError(f"features must have shape (B, C, H, W), got {tuple(features.shape)}")
    b, c, h, w = features.shape
    if features.is_contiguous(memory_format=torch.channels_last) and not features.is_contiguous():
        f = features.permute(0, 2, 3, 1).reshape(b, h * w, c).transpose(1, 2)  # (B, C, HW) as a view, no copy
    else:
        f = features.reshape(b, c, h * w)
    if low_precision and features.dtype == torch.bfloat16:
        return torch.bmm(f, f.transpose(1, 2)).float() / (h * w)
    # Products of large activations overflow fp16 and lose precision in bf16: leave autocast for this op.
    with torch.autocast(device_type=features.device.type, enabled=False):
        f = _at_least_float32(f)  # (B, C, HW)
        return torch.bmm(f, f.transpose(1, 2)) / (h * w)  # (B, C, C)


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared feature difference per sample: (B, C, H, W) × 2 → (B,).

    Example:
        >>> content_loss(torch.zeros(2, 1, 2, 2), torch.ones(2, 1, 2, 2)).tolist()
        [1.0, 1.0]
    """
    if features.shape != target.shape:
        raise ValueError(f"features {tuple(features.shape)} and target {tuple(target.shape)} differ in shape")
    return (_at_least_float32(features) - _at_least_float32(target)).pow(2).flatten(1).mean(1)


def style_loss(gram_features: torch.Tensor, gram_target: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of Gram matrices per sample: (B, C, C) and (B or 1, C, C) → (B,).

    Example:
        >>> style_loss(torch.zeros(1, 2, 2), torch.full((1, 2, 2), 2.0)).tolist()
        [4.0]
    """
    if gram_features.shape[-2:] != gram_target.shape[-2:]:
        raise ValueError(f"Gram shapes differ: {tuple(gram_features.shape)} vs {tuple(gram_target.shape)}")
    return (gram_features - gram_target).pow(2).flatten(1).mean(1)


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between neighbouring pixels per sample (B, C, H, W) → (B,).

    The squared (not absolute) form, as in Johnson et al. and Mahendran & Vedaldi with β = 2, keeps the
    gradient smooth; averaging over pixels makes the value independent of image size.

    Example:
        >>> total_variation(torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]])).tolist()
        [0.5]
    """
    if image.ndim != 4:
        raise ValueError(f"image must have shape (B, C, H, W), got {tuple(image.shape)}")
    image = _at_least_float32(image)
    dh = (image[:, :, 1:, :] - image[:, :, :-1, :]).pow(2).flatten(1).mean(1)
    dw = (image[:, :, :, 1:] - image[:, :, :, :-1]).pow(2).flatten(1).mean(1)
    return (dh + dw) / 2


@dataclass
class LossBreakdown:
    """A loss and its parts, per sample.

    Attributes:
        total: (B,) the weighted sum that is optimised.
        raw: (B, L) each layer's loss before any scaling, in the schema's order.
        normalized: (B, L) raw rescaled by (Σ_i EMA_i) / EMA_l, or divided by a per-sample reference.
        weighted: (B, L) normalized times α.
        tv: (B,) total variation of the output, unweighted and unnormalised.
        tv_weighted: (B,) the TV term as it enters ``total``.
    """

    total: torch.Tensor
    raw: torch.Tensor
    normalized: torch.Tensor
    weighted: torch.Tensor
    tv: torch.Tensor
    tv_weighted: torch.Tensor

    def layer_means(self, schema: LayerSchema, which: str = "raw") -> dict[str, float]:
        """Batch means of one breakdown, keyed ``content/relu3_4`` etc."""
        values = getattr(self, which).detach().float().mean(0).tolist()
        return dict(zip(schema.keys, values))


@dataclass
class Targets:
    """Precomputed targets: content features by layer (B, C, H, W) and style Gram matrices by layer (B|1, C, C)."""

    content: dict[str, torch.Tensor]
    style: dict[str, torch.Tensor]


class PerceptualLoss(nn.Module):
    """Per-layer content + style losses on a frozen VGG19, EMA-normalised and weighted per sample.

    Varying inputs (the weights α, the targets) are forward arguments; the only state is the EMA of each
    layer's loss, a buffer that lives in the ``state_dict`` (and so in checkpoints and exported models).

    Args:
        schema: which layers carry content and style losses.
        vgg: the feature extractor (must reach ``schema.deepest``).
        ema_decay: decay of the per-layer EMA (0.99: about the last 100 batches; 1: the normalisers stay at the
            first batch's losses, or at the values a checkpoint brings, which makes the objective linear in
            the losses).
        tv_weight: weight of the total-variation term (normalised like a layer, see module docs).
        normalize: apply the EMA normalisation; ``False`` uses the raw losses (classic fixed weights).

    Example:
        >>> schema = LayerSchema(content=("relu1_2",), style=("relu1_1", "relu2_1"))
        >>> loss = PerceptualLoss(schema, VGG19Features("random", max_layer="relu2_1"))
        >>> c, s = torch.rand(2, 3, 32, 32), torch.rand(1, 3, 32, 32)
        >>> out = loss(torch.rand(2, 3, 32, 32), loss.targets(c, s), torch.ones(2, 3))
        >>> tuple(out.raw.shape)
        (2, 3)
    """

    def __init__(
        self,
        schema: LayerSchema,
        vgg: VGG19Features,
        ema_decay: float = 0.99,
        tv_weight: float = 0.0,
        normalize: bool = True,
    ) -> None:
        super().__init__()
        if not 0.0 <= ema_decay <= 1.0:
            raise ValueError(f"ema_decay must be in [0, 1] (1: fixed at the first batch's losses), got {ema_decay}")
        if schema.deepest not in vgg.layer_names:
            raise ValueError(f"the VGG extractor stops before {schema.deepest}, which the schema needs")
        self.schema = schema
        self.vgg = vgg
        self.ema_decay = ema_decay
        self.tv_weight = tv_weight
        self.normalize = normalize
        self.register_buffer("ema", torch.zeros(schema.n_layers))
        self.register_buffer("ema_tv", torch.zeros(()))
        self.register_buffer("ema_initialized", torch.zeros((), dtype=torch.bool))

    # -- targets --------------------------------------------------------------------------------------------
    def content_targets(self, content: torch.Tensor) -> dict[str, torch.Tensor]:
        """Content features (detached) of images (B, 3, H, W)."""
        with torch.no_grad():
            feats = self.vgg(content, self.schema.content)
        return {k: v.detach() for k, v in feats.items()}

    def style_targets(self, style: torch.Tensor) -> dict[str, torch.Tensor]:
        """Style Gram matrices (detached, float32) of images (B, 3, H, W)."""
        with torch.no_grad():
            return self.style_targets_from(self.vgg(style, self.schema.style))

    def style_targets_from(self, features: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Style Gram matrices from precomputed VGG features (which may hold extra layers)."""
        return {k: gram(features[k]).detach() for k in self.schema.style}

    def targets(self, content: torch.Tensor, style: torch.Tensor) -> Targets:
        return Targets(self.content_targets(content), self.style_targets(style))

    # -- losses ---------------------------------------------------------------------------------------------
    def raw_losses(
        self, output: torch.Tensor, targets: Targets, low_precision_gram: Collection[str] = ()
    ) -> torch.Tensor:
        """Unscaled per-layer losses of ``output`` (B, 3, H, W): (B, L) in the schema's order (the style layers in
        ``low_precision_gram`` with :func:`gram`'s ``low_precision``)."""
        feats = self.vgg(output, self.schema.all_layers)
        cols = [content_loss(feats[n], targets.content[n]) for n in self.schema.content]
        cols += [style_loss(gram(feats[n], n in low_precision_gram), targets.style[n]) for n in self.schema.style]
        return torch.stack(cols, dim=1)

    def scales(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Multipliers (Σ_i EMA_i) / EMA_l for the layers (L,) and for TV (scalar).

        Ones until the EMA has seen a batch, or when not normalising.
        """
        if not self.normalize or not bool(self.ema_initialized):
            return torch.ones_like(self.ema), torch.ones_like(self.ema_tv)
        tiny = torch.finfo(self.ema.dtype).tiny
        total = self.ema.sum()
        return total / self.ema.clamp_min(tiny), total / self.ema_tv.clamp_min(tiny)

    @torch.no_grad()
    def update_ema(self, raw: torch.Tensor, tv: torch.Tensor) -> None:
        """Fold the batch means of ``raw`` (B, L) and ``tv`` (B,) into the EMAs.

        Under torch.distributed the batch means are averaged over ranks first, so every rank holds the
        same EMA and so applies the same normalisation.
        """
        mean = torch.cat([raw.detach().float().mean(0), tv.detach().float().mean(0, keepdim=True)])
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(mean)
            mean /= dist.get_world_size()
        mean = mean.to(self.ema.dtype)
        if bool(self.ema_initialized):
            d = self.ema_decay
            self.ema.mul_(d).add_(mean[:-1], alpha=1.0 - d)
            self.ema_tv.mul_(d).add_(mean[-1], alpha=1.0 - d)
        else:  # start from the first batch, not from zero, so no bias correction is needed
            self.ema.copy_(mean[:-1])
            self.ema_tv.copy_(mean[-1])
            self.ema_initialized.fill_(True)

    def set_ema(self, values: torch.Tensor | Mapping[str, float], tv: float) -> None:
        """Fix the normalisation scales (e.g. to a trained model's EMA, for an exact Gatys reference).

        Args:
            values: (L,) positive values in the schema's order, or a dict keyed like ``schema.keys``.
            tv: positive EMA value for the total-variation term.
        """
        if isinstance(values, Mapping):
            values = torch.tensor([float(values[k]) for k in self.schema.keys])
        values = torch.as_tensor(values, dtype=self.ema.dtype)
        ok = values.shape == self.ema.shape and bool((values > 0).all()) and bool(values.isfinite().all())
        if not ok or not tv > 0 or tv == float("inf"):
            raise ValueError(
                f"EMA values must be {self.schema.n_layers} finite positive numbers and a positive TV value, "
                f"got {values.tolist()} and {tv}"
            )
        self.ema.copy_(values.to(self.ema.device))
        self.ema_tv.fill_(float(tv))
        self.ema_initialized.fill_(True)

    def forward(
        self,
        output: torch.Tensor,
        targets: Targets,
        weights: torch.Tensor,
        update_ema: bool | None = None,
        reference: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> LossBreakdown:
        """Loss of ``output`` against ``targets`` with per-sample layer weights.

        Args:
            output: images (B, 3, H, W) in [0, 1].
            targets: from :meth:`targets`; content features must match ``output``'s batch and size,
                style Grams may have batch 1 (shared) or B.
            weights: α of shape (B, L) or (1, L), in the schema's order.
            update_ema: fold this batch into the EMA before normalising; default: ``self.training``.
            reference: per-sample normalisers ``(raw (B, L), tv (B,))`` used instead of the EMA, e.g. a base
                model's losses on the same pairs: each term becomes ``raw / reference`` (the EMA still updates).

        Returns:
            LossBreakdown with per-sample totals and per-layer terms.
        """
        n = self.schema.n_layers
        if weights.ndim != 2 or weights.shape[-1] != n or weights.shape[0] not in (1, output.shape[0]):
            raise ValueError(f"weights must have shape (B, {n}) or (1, {n}), got {tuple(weights.shape)}")
        raw = self.raw_losses(output, targets)
        tv = total_variation(output)
        if self.training if update_ema is None else update_ema:
            self.update_ema(raw, tv)
        if reference is None:
            layer_scales, tv_scale = self.scales()
            normalized = raw * layer_scales
            tv_weighted = self.tv_weight * tv_scale * tv
        else:
            ref, ref_tv = reference
            if ref.shape != raw.shape or ref_tv.shape != tv.shape:
                raise ValueError(
                    f"reference must have shapes {tuple(raw.shape)} and {tuple(tv.shape)}, "
                    f"got {tuple(ref.shape)} and {tuple(ref_tv.shape)}"
                )
            tiny = torch.finfo(raw.dtype).tiny
            normalized = raw / ref.detach().to(raw.dtype).clamp_min(tiny)
            tv_weighted = self.tv_weight * tv / ref_tv.detach().to(tv.dtype).clamp_min(tiny)
        weighted = normalized * weights.to(raw.dtype)
        total = weighted.sum(1) + tv_weighted
        return LossBreakdown(
            total=total, raw=raw, normalized=normalized, weighted=weighted, tv=tv, tv_weighted=tv_weighted
        )
