"""Pair preparation: the sliders fitted to one photo and one painting, for sliders that do what their weights ask.

Λ predicts each slider's γ, β from the painting alone, amortised over every photo and painting; on a pair it never
saw, its sliders move the picture visibly but lower their own layer's loss less than the exact optimum of the same
weights (:func:`adjustable_style.gatys.optimize`) does. Fitted to the pair itself, the same γ, β parameters get
much closer (docs/magenta_finetune.md, "Preparing a pair"). A preparation is that fit:

* γ, β offsets fitted at 3 + 2·L weight vectors: every style slider at the middle of its range, each end of every
  style slider with the others at the middle, and every style slider at its bottom and at its top (the content
  weight 1 throughout);
* stored as E of shape (3 + 2·L, 2·C), one row per term of
  γ, β = Λ(α, e) + M + Σ_l (d_l · D_l↓ + u_l · D_l↑) + Π_l d_l · C↓ + Π_l u_l · C↑,
  where d_l = max(0, (m − α_l) / (m − lo)) and u_l = max(0, (α_l − m) / (hi − m)) are slider l's way from the
  middle m of the trained range [lo, hi] towards its bottom and its top (:func:`end_weights`). At every fitted
  vector this gives exactly its fitted offset; between them a slider moves linearly from the middle, the sliders
  add up, and the corner terms C correct the sum where every slider moves the same way (added alone, the ends
  overshoot there). The ends are relative to the fitted middle because every fitted point also improves on Λ for
  the pair as a whole: added from Λ's middle, that common part would make the middle a bump between better ends,
  and count once per slider when several move;
* E is fitted directly, Adam from zero (Λ's own output), each point minimising the paper's objective for its
  weights (eq. 9: Σ_l α_l · L_l / EMA_l with the model's stored loss EMA, the objective ``optimize`` and the
  adapters use). First M and the single sliders' ends, all in one batch: M learns from the middle and the ends,
  each end's row from what its point needs beyond the middle (``relative_ends``; or from its point's whole
  objective), so that the ends differ by what their sliders do; optionally more steps for some sliders' ends
  alone (``solo_ends``). Then the corner terms C alone, with M and D fixed
  (the corners' objectives pulled M and the ends far off when they shared the fit: with every style weight 0 the
  optimum is nearly the photo; and corners fitted while the sum they correct still moves ended worse than they
  started).

Three named fits (:data:`PRESETS`, :func:`preset`): ``quick``, the default, takes 2 steps on the middle and the ends and
1 on the corners, on crops of half the photo's longer side (128 px at 256 px; 128 to 256 px), at lr 0.06, with each γ, β
column's step sized by how far Λ itself moves that column when the sliders move (:func:`column_scale`; without it, so
few and so large steps sent a slider the wrong way on some pairs), each end's row learning only what its point needs
beyond the middle (``relative_ends``; without it a slider's upper half turned back up on half the pairs), and the
sliders' ends stepping orthogonally to other style layers' gradients (``orthogonal_ends``: to first order those ends'
steps leave those layers' losses where they are, and each slider's change points more nearly the way the exact optimum's
does, at no extra cost): ``relu2_2``'s and ``relu3_4``'s to both other layers', ``relu4_4``'s to ``relu2_2``'s only
(kept off ``relu3_4``'s as well, whose gradient it largely shares, it lost agreement). ``relu4_4``'s ends then take one
more step on their own (``solo_ends``, ``solo_steps``: two images a step instead of seven; its own ratio was limited by
the fit's work), twice the size of the shared ones (``solo_step``), and ``relu2_2``'s top end steps 0.7 times as far as
the others (``top_step``: the exact optimum moves less between a slider's middle and its top than below it;
``relu2_2``'s change then points more nearly its way and lowers its loss further at the photo's scale). The corner step
takes smaller crops (``corner_crop_share``, 128 px at 256 px), and ``relu3_4``'s and ``relu4_4``'s Gram matrices come
from bfloat16 features as they are (``low_precision_gram``). ``medium`` takes 7 + 2 steps with the same step sizes and
relative ends (no orthogonal ends: with seven steps they cost agreement) at lr 0.05 on crops of three quarters of the
photo (192 to 256 px), about 4 times the cost: its sliders agree with the exact optimum as closely as the full fit's at
half its cost. ``full`` takes 10 + 6 steps on crops of up to 256 px at lr 0.03, plain Adam, with relative ends as well
(with each end's row learning from its point's whole objective its sliders lowered their own losses less and `relu4_4`'s
less at the photo's scale), and gets closer to the exact optimum, at about 8 times the cost at 256 px. Smaller crops or
fewer steps were measured to lose the sliders' direction on some pairs (docs/magenta_finetune.md).

Every fit then takes one Adam step on the *pixels* of the middle's and every end's image, rendered with the fitted E, at
the photo's rendered size, with the objective ``optimize`` minimises at each point's weights (``pixel_steps``,
:func:`fit_pixels`): a γ, β fit, however long, moves a slider's picture only partly the way the exact optimum does (per
pair and with 80 steps, about 0.3–0.4 of the way for ``relu2_2``, docs/magenta_finetune.md), and the first step of the
same objective on the pixels is what L-BFGS itself begins with. What the step changes is kept as pixel residuals R
(:attr:`Preparation.pixels`): the middle's R_M in every render, each end's change beyond the middle's weighted by d_l,
u_l like its row of E, so that a render at α is T's output plus Σ w · R (clamped to [0, 1]), and a drag costs one
network pass and a weighted sum of seven images. On 8 held-out pairs at 256 px it turned the previous quick fit's
agreement with the exact optimum's change from 0.21 / 0.52 / 0.30 to 0.25 / 0.64 / 0.38 and its own ratios at the
painting's two scales from 0.64 / 0.69, 0.53 / 0.62, 0.81 / 0.84 to 0.47 / 0.51, 0.40 / 0.45, 0.71 / 0.79, for about 1.4
s; cheaper γ, β steps paid for most of it (the quick fit below: 0.29 / 0.66 / 0.34; 0.54 / 0.59, 0.42 / 0.48, 0.74 /
0.81). Above ``pixel_side`` (384 px) the step is skipped, its cost growing with the photo's area: there the sliders are
the γ, β fit's alone.

``quick`` and ``medium`` measure their losses with :class:`~adjustable_style.vgg.LowRankVGG19` (``loss_net``):
VGG19 with blocks 3 and 4 factored into low-rank convolutions distilled from it, the same layers and the same
objective at about two thirds of a step's time; on held-out pairs their sliders came out as those fitted against
VGG19 itself (docs/magenta_finetune.md). ``full`` fits against VGG19.

The fit runs at the size the pair is rendered at, on crops of at most ``crop`` px of the photo at that scale
(the fitted γ, β do not carry across scales: fitted on a 128-px photo and used at 256 px they lose most of the
gain), so a preparation belongs to one photo at one size and one painting: it is keyed by hashes of their pixels
(:func:`image_digest`), and another photo, size or painting simply does not find it.

T and VGG run in bfloat16 autocast where the hardware computes it natively (Gram matrices and the objective in float32),
about twice as fast as float32 on a CPU with AVX-512 BF16, and VGG on channels-last tensors. Cost on one core of a
2-core Xeon with AMX (Sapphire Rapids) at 256 px, the pixel step included: ~2.7 s for ``quick``, ~10 s for ``medium``,
~20 s for ``full`` (the quick fit without its pixel step 1.8–2.2 s). On an AMD EPYC (AVX-512 BF16), before VGG read
channels-last tensors, the previous quick fit (one solo step) took 2.9 s (2.5 s on the Xeon), ``medium`` ~11 s and
``full`` ~35 s (against VGG19 itself quick took 4.2 s and medium 17 s; full in float32: 64–72 s, on both cores: 19–26
s).

A preparation lives in memory (:meth:`~adjustable_style.stylizer.Stylizer.prepare`) and, when asked, in the per-user
store (:func:`store_dir`), so that the next run on the same pair starts at once.

Example:
    >>> cat, monet = "examples/photo_cat.jpg", "examples/painting_monet_water_lilies.jpg"  # doctest: +SKIP
    >>> prep = st.prepare(cat, monet, max_size=256)  # doctest: +SKIP
    >>> st.stylize(cat, monet, {"relu2_2": 1.0}, max_size=256)  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import safe_open, save

from . import atomic
from .adapt import check_model, frozen_weights, model_id, style_digest
from .checks import InputError, check_int, check_number
from .losses import PerceptualLoss, Targets
from .model import AdjustableStyleModel
from .model_files import cache_root
from .vgg import LowRankVGG19, suits_lowrank

FORMAT = "adjustable-style pair preparation 4"


LOSS_NETS = ("vgg19", "lowrank")
"""The loss networks a fit can measure its losses with (:attr:`PrepareSettings.loss_net`)."""


class PreparationError(InputError):
    """A preparation file that cannot be used with this model; the message says why and what to do."""


def _names(v: object) -> tuple[str, ...] | None:
    """Layer names given as one string or a tuple or list of strings, as a tuple; ``None`` for anything else."""
    v = (v,) if isinstance(v, str) else v
    return tuple(v) if isinstance(v, (tuple, list)) and all(isinstance(n, str) for n in v) else None


def _orthogonal_spec(spec: object) -> tuple[str, ...] | dict[str, tuple[str, ...]]:
    """:attr:`PrepareSettings.orthogonal_ends` in its stored form (a tuple of names, or a dict of tuples of names), or
    an :class:`InputError`."""
    if isinstance(spec, dict):
        out = {k: _names(v) for k, v in spec.items()}
        if all(isinstance(k, str) and v and k not in v for k, v in out.items()):
            return out  # type: ignore[return-value]
    elif (out := _names(spec)) is not None:
        return out
    raise InputError(f"orthogonal_ends must be style layer names, or {{slider: [other layers]}}, got {spec!r}")


@dataclass(frozen=True)
class PrepareSettings:
    """How the slider ends are fitted.

    Attributes:
        steps: Adam steps on the middle and the single sliders' ends (all at once).
        corner_steps: Adam steps on the corner terms afterwards (0: no corner terms).
        lr: Adam's learning rate.
        crop: the fit sees random crops of at most this side of the photo at its rendered scale (≥ 64).
        crop_share: … and of about this share of the photo's longer side, but at least 128 px (:meth:`crop_side`).
        seed: the crops (and the α draws of :func:`column_scale`).
        bf16: run T and VGG (also VGG on the painting, for its Gram targets) in bfloat16 autocast (Gram matrices
            and the objective stay float32): ``None`` where the hardware computes bfloat16 natively (a CUDA GPU
            with bf16, a CPU with AVX-512 BF16 or AMX), else float32.
        precondition: size each γ, β column's Adam step by how far Λ moves that column (:func:`column_scale`).
        relative_ends: in the first stage, each end's row learns from its point's gradient minus the middle's (what
            the end needs beyond the middle), not from its point's whole gradient, which M follows too: with few
            steps the ends otherwise count the common move twice, and a slider's upper half turns back up.
        top_step: the top ends' Adam step in the first stage, relative to the others' (the exact optimum moves less
            between the middle and the top of a slider than below it): one number for every style slider, or
            ``{layer: step}`` for some (the others 1).
        loss_net: what measures the fit's losses: ``"vgg19"``, the model's own loss network, or ``"lowrank"``,
            :class:`~adjustable_style.vgg.LowRankVGG19` (the same layers at about half the arithmetic; used only
            where the model's VGG19 has the original weights, else VGG19 itself). The same objective either way:
            the model's schema, weights and loss EMA.
        orthogonal_ends: style sliders (layer names) whose ends' rows, in the first stage, step only orthogonally
            to the other style sliders' layer gradients (:func:`orthogonal_step`): to first order such a step leaves
            the other style losses where they are; or ``{slider: layers}``, each listed slider's ends stepping
            orthogonally to those layers' gradients only. Otherwise a few sign-like Adam steps move the other layers'
            losses with the slider's own, and the slider's change points less the exact optimum's way; with
            more steps (the medium fit's seven) the other loss terms hold them by themselves, and the projection
            costs agreement.
        solo_ends: style sliders whose ends take ``solo_steps`` more first-stage steps after the shared ones, on
            their own two points and a new crop each (M and the other rows stay; the relative rule uses the middle's
            gradient from the last shared step): two images a step instead of the shared step's 3 + 2·L.
        solo_steps: how many steps the ``solo_ends`` take alone (≥ 1).
        solo_step: the solo steps' Adam step, relative to ``lr``.
        corner_crop_share: the corner steps' crops as a share of the photo's longer side (at least 128 px; ``None``:
            ``crop_share``).
        low_precision_gram: style layers whose Gram matrices at the fitted points are multiplied from bfloat16
            features as they are where the fit runs in bfloat16 (:func:`~adjustable_style.losses.gram`; ~0.06 s per
            layer of the quick fit at 256 px; the painting's targets stay float32). The rounding moves Adam's few
            sign-like steps a little: ``relu2_2``'s slider aimed worse with its own Gram rounded, slightly with the
            others'.
        pixel_steps: after the γ, β fit, Adam steps on the pixels of the middle's and every single slider's two
            end images (the whole photo at its rendered size, each at its own weights, with the objective
            ``optimize`` minimises) (:func:`fit_pixels`); what they change is kept as pixel residuals, added to renders
            with the same weights as the γ, β rows. 0: none.
        pixel_lr: their Adam learning rate, on the pixels' logits (as ``optimize`` parametrises them).
        pixel_side: no pixel steps for a photo rendered with a longer side above this (their cost grows with the
            photo's area, unlike the γ, β steps' on crops): the sliders there are the γ, β fit's alone.
    """

    steps: int = 10
    corner_steps: int = 6
    lr: float = 0.03
    crop: int = 256
    crop_share: float = 1.0
    seed: int = 0
    bf16: bool | None = None
    precondition: bool = False
    relative_ends: bool = True
    top_step: float | dict[str, float] = 1.0
    loss_net: str = "vgg19"
    orthogonal_ends: tuple[str, ...] | dict[str, tuple[str, ...]] = ()
    solo_ends: tuple[str, ...] = ()
    solo_steps: int = 1
    solo_step: float = 1.0
    corner_crop_share: float | None = None
    low_precision_gram: tuple[str, ...] = ()
    pixel_steps: int = 1
    pixel_lr: float = 0.035
    pixel_side: int = 384

    def __post_init__(self) -> None:
        check_int("steps", self.steps, low=1)
        check_int("pixel_steps", self.pixel_steps, low=0)
        check_int("pixel_side", self.pixel_side, low=16)
        if not 0 < check_number("pixel_lr", self.pixel_lr, 0.0, math.inf):
            raise InputError(f"pixel_lr must be positive, got {self.pixel_lr!r}")
        check_int("corner_steps", self.corner_steps, low=0)
        check_int("solo_steps", self.solo_steps, low=1)
        if not 0 < check_number("solo_step", self.solo_step, 0.0, math.inf):
            raise InputError(f"solo_step must be positive, got {self.solo_step!r}")
        check_number("lr", self.lr, 0.0, math.inf)
        check_int("crop", self.crop, low=64)
        steps = self.top_step.values() if isinstance(self.top_step, dict) else [self.top_step]
        if not all(0 < check_number("top_step", v, 0.0, math.inf) for v in steps):
            raise InputError(f"top_step must be positive, got {self.top_step!r}")
        if not 0 < check_number("crop_share", self.crop_share, 0.0, 1.0):
            raise InputError(f"crop_share must be in (0, 1], got {self.crop_share!r}")
        check_int("seed", self.seed)
        object.__setattr__(self, "orthogonal_ends", _orthogonal_spec(self.orthogonal_ends))
        for name in ("solo_ends", "low_precision_gram"):
            v = _names(getattr(self, name))
            if v is None or len(set(v)) < len(v):
                raise InputError(f"{name} must be distinct style layer names, got {getattr(self, name)!r}")
            object.__setattr__(self, name, v)
        if self.corner_crop_share is not None and not 0 < check_number(
            "corner_crop_share", self.corner_crop_share, 0.0, 1.0
        ):
            raise InputError(f"corner_crop_share must be in (0, 1] or None, got {self.corner_crop_share!r}")
        if self.loss_net not in LOSS_NETS:
            raise InputError(f"loss_net must be {' or '.join(map(repr, LOSS_NETS))}, got {self.loss_net!r}")
        for name in ("bf16", "precondition", "relative_ends"):
            v = getattr(self, name)
            if not isinstance(v, bool) and not (name == "bf16" and v is None):
                raise InputError(f"{name} must be True or False{' or None' if name == 'bf16' else ''}, got {v!r}")

    @property
    def total_steps(self) -> int:
        """The steps a fit takes (what its progress counts): the shared ones, the solo ones where sliders' ends take
        their own (``solo_ends``), then the corners'."""
        return self.steps + (self.solo_steps if self.solo_ends else 0) + self.corner_steps

    def pixel_steps_at(self, longer: int) -> int:
        """The pixel steps a photo whose longer side is ``longer`` px gets (none above :attr:`pixel_side`)."""
        return self.pixel_steps if longer <= self.pixel_side else 0

    def crop_side(self, longer: int, corners: bool = False) -> int:
        """The side of the fit's crops (``corners``: of the corner steps' crops) of a photo whose longer side is
        ``longer`` px (``longer`` itself: the whole photo)."""
        share = self.corner_crop_share if corners and self.corner_crop_share is not None else self.crop_share
        return min(self.crop, longer, max(128, math.ceil(share * longer)))

    def covered_by(self, meta: dict[str, str], longer: int) -> bool:
        """Whether a stored preparation with this ``meta``, of a photo whose longer side is ``longer`` px, was fitted
        with at least as many steps on crops at least as large as these settings ask for (then it is used rather
        than fitted again), against VGG19 itself where these settings ask for it."""
        try:
            done = int(meta["steps"]), int(meta.get("corner_steps", 0)), int(meta["crop"])
            solo_count = int(meta.get("solo_steps", 1))  # fits stored before the setting took one
        except (KeyError, ValueError):
            return True  # nothing to judge by: keep what the user has
        if self.loss_net == "vgg19" and meta.get("loss_net", "vgg19") != "vgg19":
            return False
        solo_done = set(filter(None, meta.get("solo_ends", "").split(",")))
        short = not set(self.solo_ends) <= solo_done or bool(self.solo_ends and solo_count < self.solo_steps)
        if done[0] == self.steps and short:
            return False  # as many shared steps, without the solo steps asked for (more shared steps serve)
        if int(meta.get("pixel_steps", "0")) < self.pixel_steps_at(longer):
            return False  # fitted without (as many) pixel steps
        return all(d >= w for d, w in zip(done, (self.steps, self.corner_steps, self.crop_side(longer))))


PRESETS = {
    "quick": PrepareSettings(
        2,
        1,
        lr=0.06,
        crop_share=0.5,
        precondition=True,
        loss_net="lowrank",
        orthogonal_ends={
            "relu2_2": ("relu3_4", "relu4_4"),
            "relu3_4": ("relu2_2", "relu4_4"),
            "relu4_4": ("relu2_2",),
        },
        top_step={"relu2_2": 0.7},
        solo_ends=("relu4_4",),
        solo_steps=1,
        solo_step=2.0,
        corner_crop_share=0.5,
        low_precision_gram=("relu3_4", "relu4_4"),
    ),
    "medium": PrepareSettings(7, 2, lr=0.05, crop_share=0.75, precondition=True, loss_net="lowrank"),
    "full": PrepareSettings(),
}
"""The named fits: ``quick`` (2 + 1 steps on crops of half the photo, 128–256 px, each column's step sized by how far Λ
moves it, ``relu2_2``'s top end 0.7 times as far, the sliders' ends stepping orthogonally to other layers' gradients,
then one larger step for ``relu4_4``'s ends alone; the corner step on crops of half the photo too; against the low-rank
VGG19; ~3 s per pair at 256 px on one CPU core), ``medium`` (7 + 2 steps sized the same way, without orthogonal ends, on
crops of three quarters of the photo, 192 px at 256 px; ~10 s) and ``full`` (10 + 6 plain Adam steps on crops of up to
256 px, the whole photo at 256 px, against VGG19 itself; ~20 s); each ends with one pixel step (up to 384 px)."""

SECONDS_PER_MEGAPIXEL = 4.2
"""A fit's time per million pixels of the images it sends through T and VGG (forward and backward), on one core of
the CPU the README's fit timings come from (a 2-core Xeon with AMX, bfloat16 autocast, VGG on channels-last
tensors): the full fit at 256 px, 4 million pixels, takes 17.5 s. An AMD EPYC with AVX-512 BF16 took 9.6 s per
million before VGG read channels-last tensors. For :func:`estimated_seconds`."""

LOWRANK_COST = 0.65
"""A step's time with the low-rank VGG19 (:attr:`PrepareSettings.loss_net`) relative to VGG19's, on the same CPU
(measured 0.67 for the quick fit's steps, 0.63 for the medium fit's)."""


def solo_phrase(solo_ends: Iterable[str], solo_steps: int) -> str:
    """How a fit's solo steps read in messages and reports: ``", 2 more for relu4_4's ends"`` (empty without any).

    Example:
        >>> solo_phrase(PRESETS["quick"].solo_ends, PRESETS["quick"].solo_steps)
        ", 1 more for relu4_4's ends"
    """
    return "".join(f", {solo_steps} more for {n}'s ends" for n in solo_ends)


def estimated_seconds(settings: PrepareSettings, longer: int, sliders: int = 3) -> float:
    """About how long a fit with ``settings`` takes on one CPU core (:data:`SECONDS_PER_MEGAPIXEL`) for a 4:3 photo
    whose longer side is ``longer`` px, for a model with ``sliders`` style sliders, the painting's targets and
    embedding included (~0.6 s). For labels: a GPU, other cores and other photos' shapes change it.

    Example:
        >>> round(estimated_seconds(PRESETS["quick"], 256))
        2
    """

    def area(side: int) -> int:  # side: at most the photo's longer side
        return side * min(side, math.ceil(0.75 * longer))

    solo = 2 * len(settings.solo_ends) * settings.solo_steps
    pixels = (settings.steps * (1 + 2 * sliders) + solo) * area(settings.crop_side(longer))  # the middle and the ends
    pixels += settings.corner_steps * 2 * area(settings.crop_side(longer, corners=True))  # two corners
    pixels += settings.pixel_steps_at(longer) * (1 + 2 * sliders) * area(longer)  # the points' pixels, whole photo
    cost = LOWRANK_COST if settings.loss_net == "lowrank" else 1.0
    cost *= 1 - 0.025 * len(settings.low_precision_gram)  # measured 0.92–0.94 on the quick fit with all three
    return 0.6 + pixels * SECONDS_PER_MEGAPIXEL * cost / 1e6


DEFAULT_PRESET = "quick"


def preset(spec: str | int) -> PrepareSettings:
    """The settings of a named fit (:data:`PRESETS`), or of ``full`` with ``spec`` first-stage steps (an int, or a
    string of digits, as on the command line). Raises :class:`InputError` naming the choices."""
    if isinstance(spec, str) and spec.strip().isdigit():
        spec = int(spec)
    if isinstance(spec, int) and not isinstance(spec, bool):
        if spec < 1:
            raise InputError(f"a preparation takes a number of steps >= 1, got {spec}")
        return replace(PRESETS["full"], steps=spec)
    if spec in PRESETS:
        return PRESETS[spec]
    raise InputError(f"unknown preparation {spec!r}: give {' or '.join(PRESETS)}, or a number of steps (>= 1)")


def fit_loss(loss: PerceptualLoss, settings: PrepareSettings) -> PerceptualLoss:
    """The loss a fit with ``settings`` minimises: ``loss`` itself (the model's), or, for ``loss_net="lowrank"``
    where the model's VGG19 has the original weights, a new loss with the same schema, weights and EMA measured
    with :class:`~adjustable_style.vgg.LowRankVGG19`. Its ``vgg`` says which it is."""
    if settings.loss_net != "lowrank" or not suits_lowrank(loss.vgg):
        return loss
    lowrank = PerceptualLoss(loss.schema, LowRankVGG19(loss.vgg), loss.ema_decay, loss.tv_weight, loss.normalize)
    lowrank.load_state_dict(loss.state_dict(), strict=False)  # the EMA buffers
    return lowrank.to(loss.ema.device).eval()


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 convolutions natively (else autocast to bf16 only emulates them)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu" and torch.backends.mkldnn.is_available():
        try:  # oneDNN's own check (AVX-512 BF16, AMX); a private op, so absent means "not known to be native"
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False


def fit_autocast(device: torch.device, settings: PrepareSettings) -> torch.autocast:
    """The bfloat16 autocast of a fit with ``settings`` on ``device`` (disabled for float32)."""
    bf16 = native_bf16(device) if settings.bf16 is None else settings.bf16
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)


@dataclass
class Preparation:
    """One pair's fitted slider ends.

    Attributes:
        ends: E (3 + 2·L, 2·C) float32, one row per term of the module docstring's sum: M, D_l↓ and D_l↑ for each
            style slider l, C↓, C↑ (γ the first C columns).
        content_digest: :func:`image_digest` of the photo as rendered (its size included).
        style_digest: the painting's digest (:func:`adjustable_style.adapt.style_digest`).
        meta: steps, lr, crop, seconds, the model's style layers.
        pixels: R (1 + 2·L, 3, H, W) float16, or None without pixel steps: pixel residuals at the rendered size
            in the order of E's first rows, the middle's R_M, then R_l↓ and R_l↑ for each style slider, added to a
            render at α as R_M + Σ_l (d_l · R_l↓ + u_l · R_l↑) (:func:`pixel_shift`, :func:`fit_pixels`).
    """

    ends: torch.Tensor
    content_digest: str
    style_digest: str
    meta: dict[str, str] = field(default_factory=dict)
    pixels: torch.Tensor | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.content_digest, self.style_digest


image_digest = style_digest  # any image's 8-bit pixels and size: the photo as rendered, the painting as P sees it


def style_columns(model: AdjustableStyleModel) -> list[int]:
    """The α columns of the style sliders, in the schema's order."""
    return [i for i, k in enumerate(model.schema.keys) if k.startswith("style/")]


def end_alphas(model: AdjustableStyleModel, alpha_range: tuple[float, float]) -> torch.Tensor:
    """(3 + 2·L, K) α of the fitted points, in the order of E's rows: every style slider at the middle of
    ``alpha_range``; style slider l at the bottom, then at the top, the others at the middle (l in the schema's
    order); every style slider at the bottom; every one at the top. Content weights 1."""
    lo, hi = alpha_range
    cols = style_columns(model)
    mid = torch.ones(len(model.schema.keys))
    mid[cols] = (lo + hi) / 2
    rows = [mid]
    for j in cols:
        for v in (lo, hi):
            a = mid.clone()
            a[j] = v
            rows.append(a)
    for v in (lo, hi):
        a = mid.clone()
        a[cols] = v
        rows.append(a)
    return torch.stack(rows)


def end_weights(alpha: torch.Tensor, cols: Sequence[int], alpha_range: tuple[float, float]) -> torch.Tensor:
    """(B, 3 + 2·L) weights of the rows of E at α (B, K): 1 for the middle, each slider's way from the middle
    towards its bottom (d_l) and its top (u_l) in [0, 1], then Π_l d_l and Π_l u_l (the corner terms).

    Example:
        >>> end_weights(torch.tensor([[1.0, 0.0, 0.75]]), [1, 2], (0.0, 1.0)).tolist()
        [[1.0, 1.0, 0.0, 0.0, 0.5, 0.0, 0.0]]
    """
    lo, hi = alpha_range
    m = (lo + hi) / 2
    a = alpha[:, list(cols)]
    down = ((m - a) / (m - lo)).clamp(0, 1)
    up = ((a - m) / (hi - m)).clamp(0, 1)
    sides = torch.stack([down, up], 2).reshape(alpha.shape[0], -1)
    corners = torch.stack([down.prod(1), up.prod(1)], 1)
    return torch.cat([torch.ones_like(a[:, :1]), sides, corners], 1)


def end_shift(
    alpha: torch.Tensor, ends: torch.Tensor, cols: Sequence[int], alpha_range: tuple[float, float]
) -> torch.Tensor:
    """The γ, β shift (B, 2·C) a preparation adds at α (B, K)."""
    return end_weights(alpha.to(ends.dtype), cols, alpha_range) @ ends


def pixel_shift(
    alpha: torch.Tensor, pixels: torch.Tensor, cols: Sequence[int], alpha_range: tuple[float, float]
) -> torch.Tensor:
    """The pixel residual (B, 3, H, W) a preparation's pixel rows R (1 + 2·L, 3, H, W) add at α (B, K)."""
    w = end_weights(alpha.to(pixels.device, torch.float32), cols, alpha_range)[:, : pixels.shape[0]]
    return (w @ pixels.flatten(1).float()).reshape(alpha.shape[0], *pixels.shape[1:])


def column_scale(
    model: AdjustableStyleModel, embedding: torch.Tensor, alpha_range: tuple[float, float], seed: int = 0
) -> torch.Tensor:
    """(2·C,) each γ, β column's step size in the preconditioned fit: how far Λ moves that column for this painting
    when the sliders move (its standard deviation over 64 α drawn from ``alpha_range``), with root mean square 1
    after a floor of 0.1 of it, so that columns Λ never moves still learn a little."""
    lo, hi = alpha_range
    g = torch.Generator().manual_seed(seed)
    a = (lo + (hi - lo) * torch.rand(64, len(model.schema.keys), generator=g)).to(embedding.device)
    with torch.no_grad():
        gamma, beta = model.cin_params(a, embedding.expand(64, -1))
    s = torch.cat([gamma, beta], 1).float().std(0)
    s = s / s.pow(2).mean().sqrt().clamp_min(1e-12) + 0.1
    return s / s.pow(2).mean().sqrt()


def _style_layers(model: AdjustableStyleModel, named: Iterable[str], what: str) -> list[str]:
    """The model's style sliders' layers in the schema's order; an :class:`InputError` for a name in ``named`` that
    is not one of them (``what``: the setting that named it)."""
    layers = list(model.schema.style)  # the order of the style columns of α
    unknown = sorted(set(named) - set(layers))
    if unknown:
        raise InputError(f"{what} names {', '.join(unknown)}, not a style layer of this model ({', '.join(layers)})")
    return layers


def orthogonal_plan(
    model: AdjustableStyleModel, spec: tuple[str, ...] | dict[str, tuple[str, ...]]
) -> dict[int, list[int]]:
    """:attr:`PrepareSettings.orthogonal_ends` (in the form the settings store it) as slider indices (the schema's
    order): for each listed slider, the sliders whose layer gradients its ends step orthogonally to (a tuple of names:
    every other style slider)."""
    named = [*spec, *(n for v in spec.values() for n in v)] if isinstance(spec, dict) else spec
    layers = _style_layers(model, named, "orthogonal_ends")
    if not isinstance(spec, dict):
        spec = {n: tuple(m for m in layers if m != n) for n in spec}
    return {layers.index(n): [layers.index(m) for m in others] for n, others in spec.items() if others}


def top_steps(model: AdjustableStyleModel, top_step: float | dict[str, float]) -> torch.Tensor:
    """(L,) each style slider's top-end step (:attr:`PrepareSettings.top_step`), in the schema's order."""
    layers = _style_layers(model, top_step if isinstance(top_step, dict) else (), "top_step")
    if not isinstance(top_step, dict):
        return torch.full((len(layers),), float(top_step))
    return torch.tensor([float(top_step.get(n, 1.0)) for n in layers])


def orthogonal_step(
    step: torch.Tensor, layer_grads: torch.Tensor, against: Mapping[int, Sequence[int]]
) -> torch.Tensor:
    """The first stage's step of E's rows (M, then each style slider's bottom and top end; any coordinates) with
    the ends of each slider i in ``against`` projected onto the orthogonal complement of the layer gradients
    ``layer_grads`` (L, 2·C, in the same coordinates) of the sliders ``against[i]``: to first order, that step of
    slider i's ends leaves those sliders' losses at its ends where they were. The other rows are returned as they are.

    Example:
        >>> g = torch.eye(3, 4)  # three sliders whose layers' gradients are the first three axes
        >>> orthogonal_step(torch.ones(7, 4), g, {0: [1, 2]})[1:3].tolist()  # slider 0's ends lose axes 1 and 2
        [[1.0, 0.0, 0.0, 1.0], [1.0, 0.0, 0.0, 1.0]]
        >>> orthogonal_step(torch.ones(7, 4), g, {2: [0]})[5:7].tolist()  # slider 2's ends lose axis 0 only
        [[0.0, 1.0, 1.0, 1.0], [0.0, 1.0, 1.0, 1.0]]
    """
    out = step.clone()
    for i, others in against.items():
        q, _ = torch.linalg.qr(layer_grads[list(others)].float().T)  # orthonormal columns spanning their gradients
        ends = step[1 + 2 * i : 3 + 2 * i].float()
        out[1 + 2 * i : 3 + 2 * i] = (ends - (ends @ q) @ q.T).to(step.dtype)
    return out


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    """``x`` in channels-last layout: VGG's convolutions, max pooling and Gram matrices
    (:func:`~adjustable_style.losses.gram` takes either layout without a copy) run faster so, with the same results up
    to rounding (the quick fit 1.4× on one core of a Xeon with AMX; VGG alone 8–10 % on an EPYC)."""
    return x.contiguous(memory_format=torch.channels_last)


def _crops(content: torch.Tensor, n: int, side: int, g: torch.Generator) -> list[torch.Tensor]:
    h, w = content.shape[-2:]
    ch, cw = min(side, h), min(side, w)
    out = []
    for _ in range(n):
        i = int(torch.randint(h - ch + 1, (1,), generator=g))
        j = int(torch.randint(w - cw + 1, (1,), generator=g))
        out.append(content[..., i : i + ch, j : j + cw])
    return out


def fit_ends(
    model: AdjustableStyleModel,
    loss: PerceptualLoss,
    content: torch.Tensor,
    embedding: torch.Tensor,
    style_targets: dict[str, torch.Tensor],
    alpha_range: tuple[float, float],
    settings: PrepareSettings = PrepareSettings(),
    progress: Callable[[int, int, float], None] | None = None,
    start: torch.Tensor | None = None,
) -> torch.Tensor:
    """The preparation E (3 + 2·L, 2·C; see :class:`Preparation`), float32 on the CPU, for one photo (1, 3, H, W)
    in [0, 1] at the size it is rendered at and one painting (its embedding (1, D) and Gram targets), on the model's
    device, fitted from ``start`` (an E of the same shape; default zeros: Λ's own output). The model's weights do
    not change.

    Two stages: ``steps`` Adam steps on the middle and the single sliders' ends (M, D; one batch), and one more
    on the ``solo_ends`` sliders' ends alone, then ``corner_steps`` on the two corner terms C with M and D fixed
    (fitted together, the corners chase a sum that is still moving and end worse than where they started)."""
    check_model(model)
    if not bool(loss.ema_initialized):
        raise InputError("preparing a pair needs a model whose loss EMA was updated in training (eq. 9's normalisers)")
    st = settings
    dev = embedding.device
    a = end_alphas(model, alpha_range).to(dev)
    n = a.shape[0]
    w = end_weights(a, style_columns(model), alpha_range)  # (n, n): each fitted point's offset is w @ E
    ema = loss.ema.to(dev).clamp_min(1e-12).reshape(1, -1)
    g = torch.Generator().manual_seed(st.seed)
    _style_layers(model, st.low_precision_gram, "low_precision_gram")
    layers = _style_layers(model, st.solo_ends, "solo_ends")
    solo = [r for k, name in enumerate(layers) if name in st.solo_ends for r in (1 + 2 * k, 2 + 2 * k)]  # E's rows
    total = st.total_steps
    first_steps = total - st.corner_steps
    longer = max(content.shape[-2:])
    crops = []  # one per step, in order
    for count, side in ((first_steps, st.crop_side(longer)), (st.corner_steps, st.crop_side(longer, True))):
        crops += [content] * count if side >= longer else _crops(content, count, side, g)
    fast = fit_autocast(dev, st)
    content_feats: dict[int, dict[str, torch.Tensor]] = {}  # per distinct crop, of one copy
    with torch.no_grad():
        gamma, beta = model.cin_params(a, embedding.expand(n, -1))
    e_rows = torch.zeros(n, gamma.shape[1] + beta.shape[1], device=dev)
    if start is not None:
        e_rows += start.to(dev, e_rows.dtype)
    # Adam's step is about lr on every coordinate it moves; E = scale ⊙ Z sizes each column's step (1: plain Adam)
    scale = column_scale(model, embedding, alpha_range, st.seed) if st.precondition else torch.ones(1, device=dev)
    scale = scale.reshape(1, -1)
    stages = [
        (slice(0, n - 2), first_steps),  # M and the single sliders' ends, fitted at their own points (+ solo)
        (slice(n - 2, n), st.corner_steps),  # the corner terms, at the two corners
    ]
    orthogonal = orthogonal_plan(model, st.orthogonal_ends)
    done = 0
    with frozen_weights(model):  # only E learns
        for rows, steps in stages:
            if steps == 0:
                continue
            size = scale.expand(rows.stop - rows.start, -1).clone()  # each row's step, column by column
            if rows.start == 0:
                size[2::2] *= top_steps(model, st.top_step).to(dev).reshape(-1, 1)  # rows M, (bottom, top) per slider
            free = (e_rows[rows] / size).requires_grad_(True)
            first = rows.start == 0  # the middle is point 0 of this batch, then each slider's bottom and top end
            relative = st.relative_ends and first
            project = orthogonal if first else {}
            opt = torch.optim.Adam([free], lr=st.lr)
            b = rows.stop - rows.start
            for step in range(steps):
                alone = first and step >= st.steps  # a solo step: the solo sliders' ends, the other rows kept
                if alone and step == st.steps:
                    for group in opt.param_groups:
                        group["lr"] = st.lr * st.solo_step
                pts = solo if alone else list(range(b))  # the points this step fits (rows of this stage)
                crop = crops[done].to(dev)
                if id(crops[done]) not in content_feats:
                    with fast:
                        content_feats[id(crops[done])] = loss.content_targets(_channels_last(crop))
                feats = content_feats[id(crops[done])]
                tg = Targets({k: v.expand(len(pts), *v.shape[1:]) for k, v in feats.items()}, style_targets)
                rows_e = torch.cat([e_rows[: rows.start], free * size, e_rows[rows.stop :]])
                at = [rows.start + i for i in pts]
                shift = w[at] @ rows_e  # each fitted point's offset
                if relative or project:
                    shift.retain_grad()
                dg, db = shift.chunk(2, 1)
                with fast:
                    out = model.net(crop.expand(len(pts), -1, -1, -1), gamma[at] + dg, beta[at] + db)
                    raw = loss.raw_losses(_channels_last(out), tg, st.low_precision_gram)
                obj = (a[at] * raw.float() / ema).sum(1).mean()
                opt.zero_grad()
                obj.backward()
                if relative and not alone:  # an end's row learns only what its point needs beyond the middle's
                    middle = shift.grad[0].clone()  # over this batch's b points (the objective is their mean)
                    free.grad[1:] -= middle * size[1:]
                elif relative:  # the middle's gradient from the last shared step, rescaled to this batch's mean
                    free.grad[pts] -= middle * (b / len(pts)) * size[pts]
                before = free.detach().clone()
                opt.step()
                with torch.no_grad():
                    if alone:  # Adam's momentum would move the other rows too
                        kept = [i for i in range(b) if i not in pts]
                        free[kept] = before[kept]
                    elif project:  # each slider's layer gradient: its top end's point gradient minus its bottom's
                        grads = shift.grad * scale
                        free.copy_(before + orthogonal_step(free - before, grads[2::2] - grads[1::2], project))
                done += 1
                if progress is not None:
                    progress(done, total, float(obj.detach()))
            e_rows[rows] = free.detach() * size
    return e_rows.float().cpu()


def fit_pixels(
    model: AdjustableStyleModel,
    loss: PerceptualLoss,
    content: torch.Tensor,
    embedding: torch.Tensor,
    style_targets: dict[str, torch.Tensor],
    alpha_range: tuple[float, float],
    ends: torch.Tensor,
    settings: PrepareSettings,
) -> torch.Tensor:
    """The pixel residuals R (1 + 2·L, 3, H, W), float16 on the CPU, of the middle and the single sliders' ends for
    one photo (1, 3, H, W) at its rendered size: each point rendered with the fitted γ, β ends E, then ``pixel_steps``
    Adam steps on its pixels' logits (all 1 + 2·L in one batch) of the paper's objective at its weights, total
    variation included (what :func:`~adjustable_style.gatys.optimize` minimises). R_M is the middle's change, each
    end's row its change minus the middle's (as the γ, β ends are relative to M: added from the middle, the common
    part of every end's change would count once per slider that moves, and the corners overshoot). γ, β alone cannot
    follow the exact optimum's direction far (docs/magenta_finetune.md); a pixel step of the same objective points
    each slider more nearly its way."""
    st = settings
    dev = embedding.device
    cols = style_columns(model)
    a = end_alphas(model, alpha_range).to(dev)[: 1 + 2 * len(cols)]  # the middle, then each slider's two ends
    n = a.shape[0]
    fast = fit_autocast(dev, st)
    with torch.no_grad():
        gamma, beta = model.cin_params(a, embedding.expand(n, -1))
        dg, db = end_shift(a, ends.to(dev), cols, alpha_range).chunk(2, 1)
        with fast:
            start = model.net(content.expand(n, -1, -1, -1), gamma + dg, beta + db).float().clamp(0, 1)
            feats = loss.content_targets(_channels_last(content))
    tg = Targets({k: v.expand(n, *v.shape[1:]) for k, v in feats.items()}, style_targets)
    z = torch.logit(start.clamp(1e-3, 1 - 1e-3)).requires_grad_(True)
    opt = torch.optim.Adam([z], lr=st.pixel_lr)
    for _ in range(st.pixel_steps):
        with fast:
            total = loss(_channels_last(torch.sigmoid(z)), tg, a, update_ema=False).total
        opt.zero_grad()
        total.float().sum().backward()
        opt.step()
    with torch.no_grad():
        change = torch.sigmoid(z) - start
        change[1:] -= change[:1]  # the middle's change goes into every render, each end's beyond it into its own
        return change.half().cpu()


def check_preparation(prep: Preparation, model: AdjustableStyleModel, what: str = "the preparation") -> None:
    """Raise :class:`PreparationError` unless ``prep`` was fitted for a model of this layout."""
    want = (3 + 2 * len(style_columns(model)), 2 * model.net.cin_channels)
    if tuple(prep.ends.shape) != want:
        raise PreparationError(
            f"{what} was fitted for another model (ends {tuple(prep.ends.shape)}, this model needs {want}); "
            "prepare the pair again"
        )
    if not bool(torch.isfinite(prep.ends).all()):
        raise PreparationError(f"{what} holds non-finite values; prepare the pair again")
    if prep.pixels is not None:
        size = prep.meta.get("size", "")
        want_px = f"{1 + 2 * len(style_columns(model))}x3x{size}"
        if "x".join(map(str, prep.pixels.shape)) != want_px or not bool(torch.isfinite(prep.pixels).all()):
            raise PreparationError(
                f"{what} holds pixel ends of shape {tuple(prep.pixels.shape)}, not {want_px}; prepare the pair again"
            )


# ------------------------------------------------------------------------------------------------- files


def store_dir(model: AdjustableStyleModel) -> Path:
    """The per-user store of pair preparations for ``model``: ``<cache>/prepared/<model id>/`` (see
    :func:`adjustable_style.model_files.cache_root`)."""
    return cache_root() / "prepared" / model_id(model)


def store_path(folder: str | Path, key: tuple[str, str]) -> Path:
    """The file of the pair ``key`` (content digest, style digest) in a store ``folder``."""
    return Path(folder) / f"{key[0]}-{key[1]}.safetensors"


def save_preparation(prep: Preparation, path: str | Path) -> Path:
    """Write ``prep`` as safetensors, atomically."""
    meta = {**prep.meta, "format": FORMAT, "content_digest": prep.content_digest, "style_digest": prep.style_digest}
    tensors = {"ends": prep.ends.contiguous()}
    if prep.pixels is not None:
        tensors["pixels"] = prep.pixels.half().contiguous()
    data = save(tensors, metadata=meta)
    return atomic.write_file(Path(path), lambda tmp: tmp.write_bytes(data))


def load_preparation(path: str | Path, model: AdjustableStyleModel | None = None) -> Preparation:
    """Read a preparation written by :func:`save_preparation` (safetensors: no code runs); with ``model``, check it
    fits that model. Raises :class:`PreparationError` with a one-line reason."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            ends = f.get_tensor("ends").float()
            pixels = f.get_tensor("pixels") if "pixels" in f.keys() else None
    except (SafetensorError, OSError, KeyError, ValueError) as e:
        raise PreparationError(
            f"cannot read '{path}': not a pair preparation ({' '.join(str(e).split())[:80]}); delete it and prepare "
            "the pair again"
        ) from None
    if meta.get("format") != FORMAT or "content_digest" not in meta or "style_digest" not in meta or ends.ndim != 2:
        raise PreparationError(f"'{path}' is not a pair preparation; delete it and prepare the pair again")
    prep = Preparation(ends, meta.pop("content_digest"), meta.pop("style_digest"), meta, pixels)
    if model is not None:
        check_preparation(prep, model, str(path))
    return prep
