"""Slider adapters: tune the sliders to one painting at use time, once, then drag them in real time.

The shipped Λ predicts what each slider does from the style embedding alone, for any painting; on paintings it
never saw its sliders are weak (own-layer loss ratios ~0.9, see the README). Fitted for one painting, the same
parametrisation is much stronger (docs/magenta_finetune.md, "Where the headroom is"). An adapter is that fit:

    γ, β = Λ(α, e) + [1, g_1·(2α_1 − 1), …, g_L·(2α_L − 1)] · D,      D of shape (1 + L, 2·C), zero = no change

(g_l: the model's gain for the half of slider l that α_l is in, 1 unless its config sizes the halves apart)
(the model applies it: :func:`adjustable_style.conditioning.apply_offsets`), trained with the paper's objective
(eq. 9: Σ_l α_l·L_l / EMA_l with the model's stored loss EMA — the objective :func:`adjustable_style.gatys.optimize`
minimises for the same α, so the fitted sliders move towards the exact reference; ``objective="base"`` divides each
layer by the base network's own loss on the crop instead, the recipe the shipped Λ was first trained with) on
random crops of a few photos, α cycling through three
designs: U(0, 1) antithetic pairs, one slider at 0 and at 1 with the others at 0.5 (how sliders are used), and
every slider at 0 and at 1 (the two ends). D does not depend on the photo, so one adapter serves every photo
and video frame of that painting. It costs one fit per painting: ~4 min on one core of a 2-core x86 CPU for the
default 60 steps.

An adapter lives in a file (:func:`save_adapter`) or in the per-user store (:func:`store_dir`: one folder per
model, one file per painting), where ``adjustable-style adapt`` without ``-o`` puts it and the other commands look
for the painting's adapter.

This module works on the model and its loss module; :class:`~adjustable_style.stylizer.Stylizer` turns images into
what it needs (:meth:`~adjustable_style.stylizer.Stylizer.fit_adapter`).

Example:
    >>> ad = st.fit_adapter("examples/painting_monet_water_lilies.jpg")  # doctest: +SKIP
    >>> save_adapter(ad, "monet.adapter.safetensors"); st.add_adapter(ad)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import safe_open, save

from . import atomic
from .checks import InputError, check_int, check_number
from .image import resize
from .losses import PerceptualLoss, Targets
from .model import AdjustableStyleModel
from .model_files import cache_root

BUNDLED_PHOTOS = tuple(
    Path(__file__).resolve().parent / "assets" / "examples" / n
    for n in ("photo_cat.jpg", "photo_astronaut.jpg", "photo_rocket_launch.jpg")
)
FORMAT = "adjustable-style slider adapter 1"
DESIGNS = ("random", "one", "corners")
OBJECTIVES = ("base", "ema")


class AdapterError(InputError):
    """An adapter file that cannot be used with this model or painting; the message says why and what to do."""


@dataclass
class Adapter:
    """One painting's slider offsets.

    Attributes:
        offsets: D (1 + L, 2·C) float32: γ, β += [1, g · (2α − 1)] · D (γ the first C columns).
        style_digest: hash of the painting as the style predictor sees it; the adapter applies to that painting only.
        meta: what it was fitted with (painting name, steps, crop, photos, seconds, model's CIN channels and α keys).
    """

    offsets: torch.Tensor
    style_digest: str
    meta: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FitSettings:
    """How D is fitted.

    Attributes:
        steps: Adam steps (cosine-decayed learning rate ``lr``).
        crop: crop side in px; relu4_4's statistics need ≥ 160.
        batch: images per step (even: pairs of α).
        lr: Adam's learning rate at the start.
        seed: crops and α.
        design: the α design of each step, cycled (see :func:`design_alphas`): "random", "one", "corners".
        objective: "ema" (the paper's eq. 9: each layer divided by the model's stored loss EMA, style weight = α;
            the objective :func:`adjustable_style.gatys.optimize` minimises for the same α) or "base" (each layer's
            loss divided by the base network's own loss on the same crop, style terms × the recipe's style gain).
        tune_lr: Adam's learning rate for model weights fine-tuned along with D (:func:`fit_offsets`'s ``tune``).
    """

    steps: int = 60
    crop: int = 192
    batch: int = 4
    lr: float = 0.01
    seed: int = 0
    design: tuple[str, ...] = DESIGNS
    objective: str = "ema"
    tune_lr: float = 1e-4

    def __post_init__(self) -> None:
        check_int("steps", self.steps, low=1)
        check_int("crop", self.crop, low=64)
        if check_int("batch", self.batch, low=2) % 2:
            raise InputError(f"batch must be an even int >= 2, got {self.batch!r}")
        check_number("lr", self.lr, 0.0, math.inf)
        check_number("tune_lr", self.tune_lr, 0.0, math.inf)
        check_int("seed", self.seed)
        design = tuple(self.design)
        if not design or any(x not in DESIGNS for x in design):
            raise InputError(f"design must be a non-empty sequence of {', '.join(DESIGNS)}, got {design!r}")
        object.__setattr__(self, "design", design)
        if self.objective not in OBJECTIVES:
            raise InputError(f"objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")


def style_digest(style: torch.Tensor) -> str:
    """A hash of the painting's pixels as P sees them (decoded, resized, 8-bit; ``style`` (1, 3, h, w) in [0, 1]):
    the same image in another file or format gives the same digest."""
    x = (style.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8)
    return hashlib.blake2b(x.numpy().tobytes() + str(tuple(x.shape)).encode(), digest_size=16).hexdigest()


@contextlib.contextmanager
def frozen_weights(model: torch.nn.Module, keep: Sequence[torch.nn.Parameter] = ()) -> Iterator[None]:
    """Inside, only ``keep`` among the model's weights takes gradients (fitted offsets live outside the model); the
    others get no ``.grad`` and are trainable again afterwards, also after an error."""
    kept = {id(p) for p in keep}
    params = [p for p in model.parameters() if p.requires_grad and id(p) not in kept]
    for p in params:
        p.requires_grad_(False)
    for p in keep:
        p.requires_grad_(True)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def check_model(model: AdjustableStyleModel) -> None:
    """Raise :class:`AdapterError` unless ``model`` has a base network (slider offsets act on its Δ)."""
    if not model.has_base:
        raise AdapterError(
            "slider adapters need a model built on a base network (the bundled 'default'); this one was "
            "trained from scratch"
        )


def photo_pool(photos: Sequence[torch.Tensor], crop: int) -> list[torch.Tensor]:
    """Each photo (1, 3, H, W) scaled so its shorter side is 1.25 × crop (random crops then see most of it)."""
    pool = []
    for x in photos:
        h, w = x.shape[-2:]
        k = round(1.25 * crop) / min(h, w)
        pool.append(resize(x, (max(crop, round(h * k)), max(crop, round(w * k)))))
    return pool


def draw_crops(
    pool: Sequence[torch.Tensor], n_pairs: int, crop: int, n_styles: int, g: torch.Generator
) -> tuple[torch.Tensor, list[int]]:
    """``n_pairs`` random ``crop``-px crops of photos in ``pool``, each twice (a pair of α rows shares its crop and
    painting): (2·n_pairs, 3, crop, crop) and each row's painting index in [0, n_styles)."""
    crops, which = [], []
    for _ in range(n_pairs):
        x = pool[int(torch.randint(len(pool), (1,), generator=g))]
        i = int(torch.randint(x.shape[-2] - crop + 1, (1,), generator=g))
        j = int(torch.randint(x.shape[-1] - crop + 1, (1,), generator=g))
        crops += [x[..., i : i + crop, j : j + crop]] * 2
        which += [int(torch.randint(n_styles, (1,), generator=g)) if n_styles > 1 else 0] * 2
    return torch.cat(crops), which


