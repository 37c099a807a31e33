"""Optimisation-based style transfer (Gatys et al., 2016): L-BFGS on the pixels.

It minimises the very loss the adjustable network is trained on (:class:`~adjustable_style.losses.PerceptualLoss`)
for one fixed weight vector α, so it is the exact reference for what a model "retrained with those weights"
would aim at. Two choices make the weights mean the same thing here as in the network:

* normalisation: the loss is EMA-normalised like in training. Given a trained model's EMA (``ema=``), those
  values are used as they are. Without one, each layer is normalised by its distance between the two end
  points (the style loss of the content image, the content loss of the style image, and the TV of the content
  image), so weight 1 on every layer means "every layer counts equally", whatever the VGG scale.
* optimisation runs in an unconstrained space: pixels = sigmoid(z), as the network's last layer does, so
  L-BFGS never leaves [0, 1] and no clamping breaks its curvature estimates.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from .checks import InputError, check_int
from .color import preserve_color as _preserve_color
from .image import resize
from .layers import DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS, LayerSchema
from .losses import LossBreakdown, PerceptualLoss, content_loss, gram, style_loss, total_variation
from .tiling import MemoryLimitError
from .vgg import VGG19Features

INITS = ("content", "style", "noise")
_MAX_LINE_SEARCH = 25  # evaluations per line search, torch's own default for strong Wolfe


@dataclass
class GatysConfig:
    """Settings of one optimisation run (defaults follow the paper's layer choice).

    Attributes:
        style_weights: α per style layer; layers not named get 1.0.
        content_weight: α of every content layer.
        tv_weight: weight of the (normalised) total-variation term.
        steps: L-BFGS iterations.
        init: start from ``content``, ``style`` (resized to the content's size) or ``noise``.
        seed: for the noise init (and nothing else: L-BFGS is deterministic).
        preserve_color: keep the content's colours (luminance-only transfer, see :mod:`color`).
    """

    content_layers: tuple[str, ...] = DEFAULT_CONTENT_LAYERS
    style_layers: tuple[str, ...] = DEFAULT_STYLE_LAYERS
    style_weights: dict[str, float] = field(default_factory=dict)
    content_weight: float = 1.0
    tv_weight: float = 0.05
    steps: int = 300
    init: str = "content"
    seed: int = 0
    preserve_color: bool = False
    history_size: int = 50

    def __post_init__(self) -> None:
        if self.init not in INITS:
            raise InputError(f"init must be one of {', '.join(INITS)}, got {self.init!r}")
        check_int("steps", self.steps, low=1)
        for name, w in (("content", self.content_weight), ("tv", self.tv_weight)):
            if not (w >= 0 and math.isfinite(w)):
                raise InputError(f"{name} weight must be a finite number >= 0, got {w}")

    @property
    def schema(self) -> LayerSchema:
        return LayerSchema(content=tuple(self.content_layers), style=tuple(self.style_layers))

    def alpha(self, device: torch.device | str | None = None) -> torch.Tensor:
        """The weight row (1, L) in the schema's order."""
        schema = self.schema
        content = {n: self.content_weight for n in schema.content}
        return schema.to_tensor(self.style_weights, content=content, default=1.0, device=device)


# Bytes per pixel of an optimisation, measured on the CPU (peak RSS above the idle process, 2 and 60 steps at
# 128-512 px): VGG activations kept for the backward pass and their gradients ~2.4 KB per content pixel, plus
# L-BFGS's history (2 vectors of 3 floats per pixel per remembered step); the style image only goes forward.
_BYTES_PER_CONTENT_PIXEL = 2600
_BYTES_PER_STYLE_PIXEL = 1200


def memory_bytes(content_hw: tuple[int, int], style_hw: tuple[int, int], history_size: int = 50) -> int:
    """Rough peak memory of :func:`optimize` for a content and a style image of these (H, W) sizes.

    Example:
        >>> round(memory_bytes((341, 512), (341, 512)) / 1e6)
        873
    """
    c, st = content_hw[0] * content_hw[1], style_hw[0] * style_hw[1]
    return c * (_BYTES_PER_CONTENT_PIXEL + 24 * history_size) + st * _BYTES_PER_STYLE_PIXEL


def check_memory(
    content_hw: tuple[int, int], style_hw: tuple[int, int], limit_gb: float, history_size: int = 50
) -> None:
    """Refuse, before anything is allocated, an optimisation whose estimate exceeds ``limit_gb``.

    Raises:
        MemoryLimitError: one line with the sizes, the estimate, the limit and the flags that change them.
    """
    need = memory_bytes(content_hw, style_hw, history_size)
    if need > limit_gb * 1e9:
        fits = max(content_hw + style_hw) * math.sqrt(limit_gb * 1e9 / need)
        (h, w), (sh, sw) = content_hw, style_hw
        raise MemoryLimitError(
            f"a {w}x{h} content with a {sw}x{sh} style needs about {need / 1e9:.1f} GB to optimise, more than the "
            f"memory limit of {limit_gb:g} GB; lower --size/--style-size (about {int(fits)} px fits) "
            "or raise --memory-limit"
        )


@torch.no_grad()
def reference_scales(loss: PerceptualLoss, content: torch.Tensor, style: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Per-layer losses between the two end points, used as EMA stand-ins when no model EMA is given.

    Content layers: content loss of the style image (resized to the content's size); style layers: style loss
    of the content image; TV: the content image's TV. Returns ((L,), tv).
    """
    schema = loss.schema
    style_as_output = resize(style, size=tuple(content.shape[-2:]))
    fc = loss.vgg(content, schema.all_layers)
    fs = loss.vgg(style, schema.style)
    fo = loss.vgg(style_as_output, schema.content) if schema.content else {}
    vals = [content_loss(fo[n], fc[n]) for n in schema.content]
    vals += [style_loss(gram(fc[n]), gram(fs[n])) for n in schema.style]
    ref = torch.cat(vals).float()
    # Identical content and style give zeros; any positive floor keeps the normalisation defined.
    ref = torch.where(ref > 0, ref, ref.new_tensor(1.0))
    tv = float(total_variation(content)) or 1.0
    return ref, tv


def optimize(
    content: torch.Tensor,
    style: torch.Tensor,
    config: GatysConfig,
    vgg: VGG19Features | None = None,
    ema: tuple[torch.Tensor, float] | None = None,
    callback: Callable[[int, LossBreakdown], None] | None = None,
) -> tuple[torch.Tensor, LossBreakdown]:
    """Stylize ``content`` with ``style`` by L-BFGS on the pixels.

    Args:
        content: (1, 3, H, W) in [0, 1]; the output has its size.
        style: (1, 3, H', W') in [0, 1].
        config: weights, steps, init, …
        vgg: a prebuilt extractor (default: caffe VGG19 up to the deepest layer needed).
        ema: ``(per-layer EMA (L,), TV EMA)`` of a trained model; default: :func:`reference_scales`.
        callback: called as ``callback(step, breakdown)`` after each L-BFGS iteration.

    Returns:
        ``(image (1, 3, H, W), final LossBreakdown)``.

    Example:
        >>> cfg = GatysConfig(content_layers=("relu1_2",), style_layers=("relu1_1",), steps=2)
        >>> vgg = VGG19Features("random", max_layer="relu1_2")
        >>> out, br = optimize(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32), cfg, vgg=vgg)
        >>> tuple(out.shape)
        (1, 3, 32, 32)
    """
    for name, t in (("content", content), ("style", style)):
        if t.ndim != 4 or t.shape[:2] != (1, 3):
            raise ValueError(f"{name} must have shape (1, 3, H, W), got {tuple(t.shape)}")
    schema = config.schema
    device = content.device
    if vgg is None:
        vgg = VGG19Features("caffe", max_layer=schema.deepest).to(device)
    loss = PerceptualLoss(schema, vgg, tv_weight=config.tv_weight).to(device).eval()
    ref, ref_tv = ema if ema is not None else reference_scales(loss, content, style)
    loss.set_ema(ref, tv=ref_tv)
    targets = loss.targets(content, style)
    alpha = config.alpha(device)

    if config.init == "content":
        start = content
    elif config.init == "style":
        start = resize(style, size=tuple(content.shape[-2:]))
    else:
        g = torch.Generator(device="cpu").manual_seed(config.seed)
        start = torch.rand(content.shape, generator=g).to(device)
    # Parametrise pixels through a sigmoid (clamped away from 0/1 so the logit is finite).
    z = torch.logit(start.clamp(1e-3, 1 - 1e-3)).detach().requires_grad_(True)
    # All iterations run inside one step() so L-BFGS reuses each accepted point's value and gradient (calling
    # step() once per iteration re-evaluates that point first: ~2.2 VGG passes per iteration instead of ~1.2).
    # max_eval must leave the strong-Wolfe line search room: with too few evaluations a rejected unit step
    # returns t = 0 and the run stalls at its start. Tolerances are 0 so exactly ``steps`` iterations run.
    opt = torch.optim.LBFGS(
        [z],
        lr=1.0,
        max_iter=config.steps,
        max_eval=config.steps * 2 + _MAX_LINE_SEARCH,
        tolerance_grad=0.0,
        tolerance_change=0.0,
        history_size=config.history_size,
        line_search_fn="strong_wolfe",
    )
    # Scale the objective to O(1): L-BFGS's tolerances are absolute, and EMA-normalised totals are ~1e9.
    scale = 1.0 / float(ref.sum())
    reported = [0]

    def closure() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        breakdown = loss(torch.sigmoid(z), targets, alpha, update_ema=False)
        total = breakdown.total.sum() * scale
        total.backward()
        # n_iter counts the iterations begun; the first evaluation of iteration k is the point iteration
        # k - 1 accepted, so report it then. Detached: the callback gets numbers, not a graph.
        n_iter = int(opt.state[z].get("n_iter", 0))
        if callback is not None and n_iter > reported[0]:
            reported[0] = n_iter
            callback(n_iter, LossBreakdown(**{k: v.detach() for k, v in vars(breakdown).items()}))
        return total

    opt.step(closure)
    with torch.no_grad():
        out = torch.sigmoid(z)
        if config.preserve_color:
            out = _preserve_color(content, out)
        final = loss(out, targets, alpha, update_ema=False)
    if callback is not None and reported[0] < config.steps:
        callback(config.steps, final)
    return out.detach(), final
