"""Conditioning: everything that turns the loss weights α into the CIN parameters γ, β of the transformer T.

Read top to bottom: the slider coefficients [1, g · (2α − 1)] and the slider-offset formula → :class:`ConditioningMLP`
(Λ of a model trained from scratch) → :class:`BaseDeltaConditioning` (Λ on the published base model).

Design choices the paper (Babaeizadeh & Ghiasi, arXiv 1811.08560) leaves open, and what we chose:

* How Λ combines α and e: concatenation ``[α, e]`` → 2 hidden layers (256, ReLU) → one linear head per
  output (γ, β) over every CIN channel. α enters as is (in [0, 1]). Heads start with tiny weights
  (std 1e-3) and bias γ = 1, β = 0, so at step 0 every CIN is nearly a plain instance norm.
* On the published base model (``conditioning="base_delta"``, see :mod:`adjustable_style.magenta`) Λ is
  Magenta's own linear maps of ``e`` plus a correction Δ(α, e) whose last layers start at zero, so that at step 0
  every α gives Magenta's output exactly. Δ may shift the embedding (``e + Δe``, which keeps every α on the base
  model's manifold of styles), the CIN parameters directly, or both.
* Slider offsets D (adapters, calibration; see :mod:`adjustable_style.adapt`): γ, β += [1, g · (2α − 1)] · D,
  defined once here (:func:`apply_offsets`), with the same coefficients as the bilinear Δ's heads.
* The bilinear Δ's two ends of a slider are mirror images unless sized apart: each α's term g·(2α − 1)·head(h)
  takes g from ``half_gains`` (the model config's ``slider_gain_low/high``), one factor below the middle and one
  above. L-BFGS on the paper's objective moves the picture much less from the middle to 1 than from the middle to 0
  (dropping a loss term changes the optimum more than doubling it), so a mirrored slider overshoots at the top.

Example:
    >>> lam = ConditioningMLP(4, 100, 1379)
    >>> g, b = lam(torch.rand(2, 4), torch.randn(2, 100))
    >>> tuple(g.shape), tuple(b.shape)
    ((2, 1379), (2, 1379))
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

# ------------------------------------------------------------------------------------------- slider offsets


def slider_coefficients(alpha: torch.Tensor, half_gains: torch.Tensor | None = None) -> torch.Tensor:
    """[1, g · (2α − 1)] (B, 1 + L) for α (B, L): the weights of the bilinear Δ's terms and of slider offsets D
    (γ, β += coefficients · D), so that α = 0.5 is the centre of every slider. ``half_gains`` (2, L): g per α, row 0
    below the middle and row 1 above; None: g = 1, and the two ends are mirror images.

    Example:
        >>> slider_coefficients(torch.tensor([[0.0, 1.0]]), torch.tensor([[2.0, 2.0], [0.5, 0.5]])).tolist()
        [[1.0, -2.0, 0.5]]
    """
    s = 2 * alpha - 1
    if half_gains is not None:
        s = s * torch.where(s < 0, half_gains[0].to(s), half_gains[1].to(s))
    return torch.cat([torch.ones_like(alpha[:, :1]), s], dim=1)


def offset_shift(alpha: torch.Tensor, offsets: torch.Tensor, half_gains: torch.Tensor | None = None) -> torch.Tensor:
    """The γ, β shift (B, 2·C) that slider offsets D (1 + L, 2·C) add at α (B, L): [1, g · (2α − 1)] · D."""
    return slider_coefficients(alpha.to(offsets.dtype), half_gains) @ offsets


def apply_offsets(
    gamma: torch.Tensor,
    beta: torch.Tensor,
    alpha: torch.Tensor,
    offsets: torch.Tensor,
    half_gains: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Slider offsets: γ, β += [1, g · (2α − 1)] · D, the one definition every path (adapters, their fit, tiles)
    uses; the same coefficients as the bilinear Δ's heads, so offsets fold into them exactly.

    Args:
        gamma, beta: (B, C) from Λ.
        alpha: (B, L) loss weights.
        offsets: D (1 + L, 2·C); γ's part in the first C columns. Zero changes nothing.
        half_gains: the model's per-half slider gains (see :func:`slider_coefficients`).

    Example:
        >>> g, b = apply_offsets(torch.ones(2, 3), torch.zeros(2, 3), torch.rand(2, 4), torch.zeros(5, 6))
        >>> bool(torch.equal(g, torch.ones(2, 3)) and torch.equal(b, torch.zeros(2, 3)))
        True
    """
    if offsets.ndim != 2 or offsets.shape != (1 + alpha.shape[1], 2 * gamma.shape[1]):
        raise ValueError(
            f"offsets must have shape ({1 + alpha.shape[1]}, {2 * gamma.shape[1]}), got {tuple(offsets.shape)}"
        )
    dg, db = offset_shift(alpha, offsets, half_gains).chunk(2, 1)
    return gamma + dg.to(gamma.dtype), beta + db.to(beta.dtype)