def design_alphas(n_pairs: int, keys: Sequence[str], design: str, g: torch.Generator) -> torch.Tensor:
    """2·n_pairs rows of α. ``design``: "random" = antithetic pairs (α, 1 − α) of U(0, 1); "one" = one slider at 0
    and at 1 with the others at 0.5 (how sliders are used); "corners" = every slider at 0 and every slider at 1
    (the two ends the sliders must span). Content weights stay 1 (the sliders are the style layers)."""
    style = [i for i, k in enumerate(keys) if k.startswith("style/")]
    rows = []
    for _ in range(n_pairs):
        lo, hi = torch.ones(len(keys)), torch.ones(len(keys))
        if design == "one":
            j = style[int(torch.randint(len(style), (1,), generator=g))]
            lo[style], hi[style] = 0.5, 0.5
            lo[j], hi[j] = 0.0, 1.0
        elif design == "corners":
            lo[style] = 0.0
        elif design == "random":
            lo[style] = torch.rand(len(style), generator=g)
            hi[style] = 1 - lo[style]
        else:
            raise InputError(f"unknown α design {design!r}; use one of {', '.join(DESIGNS)}")
        rows += [lo, hi]
    return torch.stack(rows)


def fit_offsets(
    model: AdjustableStyleModel,
    loss: PerceptualLoss,
    embeddings: Sequence[torch.Tensor],
    style_targets: Sequence[dict[str, torch.Tensor]],
    photos: Sequence[torch.Tensor],
    settings: FitSettings = FitSettings(),
    style_gain: float = 3.0,
    progress: Callable[[int, int, float], None] | None = None,
    tune: Sequence[torch.nn.Parameter] = (),
) -> torch.Tensor:
    """Slider offsets D ((1 + L) × 2C, float32 on the CPU) minimising the adapter objective (module docstring).

    Args:
        model: a model with a base network, on the device the fit runs on; its weights do not change unless
            named in ``tune``.
        loss: its training loss module (same device).
        embeddings: one (1, D) per painting.
        style_targets: one Gram-target dict per painting (:meth:`PerceptualLoss.style_targets`).
        photos: content photos (1, 3, H, W) in [0, 1], on the CPU; random crops of them are drawn.
        settings: steps, crop, batch, learning rate, seed, α designs.
        style_gain: the recipe's style gain (the style terms' factor, as in training).
        progress: called as ``progress(step, steps, objective)`` after each step.
        tune: the model's own weights to fine-tune along with D, in place (e.g. Λ's Δ), at ``settings.tune_lr``.

    One painting gives an adapter; several give a calibration of the model (each pair of α rows with a random one).
    """
    check_model(model)
    if not embeddings or len(embeddings) != len(style_targets) or not photos:
        raise InputError("fitting slider offsets needs at least one painting and one photo")
    st, keys = settings, list(model.schema.keys)
    dev = embeddings[0].device
    ema = st.objective == "ema"
    if ema and not bool(loss.ema_initialized):
        raise InputError(
            "objective 'ema' needs a model whose loss EMA was updated in training; "
            "use objective 'base' (--objective base)"
        )
    gain = 1.0 if ema else style_gain
    gains = torch.tensor([gain if k.startswith("style/") else 1.0 for k in keys], device=dev)
    pool = photo_pool(photos, st.crop)
    g = torch.Generator().manual_seed(st.seed)
    d = torch.zeros(1 + len(keys), 2 * model.net.cin_channels, device=dev, requires_grad=True)
    groups = [{"params": [d], "lr": st.lr}] + ([{"params": list(tune), "lr": st.tune_lr}] if tune else [])
    opt = torch.optim.Adam(groups)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.5 * (1 + math.cos(math.pi * i / st.steps)))
    n = len(embeddings)
    with frozen_weights(model, tune):  # only D (and ``tune``) learn
        for step in range(st.steps):
            c, which = draw_crops(pool, st.batch // 2, st.crop, n, g)
            c = c.to(dev)
            a = design_alphas(st.batch // 2, keys, st.design[step % len(st.design)], g=g).to(dev)
            e = torch.cat([embeddings[w] for w in which])
            tg = Targets(
                loss.content_targets(c), {k: torch.cat([style_targets[w][k] for w in which]) for k in style_targets[0]}
            )
            if ema:  # eq. 9 up to a constant factor: Σ_l α_l · L_l / EMA_l
                ref = loss.ema.to(dev).clamp_min(1e-12).expand(c.shape[0], -1)
            else:
                with torch.no_grad():
                    ref = loss.raw_losses(model(c, e, a, delta=False), tg).clamp_min(1e-12)
            obj = (a * gains * loss.raw_losses(model(c, e, a, offsets=d), tg) / ref).sum(1).mean()
            opt.zero_grad()
            obj.backward()
            opt.step()
            sched.step()
            if progress is not None:
                progress(step + 1, st.steps, float(obj.detach()))
    return d.detach().float().cpu()


def new_adapter(
    offsets: torch.Tensor,
    digest: str,
    model: AdjustableStyleModel,
    settings: FitSettings,
    style_name: str,
    photo_names: Sequence[str],
    seconds: float,
) -> Adapter:
    """An :class:`Adapter` of fitted ``offsets`` with the metadata its file records."""
    meta = {
        "format": FORMAT,
        "style": style_name,
        "steps": str(settings.steps),
        "crop": str(settings.crop),
        "batch": str(settings.batch),
        "lr": str(settings.lr),
        "seed": str(settings.seed),
        "design": ",".join(settings.design),
        "objective": settings.objective,
        "photos": json.dumps(list(photo_names)),
        "seconds": f"{seconds:.1f}",
        "keys": json.dumps(list(model.schema.keys)),
        "cin_channels": str(model.net.cin_channels),
    }
    return Adapter(offsets, digest, meta)


def check_adapter(adapter: Adapter, model: AdjustableStyleModel, what: str = "the adapter") -> None:
    """Raise :class:`AdapterError` unless ``adapter`` was fitted for a model of this layout (layers and CIN size)."""
    check_model(model)
    want = (1 + model.schema.n_layers, 2 * model.net.cin_channels)
    keys = json.loads(adapter.meta.get("keys", "[]"))
    if tuple(adapter.offsets.shape) != want or (keys and keys != list(model.schema.keys)):
        raise AdapterError(
            f"{what} was fitted for another model (offsets {tuple(adapter.offsets.shape)}, layers {keys}); "
            f"fit one for this model with adjustable-style adapt"
        )
    if not bool(torch.isfinite(adapter.offsets).all()):
        raise AdapterError(f"{what} holds non-finite values; fit it again")


def fold_offsets(model: AdjustableStyleModel, offsets: torch.Tensor) -> None:
    """Add painting-independent offsets D ((1 + L) × 2C) to Δ's output bias, exactly: afterwards the model gives
    what it gave with D applied as an adapter to every painting. Needs Δ on γ, β in the bilinear form."""
    check_model(model)
    lam = model.conditioning
    head = getattr(lam, "delta_params", None)
    if head is None or getattr(lam, "terms", 1) != offsets.shape[0]:
        raise AdapterError(
            "fold_offsets needs a model whose Δ adds to γ, β in the bilinear form (model.delta=params, "
            "model.delta_form=bilinear)"
        )
    with torch.no_grad():
        head.bias += offsets.to(head.bias).reshape(-1)


# ------------------------------------------------------------------------------------------------- files


def save_adapter(adapter: Adapter, path: str | Path) -> Path:
    """Write ``adapter`` as safetensors, atomically (a crash leaves the old file or none, never half a file)."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise AdapterError(f"adapter file '{path}' must end in .safetensors")
    metadata = {**adapter.meta, "style_digest": adapter.style_digest}
    data = save({"offsets": adapter.offsets.contiguous()}, metadata=metadata)
    # written into the file atomic.write_file reserved (mode 0666 less the umask, like images); safetensors'
    # save_file would create its own file, readable by the owner only
    return atomic.write_file(path, lambda tmp: tmp.write_bytes(data))


def load_adapter(path: str | Path, model: AdjustableStyleModel | None = None) -> Adapter:
    """Read an adapter written by :func:`save_adapter` (safetensors: no code runs); with ``model``, check it fits
    that model. Raises :class:`AdapterError` with a one-line reason."""
    path = Path(path)
    if not path.is_file():
        raise AdapterError(
            f"adapter file '{path}' does not exist; write one with: adjustable-style adapt STYLE -o {path.name}"
        )
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            offsets = f.get_tensor("offsets").float()
    except (SafetensorError, OSError, KeyError, ValueError) as e:
        raise AdapterError(
            f"cannot read adapter '{path}': not a slider adapter file ({' '.join(str(e).split())[:80]})"
        ) from None
    if meta.get("format") != FORMAT or "style_digest" not in meta or offsets.ndim != 2:
        raise AdapterError(f"'{path}' is not a slider adapter file (write one with adjustable-style adapt)")
    digest = meta.pop("style_digest")
    ad = Adapter(offsets, digest, meta)
    if model is not None:
        check_adapter(ad, model, str(path))
    return ad


def model_id(model: AdjustableStyleModel) -> str:
    """Identity of a model's weights (every parameter and buffer), for the adapter store: an adapter is fitted to
    one model, and a retrained model with the same layout must not pick up another's adapters."""
    h = hashlib.blake2b(digest_size=12)
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def store_dir(model: AdjustableStyleModel) -> Path:
    """The per-user adapter store for ``model``: ``<cache>/adapters/<model id>/`` (see
    :func:`adjustable_style.model_files.cache_root`), where ``adjustable-style adapt`` without ``-o`` and the web
    page's Tune button put adapters, and where the other commands look for the painting's adapter."""
    return cache_root() / "adapters" / model_id(model)


def store_path(folder: str | Path, digest: str) -> Path:
    """The file of the painting with style digest ``digest`` in an adapter store ``folder``."""
    return Path(folder) / f"{digest}.safetensors"


def load_adapters(folder: str | Path, model: AdjustableStyleModel) -> list[Adapter]:
    """Every adapter in ``folder`` (``*.safetensors``), checked against ``model``. One-line errors for a missing or
    empty folder and for files that are not adapters of this model."""
    d = Path(folder)
    if not d.is_dir():
        raise AdapterError(
            f"adapter folder '{d}' is not a folder; give the folder that adjustable-style adapt wrote into"
        )
    files = sorted(d.glob("*.safetensors"))
    if not files:
        raise AdapterError(f"adapter folder '{d}' holds no .safetensors adapters; fit them with adjustable-style adapt")
    return [load_adapter(f, model) for f in files]
