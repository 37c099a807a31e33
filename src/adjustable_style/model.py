"""The adjustable style-transfer model: p = Φ(c, s, α).

Read top to bottom: conditional instance norm → blocks → :class:`StyleTransferNet` (T) → :class:`StylePredictor`
(P) → :class:`AdjustableStyleModel` (all of them, with Λ from :mod:`adjustable_style.conditioning`).

Design choices the paper (Babaeizadeh & Ghiasi, arXiv 1811.08560) leaves open, and what we chose:

* Style embedding P: Ghiasi et al. used an Inception-v3 trunk, which cannot be had offline here. P reads the
  frozen, pretrained VGG19 (the loss network) at ``relu1_1 … relu4_1``, takes each channel's mean and
  standard deviation (the statistics AdaIN showed capture style), 1920 numbers, and maps them with a small
  trainable MLP (1920 → 512 → 100) to the 100-d embedding ``e``. The statistics are log-compressed and
  layer-normalised first, since raw caffe-scale activations span four orders of magnitude.
* CIN placement: as in Magenta's "nza" model, the 13 decoder-side normalisations are conditional (both convs
  of the 5 residual blocks, the 2 upsampling convs, the last conv: 1379 channels); the 3 encoder convs use
  instance norm with learned affine parameters.
* Style strength: Ghiasi's identity interpolation, e = s·P(style) + (1 − s)·P(content).

On the published base model (``conditioning="base_delta"``, see :mod:`adjustable_style.magenta`): T is Magenta's
quarter-width network (8/16/32 channels, no encoder norm, no conv bias before a CIN) and P is its MobileNetV2
predictor; Λ is described in :mod:`adjustable_style.conditioning`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .checks import InputError, check_int, check_number
from .conditioning import BaseDeltaConditioning, ConditioningMLP, apply_offsets
from .layers import LayerSchema, layer_channels, sort_layers
from .mobilenet import MobileNetV2StylePredictor
from .vgg import VGG19Features

# ---------------------------------------------------------------------------------------------------- config


@dataclass
class ModelConfig:
    """Sizes of T, P and Λ. Defaults follow Magenta's arbitrary-style model where it is public.

    Attributes:
        channels: widths of the three encoder convs (the decoder mirrors them).
        n_residual: residual blocks of ``channels[-1]`` channels.
        embedding_dim: size of the style embedding ``e`` (Ghiasi et al.: 100).
        predictor_layers: VGG19 layers whose channel mean/std feed P.
        predictor_hidden: hidden width of P's head.
        mlp_hidden: hidden width of Λ (of Δ with ``base_delta``).
        mlp_depth: hidden layers of Λ (of Δ).
        encoder_norm: ``"instance"`` (affine instance norm after each encoder conv) or ``"none"`` (the published
            base model, whose batch norm is folded into the conv biases).
        cin_conv_bias: give the convs that feed a CIN a bias (redundant: the norm subtracts it; Magenta has none).
        predictor: ``"vgg"`` (statistics of the frozen VGG19) or ``"mobilenet_v2"`` (Magenta's distilled P).
        conditioning: ``"mlp"`` (Λ(α, e) → γ, β) or ``"base_delta"`` (base linear maps of e + Δ(α, e)).
        delta: what Δ moves with ``base_delta``: ``"embedding"``, ``"params"`` (γ, β) or ``"both"``.
        delta_form: how α enters Δ: ``"input"`` (concatenated to e, an MLP) or ``"bilinear"`` (also one output
            head per loss layer, scaled by 2α − 1: each slider gets its own e-dependent direction from step 1).
        slider_gain_low, slider_gain_high: with the bilinear Δ, one factor per loss layer on that layer's term below
            (above) the middle of its slider, so the two halves of a slider can be sized apart; empty: 1 for every
            layer. Set when a trained model is calibrated against the exact reference, not by training.
    """

    channels: tuple[int, int, int] = (32, 64, 128)
    n_residual: int = 5
    embedding_dim: int = 100
    predictor_layers: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
    predictor_hidden: int = 512
    mlp_hidden: int = 256
    mlp_depth: int = 2
    encoder_norm: str = "instance"
    cin_conv_bias: bool = True
    predictor: str = "vgg"
    conditioning: str = "mlp"
    delta: str = "both"
    delta_form: str = "input"
    slider_gain_low: tuple[float, ...] = ()
    slider_gain_high: tuple[float, ...] = ()

    @property
    def vgg_layers(self) -> tuple[str, ...]:
        """VGG19 layers the style predictor reads (none for MobileNetV2, which reads the image)."""
        return tuple(self.predictor_layers) if self.predictor == "vgg" else ()

    def check(self) -> None:
        """Raise :class:`~adjustable_style.checks.InputError` naming the first setting outside its allowed values."""
        choices = {
            "encoder_norm": ("instance", "none"),
            "predictor": ("vgg", "mobilenet_v2"),
            "conditioning": ("mlp", "base_delta"),
            "delta": ("embedding", "params", "both"),
            "delta_form": ("input", "bilinear"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise InputError(f"model.{name} must be one of {', '.join(allowed)}; got {getattr(self, name)!r}")
        ints = {
            "n_residual": (self.n_residual, 0, 64),
            "embedding_dim": (self.embedding_dim, 1, 4096),
            "predictor_hidden": (self.predictor_hidden, 1, 65536),
            "mlp_hidden": (self.mlp_hidden, 1, 65536),
            "mlp_depth": (self.mlp_depth, 0, 16),
        }
        for name, (v, lo, hi) in {
            **ints,
            **{f"channels[{i}]": (c, 1, 4096) for i, c in enumerate(self.channels)},
        }.items():
            check_int(f"model.{name}", v, lo, hi)
        if len(self.channels) != 3:
            raise InputError(f"model.channels must hold 3 widths, got {list(self.channels)}")
        for name in ("slider_gain_low", "slider_gain_high"):
            for i, g in enumerate(getattr(self, name)):
                check_number(f"model.{name}[{i}]", g, 0.01, 100.0)
        if (self.slider_gain_low or self.slider_gain_high) and (
            self.conditioning != "base_delta" or self.delta_form != "bilinear"
        ):
            raise InputError("model.slider_gain_low/high need conditioning=base_delta with delta_form=bilinear")


# ------------------------------------------------------------------------------------------------------ leaves


def conditional_instance_norm(
    x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float = 1e-5
) -> torch.Tensor:
    """z = γ · (x − μ) / σ + β with μ, σ per sample and channel over H, W (Dumoulin et al., 2017).

    Args:
        x: (B, C, H, W).
        gamma, beta: (B, C), one vector per sample.
        eps: added to the variance.

    Example:
        >>> x = torch.randn(2, 3, 4, 4)
        >>> z = conditional_instance_norm(x, torch.ones(2, 3), torch.zeros(2, 3))
        >>> bool(z.mean((2, 3)).abs().max() < 1e-5)
        True
    """
    if gamma.shape != x.shape[:2] or beta.shape != x.shape[:2]:
        raise ValueError(
            f"gamma/beta must have shape {tuple(x.shape[:2])}, got {tuple(gamma.shape)} and {tuple(beta.shape)}"
        )
    z = F.instance_norm(x, eps=eps)
    return z * gamma[:, :, None, None].to(z.dtype) + beta[:, :, None, None].to(z.dtype)


class ConditionalInstanceNorm(nn.Module):
    """Instance norm whose γ, β are inputs, one vector per sample (see :func:`conditional_instance_norm`).

    Example:
        >>> cin = ConditionalInstanceNorm(3)
        >>> tuple(cin(torch.randn(2, 3, 4, 4), torch.ones(2, 3), torch.zeros(2, 3)).shape)
        (2, 3, 4, 4)
    """

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.channels = channels
        self.eps = eps

    def forward(self, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        return conditional_instance_norm(x, gamma, beta, self.eps)


class ConvLayer(nn.Module):
    """Reflect-padded conv, optionally preceded by nearest ×2 upsampling (avoids deconv checkerboards)."""

    def __init__(
        self, c_in: int, c_out: int, kernel: int, stride: int = 1, upsample: bool = False, bias: bool = True
    ) -> None:
        super().__init__()
        self.upsample = upsample
        self.pad = kernel // 2
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.conv(F.pad(x, (self.pad,) * 4, mode="reflect"))


class CondConv(nn.Module):
    """ConvLayer → CIN(γ, β) → optional ReLU."""

    def __init__(
        self, c_in: int, c_out: int, kernel: int, upsample: bool = False, relu: bool = True, bias: bool = True
    ) -> None:
        super().__init__()
        self.conv = ConvLayer(c_in, c_out, kernel, upsample=upsample, bias=bias)
        self.norm = ConditionalInstanceNorm(c_out)
        self.relu = relu

    def forward(self, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.conv(x), gamma, beta)
        return F.relu(x) if self.relu else x


class ResidualBlock(nn.Module):
    """x + CIN(conv(ReLU(CIN(conv(x))))): two conditional norms per block."""

    def __init__(self, channels: int, bias: bool = True) -> None:
        super().__init__()
        self.conv1 = CondConv(channels, channels, 3, bias=bias)
        self.conv2 = CondConv(channels, channels, 3, relu=False, bias=bias)

    def forward(self, x: torch.Tensor, params: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        return x + self.conv2(self.conv1(x, *params[0]), *params[1])


# ------------------------------------------------------------------------------------------------ network T


class StyleTransferNet(nn.Module):
    """T: the feed-forward image transformation network (Johnson et al. layout, Ghiasi's CIN placement).

    conv 9×9/32 → conv 3×3/64 s2 → conv 3×3/128 s2 (instance norm) → 5 residual blocks (CIN) →
    up ×2 conv 3×3/64 (CIN) → up ×2 conv 3×3/32 (CIN) → conv 9×9/3 (CIN) → sigmoid.

    The network reports its conditional layers in :attr:`cin_layers` (name, channels) and their total in
    :attr:`cin_channels`; γ and β arrive as flat (B, cin_channels) tensors split in that order.

    Example:
        >>> net = StyleTransferNet()
        >>> net.cin_channels
        1379
        >>> g, b = torch.ones(1, 1379), torch.zeros(1, 1379)
        >>> tuple(net(torch.rand(1, 3, 64, 64), g, b).shape)
        (1, 3, 64, 64)
    """

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        cfg = config or ModelConfig()
        c1, c2, c3 = cfg.channels
        encoder: list[nn.Module] = []
        for c_in, c_out, k, s in ((3, c1, 9, 1), (c1, c2, 3, 2), (c2, c3, 3, 2)):
            encoder.append(ConvLayer(c_in, c_out, k, stride=s))
            if cfg.encoder_norm == "instance":
                encoder.append(nn.InstanceNorm2d(c_out, affine=True))
            encoder.append(nn.ReLU())
        self.encoder = nn.Sequential(*encoder)
        bias = cfg.cin_conv_bias
        self.residuals = nn.ModuleList(ResidualBlock(c3, bias) for _ in range(cfg.n_residual))
        self.up1 = CondConv(c3, c2, 3, upsample=True, bias=bias)
        self.up2 = CondConv(c2, c1, 3, upsample=True, bias=bias)
        self.out = CondConv(c1, 3, 9, relu=False, bias=bias)
        self.cin_layers: tuple[tuple[str, int], ...] = tuple(
            (name, m.channels) for name, m in self.named_modules() if isinstance(m, ConditionalInstanceNorm)
        )
        self.cin_channels = sum(c for _, c in self.cin_layers)

    def split(self, params: torch.Tensor) -> list[torch.Tensor]:
        """(B, cin_channels) → one (B, C_i) tensor per conditional layer, in :attr:`cin_layers` order."""
        if params.ndim != 2 or params.shape[1] != self.cin_channels:
            raise ValueError(f"expected (B, {self.cin_channels}) CIN parameters, got {tuple(params.shape)}")
        return list(params.split([c for _, c in self.cin_layers], dim=1))

    def forward(self, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        """Stylize ``x`` (B, 3, H, W) in [0, 1] given flat γ, β (B, cin_channels); returns (B, 3, H, W) in [0, 1].

        H and W need not be multiples of 4: the input is reflect-padded up to one and the output cropped back.
        """
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"Input must have shape (B, 3, H, W), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        ph, pw = (-h) % 4, (-w) % 4
        if torch.compiler.is_exporting() or ph or pw:  # an exported graph pads always: its H, W are symbolic
            x = F.pad(x, (0, pw, 0, ph), mode="reflect")
        params = list(zip(self.split(gamma), self.split(beta)))
        y = self.encoder(x)  # (B, c3, H/4, W/4)
        for i, block in enumerate(self.residuals):
            y = block(y, params[2 * i : 2 * i + 2])
        k = 2 * len(self.residuals)
        y = self.up2(self.up1(y, *params[k]), *params[k + 1])  # (B, c1, H, W)
        y = self.out(y, *params[k + 2])  # (B, 3, H, W)
        return torch.sigmoid(y)[..., :h, :w]


# --------------------------------------------------------------------------------------------- predictor P


class StylePredictor(nn.Module):
    """P: VGG19 channel statistics of a style image → style embedding ``e`` (Ghiasi et al., 2017, on VGG19).

    Takes precomputed VGG features, so the frozen VGG can be shared with the loss network and never enters
    this module's state.

    Example:
        >>> p = StylePredictor(ModelConfig())
        >>> feats = {n: torch.rand(2, c, 8, 8) for n, c in zip(p.layers, (64, 128, 256, 512))}
        >>> tuple(p(feats).shape)
        (2, 100)
    """

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        cfg = config or ModelConfig()
        self.layers = sort_layers(cfg.predictor_layers)
        n_stats = 2 * sum(layer_channels(n) for n in self.layers)
        self.norm = nn.LayerNorm(n_stats)
        self.head = nn.Sequential(
            nn.Linear(n_stats, cfg.predictor_hidden), nn.ReLU(), nn.Linear(cfg.predictor_hidden, cfg.embedding_dim)
        )

    def statistics(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """Per-channel mean and std of each layer, log-compressed: (B, 2·ΣC)."""
        stats = []
        for n in self.layers:
            f = features[n].float().flatten(2)  # (B, C, HW)
            stats += [f.mean(2), f.std(2, unbiased=False)]
        return torch.log1p(torch.cat(stats, dim=1))

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.head(self.norm(self.statistics(features)))


# -------------------------------------------------------------------------------------------------- Φ = all


class AdjustableStyleModel(nn.Module):
    """Φ(c, s, α): T conditioned by Λ(α, P(s)).

    The frozen VGG19 is passed in (it is shared with the loss network during training) and is not part of
    the state dict: its weights are rebuilt from their source.

    Args:
        schema: loss layers; fixes the length and order of α.
        config: network sizes.
        vgg: frozen feature extractor reaching the predictor's deepest layer.

    Example:
        >>> vgg = VGG19Features("random", max_layer="relu4_1")
        >>> model = AdjustableStyleModel(LayerSchema(), ModelConfig(), vgg)
        >>> c, s = torch.rand(2, 3, 64, 64), torch.rand(1, 3, 64, 64)
        >>> tuple(model(c, model.embed(s).expand(2, -1), torch.rand(2, 4)).shape)
        (2, 3, 64, 64)
    """

    def __init__(self, schema: LayerSchema, config: ModelConfig, vgg: VGG19Features) -> None:
        super().__init__()
        config.check()
        self.schema = schema
        self.config = config
        self.vgg = vgg
        self.net = StyleTransferNet(config)
        self.predictor: nn.Module
        if config.predictor == "mobilenet_v2":
            self.predictor = MobileNetV2StylePredictor(config.embedding_dim)
        else:
            self.predictor = StylePredictor(config)
            if self.predictor.layers[-1] not in vgg.layer_names:
                raise ValueError(f"the VGG extractor must reach {self.predictor.layers[-1]} for the style predictor")
        n, d, c = schema.n_layers, config.embedding_dim, self.net.cin_channels
        self.conditioning: ConditioningMLP | BaseDeltaConditioning
        if config.conditioning == "base_delta":
            for name in ("slider_gain_low", "slider_gain_high"):
                if getattr(config, name) and len(getattr(config, name)) != n:
                    raise InputError(
                        f"model.{name} must hold one factor per loss layer ({n}), got {getattr(config, name)}"
                    )
            self.conditioning = BaseDeltaConditioning(
                n,
                d,
                c,
                config.mlp_hidden,
                config.mlp_depth,
                config.delta,
                config.delta_form,
                gains=(config.slider_gain_low, config.slider_gain_high),
            )
        else:
            self.conditioning = ConditioningMLP(n, d, c, config.mlp_hidden, config.mlp_depth)
        self.register_load_state_dict_pre_hook(_legacy_conditioning_keys)  # files with Λ's old name, ``mlp.*``

    @property
    def has_base(self) -> bool:
        """Whether Λ is a base network's maps plus Δ, so that ``delta=False`` gives the base model's output."""
        return isinstance(self.conditioning, BaseDeltaConditioning)

    def embed(self, style: torch.Tensor, features: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Style images (B, 3, H, W) in [0, 1] → embeddings (B, D). Compute once per style and cache.

        ``features``: VGG features of ``style`` already at hand (training shares one VGG pass with the loss).
        """
        if self.config.predictor == "mobilenet_v2":
            return self.predictor(style)
        return self.predictor(features if features is not None else self.vgg(style, self.predictor.layers))

    def cin_params(
        self,
        alpha: torch.Tensor,
        embedding: torch.Tensor,
        offsets: torch.Tensor | None = None,
        delta: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """γ, β (B, cin_channels) that T is conditioned on, for weights α (B, L) and embeddings (B, D).

        Args:
            offsets: slider offsets D (1 + L, 2·cin_channels) added as γ, β += [1, g · (2α − 1)] · D (an adapter; see
                :func:`adjustable_style.conditioning.apply_offsets`); None adds nothing.
            delta: False (``base_delta`` conditioning only): the base model's γ, β, ignoring α (no offsets then).
        """
        if not delta:
            if not self.has_base:
                raise ValueError("delta=False needs a model with conditioning='base_delta'")
            if offsets is not None:
                raise ValueError("slider offsets act on Λ(α, e); they do not apply with delta=False")
            return self.conditioning.base(embedding)
        gamma, beta = self.conditioning(alpha, embedding)
        if offsets is not None:
            gamma, beta = apply_offsets(gamma, beta, alpha, offsets, getattr(self.conditioning, "half_gains", None))
        return gamma, beta

    def forward(
        self,
        content: torch.Tensor,
        embedding: torch.Tensor,
        alpha: torch.Tensor,
        delta: bool = True,
        offsets: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Stylize content (B, 3, H, W) with embeddings (B, D) and weights α (B, L) → (B, 3, H, W) in [0, 1].

        ``delta`` and ``offsets``: as in :meth:`cin_params`.
        """
        b = content.shape[0]
        if embedding.shape[0] != b or alpha.shape[0] != b:
            raise ValueError(f"batch sizes differ: content {b}, embedding {embedding.shape[0]}, alpha {alpha.shape[0]}")
        return self.net(content, *self.cin_params(alpha, embedding, offsets, delta))


def _legacy_conditioning_keys(module: nn.Module, state_dict: dict, prefix: str, *_: object) -> None:
    rename_legacy_keys(state_dict, prefix)


def rename_legacy_keys(state_dict: dict[str, torch.Tensor], prefix: str = "") -> dict[str, torch.Tensor]:
    """Rename, in place, the keys of Λ stored under its old name ``mlp`` to ``conditioning``; returns the dict.

    The bundled models' ``model.safetensors`` and older Lightning checkpoints (``model.mlp.*``) hold those keys.
    :class:`AdjustableStyleModel` runs this as its load-state-dict pre-hook; readers that compare key sets before
    loading call it first.
    """
    old = prefix + "mlp."
    for key in [k for k in state_dict if k.startswith(old)]:
        state_dict[prefix + "conditioning." + key[len(old) :]] = state_dict.pop(key)
    return state_dict