# ---------------------------------------------------------------------------------------------------- Λ


class ConditioningMLP(nn.Module):
    """Λ: (α, e) → (γ, β) for every CIN channel (Babaeizadeh & Ghiasi, 2018, Fig. 2).

    Args:
        n_alpha: number of loss weights (content + style layers).
        embedding_dim: size of ``e``.
        cin_channels: total CIN channels of T (what T reports).
        hidden, depth: hidden width and number of hidden layers.

    Example:
        >>> mlp = ConditioningMLP(4, 100, 1379)
        >>> g, b = mlp(torch.rand(2, 4), torch.randn(2, 100))
        >>> bool((g - 1).abs().max() < 0.05 and b.abs().max() < 0.05)
        True
    """

    def __init__(self, n_alpha: int, embedding_dim: int, cin_channels: int, hidden: int = 256, depth: int = 2) -> None:
        super().__init__()
        dims = [n_alpha + embedding_dim] + [hidden] * depth
        body: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            body += [nn.Linear(a, b), nn.ReLU()]
        self.body = nn.Sequential(*body)
        self.gamma = nn.Linear(dims[-1], cin_channels)
        self.beta = nn.Linear(dims[-1], cin_channels)
        # Start as (nearly) plain instance norm: γ ≈ 1, β ≈ 0. The weights are tiny rather than zero so that
        # gradients reach Λ's body and the style head from the very first step.
        for head, bias in ((self.gamma, 1.0), (self.beta, 0.0)):
            nn.init.normal_(head.weight, std=1e-3)
            nn.init.constant_(head.bias, bias)
        self.n_alpha = n_alpha

    def forward(self, alpha: torch.Tensor, embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """α (B, n_alpha), e (B, D) → γ, β each (B, cin_channels)."""
        if alpha.ndim != 2 or alpha.shape[1] != self.n_alpha:
            raise ValueError(f"alpha must have shape (B, {self.n_alpha}), got {tuple(alpha.shape)}")
        h = self.body(torch.cat([alpha.to(embedding.dtype), embedding], dim=1))
        return self.gamma(h), self.beta(h)


class BaseDeltaConditioning(nn.Module):
    """Λ on a trained base model: γ, β = base maps of (e + Δe) + (Δγ, Δβ), with Δ = MLP(α, e).

    The base maps are Magenta's per-CIN linear maps of the style embedding (1×1 convs in the published graph;
    no +1 on γ). Δ's output layers start at exactly zero, so at step 0 every α reproduces the base model; what
    α does is learned by fine-tuning with the paper's α-weighted loss (Babaeizadeh & Ghiasi, 2018, Fig. 2).

    Args:
        n_alpha: number of loss weights (content + style layers).
        embedding_dim: size of ``e``.
        cin_channels: total CIN channels of T (what T reports).
        hidden, depth: Δ's hidden width and number of hidden layers (depth ≥ 1).
        delta: ``"embedding"`` (Δ shifts e), ``"params"`` (Δ adds to γ, β) or ``"both"``.
        form: ``"input"``: Δ = head(h), h = MLP(α ⊕ e); ``"bilinear"``: Δ = head_0(h) + Σ_l (2α_l − 1)·head_l(h).
            With α only an input, Δ's first layer is dominated by the 100-d e and α's effect must be grown through
            zero-initialised heads; the bilinear heads make each slider's effect a direction from step 1.
        gains: with ``"bilinear"``, factors (one per α, or empty for 1) on each α's term below and above its
            middle: the two halves of a slider sized apart.

    Example:
        >>> lam = BaseDeltaConditioning(4, 100, 347)
        >>> e = torch.randn(2, 100)
        >>> g, b = lam(torch.rand(2, 4), e)
        >>> bool(torch.equal(g, lam.base_gamma(e)) and torch.equal(b, lam.base_beta(e)))
        True
    """

    def __init__(
        self,
        n_alpha: int,
        embedding_dim: int,
        cin_channels: int,
        hidden: int = 256,
        depth: int = 2,
        delta: str = "both",
        form: str = "input",
        gains: tuple[Sequence[float], Sequence[float]] = ((), ()),
    ) -> None:
        super().__init__()
        self.n_alpha = n_alpha
        self.terms = 1 + n_alpha if form == "bilinear" else 1  # output heads: one shared, one per α
        # Each α's bilinear term is scaled by one factor below its middle and another above (rows 0, 1); part of
        # the model's config, not of its weights.
        half = torch.ones(2, n_alpha)
        for row, g in enumerate(gains):
            if len(g):
                half[row] = torch.tensor([float(x) for x in g])
        self.register_buffer("half_gains", half, persistent=False)
        self.base_gamma = nn.Linear(embedding_dim, cin_channels)
        self.base_beta = nn.Linear(embedding_dim, cin_channels)
        # The embedding is normalised and the body uses SiLU with He-initialised weights and zero biases: with
        # PyTorch's default init and ReLU the raw 100-d e (norm ~10) left most hidden units dead, and Adam pushed
        # the rest below zero within ~200 steps, so Δ collapsed to its output biases (the same for every style).
        self.in_norm = nn.LayerNorm(embedding_dim, elementwise_affine=False)
        dims = [n_alpha + embedding_dim] + [hidden] * max(depth, 1)
        body: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            layer = nn.Linear(a, b)
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            nn.init.zeros_(layer.bias)
            body += [layer, nn.SiLU()]
        self.body = nn.Sequential(*body)
        k = self.terms
        self.delta_embedding = nn.Linear(hidden, k * embedding_dim) if delta in ("embedding", "both") else None
        self.delta_params = nn.Linear(hidden, k * 2 * cin_channels) if delta in ("params", "both") else None
        for head in (self.delta_embedding, self.delta_params):
            if head is not None:  # zero start: the base model's output for every α
                nn.init.zeros_(head.weight)
                nn.init.zeros_(head.bias)

    def base(self, embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The base model's γ, β (B, cin_channels) for embeddings (B, D): what Δ = 0 gives."""
        return self.base_gamma(embedding), self.base_beta(embedding)

    def forward(self, alpha: torch.Tensor, embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """α (B, n_alpha), e (B, D) → γ, β each (B, cin_channels)."""
        if alpha.ndim != 2 or alpha.shape[1] != self.n_alpha:
            raise ValueError(f"alpha must have shape (B, {self.n_alpha}), got {tuple(alpha.shape)}")
        a = alpha.to(embedding.dtype)
        h = self.body(torch.cat([2 * a - 1, self.in_norm(embedding)], dim=1))  # inputs centred, O(1) per entry
        coef = slider_coefficients(a, self.half_gains) if self.terms > 1 else None  # (B, 1 + L)

        def head(layer: nn.Linear) -> torch.Tensor:
            out = layer(h)
            if coef is None:
                return out
            return torch.einsum("bk,bkd->bd", coef, out.unflatten(1, (self.terms, -1)))  # Σ_k coef_k · head_k(h)

        e = embedding + head(self.delta_embedding) if self.delta_embedding is not None else embedding
        gamma, beta = self.base(e)
        if self.delta_params is not None:
            dg, db = head(self.delta_params).chunk(2, dim=1)
            gamma, beta = gamma + dg, beta + db
        return gamma, beta
