"""Slider adapters: tune the sliders to one painting at use time, once, then drag them in real time.

The shipped Λ predicts what each slider does from the style embedding alone, for any painting; on paintings it
never saw its sliders are weak (own-layer loss ratios ~0.9, see the README). Fitted for one painting, the same
parametrisation is much stronger (docs/magenta_finetune.md, "Where the headroom is"). An adapter is that fit:

    γ, β = Λ(α, e) + [1, 2α_1 − 1, …, 2α_L − 1] · D,      D of shape (1 + L, 2·C), zero = no change,

trained with the paper's objective — Σ_l α_l·L_l, each layer's loss divided by the base network's own loss on the
same crop, style terms × the recipe's style gain — on random crops of a few photos, α cycling through three
designs: U(0, 1) antithetic pairs, one slider at 0 and at 1 with the others at 0.5 (how sliders are used), and
every slider at 0 and at 1 (the two ends). D does not depend on the photo, so one adapter serves every photo
and video frame of that painting. It costs one fit per painting: ~5 min on one core of a 2-core x86 CPU for the
default 60 steps (a GPU should take seconds; not measured, none was lent).

Example:
    >>> from adjustable_style.adapt import fit_adapter, save_adapter  # doctest: +SKIP
    >>> ad = fit_adapter(st, "examples/painting_monet_water_lilies.jpg")  # doctest: +SKIP
    >>> save_adapter(ad, "monet.adapter.safetensors"); st.add_adapter(ad)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .image import load_image, resize
from .losses import Targets
from .model import slider_coefficients

if TYPE_CHECKING:
    from .stylizer import ImageLike, Stylizer

BUNDLED_PHOTOS = tuple(
    Path(__file__).resolve().parent / "assets" / "examples" / n
    for n in ("photo_cat.jpg", "photo_astronaut.jpg", "photo_rocket_launch.jpg")
)
FORMAT = "adjustable-style slider adapter 1"


class AdapterError(ValueError):
    """An adapter file that cannot be used with this model or painting; the message says why and what to do."""


@dataclass
class Adapter:
    """One painting's slider offsets.

    Attributes:
        offsets: D (1 + L, 2·C) float32: γ, β += [1, 2α − 1] · D (γ the first C columns).
        style_digest: hash of the painting as the style predictor sees it; the adapter applies to that painting only.
        meta: what it was fitted with (painting name, steps, crop, photos, seconds, model's CIN channels and α keys).
    """

    offsets: torch.Tensor
    style_digest: str
    meta: dict[str, str] = field(default_factory=dict)


def style_digest(st: Stylizer, style: ImageLike) -> str:
    """A hash of the painting's pixels as P sees them (decoded, resized, 8-bit): the same image in another file
    or format gives the same digest."""
    x = (st.style_image(style).clamp(0, 1) * 255).round().to(torch.uint8)
    return hashlib.blake2b(x.numpy().tobytes() + str(tuple(x.shape)).encode(), digest_size=16).hexdigest()


def _check_model(st: Stylizer) -> None:
    if not st.has_base:
        raise AdapterError(
            "slider adapters need a model built on a base network (the bundled 'default'); this one was "
            "trained from scratch"
        )


def _photo_pool(photos: Sequence[ImageLike], crop: int) -> list[torch.Tensor]:
    """Each photo scaled so its shorter side is 1.25 × crop (random crops then see most of it)."""
    pool = []
    for p in photos:
        x = load_image(p) if not isinstance(p, torch.Tensor) else p.reshape(1, *p.shape[-3:]).float()
        h, w = x.shape[-2:]
        k = round(1.25 * crop) / min(h, w)
        pool.append(resize(x, (max(crop, round(h * k)), max(crop, round(w * k)))))
    return pool


DESIGNS = ("random", "one", "corners")


def _alphas(n_pairs: int, keys: Sequence[str], design: str, g: torch.Generator) -> torch.Tensor:
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
            raise ValueError(f"unknown α design {design!r}; use one of {', '.join(DESIGNS)}")
        rows += [lo, hi]
    return torch.stack(rows)


def _check_fit_args(steps: int, crop: int, batch: int, design: Sequence[str]) -> tuple[str, ...]:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if isinstance(crop, bool) or not isinstance(crop, int) or crop < 64:
        raise ValueError(f"crop must be an int >= 64 px, got {crop!r}")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 2 or batch % 2:
        raise ValueError(f"batch must be an even int >= 2, got {batch!r}")
    design = tuple(design)
    if not design or any(x not in DESIGNS for x in design):
        raise ValueError(f"design must be a non-empty sequence of {', '.join(DESIGNS)}, got {design!r}")
    return design


def _fit_offsets(
    st: Stylizer,
    styles: Sequence[ImageLike],
    photos: Sequence[ImageLike],
    steps: int,
    crop: int,
    batch: int,
    lr: float,
    seed: int,
    design: Sequence[str],
    progress: Callable[[int, int, float], None] | None,
) -> torch.Tensor:
    """D ((1 + L) × 2C, float32 on the CPU) minimising the objective over random crops of ``photos``, each pair of
    α rows with one of ``styles`` (drawn at random when there are several; one painting = an adapter, many = a
    calibration of the model)."""
    m, loss, keys = st.model, st.exported.loss_module(), list(st.schema.keys)
    dev = st.device
    gain = float(st.exported.config.get("train", {}).get("style_gain", 3.0))  # the recipe's, as in training
    gains = torch.tensor([gain if k.startswith("style/") else 1.0 for k in keys], device=dev)
    pool = _photo_pool(photos, crop)
    es, targets = [], []
    for s in styles:  # embedding and Gram targets once per painting
        es.append(st.embed(s))
        targets.append(loss.style_targets(st.style_image(s).to(dev)))
    g = torch.Generator().manual_seed(seed)
    d = torch.zeros(1 + len(keys), 2 * m.net.cin_channels, device=dev, requires_grad=True)
    opt = torch.optim.Adam([d], lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.5 * (1 + math.cos(math.pi * i / steps)))
    params = [p for p in m.parameters() if p.requires_grad]
    for p in params:  # only D learns; the model's own weights stay as they are (and get no .grad)
        p.requires_grad_(False)
    try:
        for step in range(steps):
            crops, which = [], []
            for _ in range(batch // 2):
                x = pool[int(torch.randint(len(pool), (1,), generator=g))]
                i = int(torch.randint(x.shape[-2] - crop + 1, (1,), generator=g))
                j = int(torch.randint(x.shape[-1] - crop + 1, (1,), generator=g))
                crops += [x[..., i : i + crop, j : j + crop]] * 2  # the pair of α rows shares its crop and painting
                which += [int(torch.randint(len(styles), (1,), generator=g)) if len(styles) > 1 else 0] * 2
            c = torch.cat(crops).to(dev)
            a = _alphas(batch // 2, keys, design[step % len(design)], g=g).to(dev)
            e = torch.cat([es[w] for w in which])
            tg = Targets(loss.content_targets(c), {k: torch.cat([targets[w][k] for w in which]) for k in targets[0]})
            with torch.no_grad():
                g0, b0 = m.mlp.base(e)
                ref = loss.raw_losses(m.net(c, g0, b0), tg).clamp_min(1e-12)
                gamma, beta = m.mlp(a, e)
            dg, db = (slider_coefficients(a) @ d).chunk(2, 1)
            obj = (a * gains * loss.raw_losses(m.net(c, gamma + dg, beta + db), tg) / ref).sum(1).mean()
            opt.zero_grad()
            obj.backward()
            opt.step()
            sched.step()
            if progress is not None:
                progress(step + 1, steps, float(obj.detach()))
    finally:
        for p in params:
            p.requires_grad_(True)
    return d.detach().float().cpu()


def fit_adapter(
    st: Stylizer,
    style: ImageLike,
    photos: Sequence[ImageLike] | None = None,
    steps: int = 60,
    crop: int = 192,
    batch: int = 4,
    lr: float = 0.01,
    seed: int = 0,
    design: Sequence[str] = ("random", "one", "corners"),
    progress: Callable[[int, int, float], None] | None = None,
) -> Adapter:
    """Fit one painting's slider offsets D (see the module docstring).

    Args:
        st: a Stylizer of a model with a base network (``st.has_base``).
        style: the painting.
        photos: content photos to fit on (random crops); default: the three bundled example photos. D does not
            depend on the photo, but a few varied photos make it generalise (fitted on 3, measured on others).
        steps: Adam steps (cosine-decayed learning rate ``lr``).
        crop: crop side in px; relu4_4's statistics need ≥ 160.
        batch: images per step (even: pairs of α).
        seed: crops and α.
        design: the α design of each step, cycled (see ``_alphas``): "random", "one", "corners".
        progress: called as ``progress(step, steps, objective)`` after each step.
    """
    _check_model(st)
    design = _check_fit_args(steps, crop, batch, design)
    photo_list = list(photos) if photos is not None else list(BUNDLED_PHOTOS)
    if not photo_list:
        raise ValueError("photos is empty; give at least one content photo (or None for the bundled ones)")
    t0 = time.time()
    d = _fit_offsets(st, [style], photo_list, steps, crop, batch, lr, seed, design, progress)
    keys = list(st.schema.keys)
    name = Path(style).name if isinstance(style, (str, os.PathLike)) else "(image)"
    meta = {
        "format": FORMAT,
        "style": name,
        "steps": str(steps),
        "crop": str(crop),
        "batch": str(batch),
        "lr": str(lr),
        "seed": str(seed),
        "design": ",".join(design),
        "photos": json.dumps([Path(p).name if isinstance(p, (str, os.PathLike)) else "(image)" for p in photo_list]),
        "seconds": f"{time.time() - t0:.1f}",
        "keys": json.dumps(keys),
        "cin_channels": str(st.model.net.cin_channels),
    }
    return Adapter(d, style_digest(st, style), meta)


def save_adapter(adapter: Adapter, path: str | Path) -> Path:
    """Write ``adapter`` as safetensors, atomically (a crash leaves the old file or none, never half a file)."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise AdapterError(f"adapter file '{path}' must end in .safetensors")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        save_file(
            {"offsets": adapter.offsets.contiguous()},
            str(tmp),
            metadata={**adapter.meta, "style_digest": adapter.style_digest},
        )
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_adapter(path: str | Path, st: Stylizer | None = None) -> Adapter:
    """Read an adapter written by :func:`save_adapter` (safetensors: no code runs); with ``st``, check it fits that
    model. Raises :class:`AdapterError` with a one-line reason."""
    from safetensors import SafetensorError
    from safetensors.torch import safe_open

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
    if st is not None:
        check_adapter(ad, st, str(path))
    return ad


def add_adapters_from(st: Stylizer, folder: str | Path) -> int:
    """Add every adapter in ``folder`` (``*.safetensors``) to ``st``; returns how many. One-line errors for a missing
    or empty folder and for files that are not adapters of this model."""
    d = Path(folder)
    if not d.is_dir():
        raise AdapterError(
            f"adapter folder '{d}' is not a folder; give the folder that adjustable-style adapt wrote into"
        )
    files = sorted(d.glob("*.safetensors"))
    if not files:
        raise AdapterError(f"adapter folder '{d}' holds no .safetensors adapters; fit them with adjustable-style adapt")
    for f in files:
        st.add_adapter(load_adapter(f, st))
    return len(files)


def check_adapter(adapter: Adapter, st: Stylizer, what: str = "the adapter") -> None:
    """Raise :class:`AdapterError` unless ``adapter`` was fitted for a model of this layout (layers and CIN size)."""
    _check_model(st)
    want = (1 + len(st.schema.keys), 2 * st.model.net.cin_channels)
    keys = json.loads(adapter.meta.get("keys", "[]"))
    if tuple(adapter.offsets.shape) != want or (keys and keys != list(st.schema.keys)):
        raise AdapterError(
            f"{what} was fitted for another model (offsets {tuple(adapter.offsets.shape)}, layers {keys}); "
            f"fit one for this model with adjustable-style adapt"
        )
    if not bool(torch.isfinite(adapter.offsets).all()):
        raise AdapterError(f"{what} holds non-finite values; fit it again")


def fit_calibration(
    st: Stylizer,
    styles: Sequence[ImageLike],
    photos: Sequence[ImageLike],
    steps: int = 300,
    crop: int = 192,
    batch: int = 4,
    lr: float = 0.01,
    seed: int = 0,
    design: Sequence[str] = ("random", "one", "corners"),
    progress: Callable[[int, int, float], None] | None = None,
) -> torch.Tensor:
    """One set of slider offsets D for *all* paintings: the adapter fit run over many paintings (each pair of α
    rows with a random one of ``styles``). Painting-independent, so it carries to paintings it never saw; fold it
    into the model with :func:`fold_offsets`. Used to calibrate the shipped model's α range (issue 12:
    every slider at 0 should reach back below the base network's content loss)."""
    _check_model(st)
    design = _check_fit_args(steps, crop, batch, design)
    if not list(styles) or not list(photos):
        raise ValueError("fit_calibration needs at least one painting and one photo")
    return _fit_offsets(st, list(styles), list(photos), steps, crop, batch, lr, seed, design, progress)


def fold_offsets(st: Stylizer, offsets: torch.Tensor) -> None:
    """Add painting-independent offsets D ((1 + L) × 2C) to Δ's output bias, exactly: afterwards the model gives
    what it gave with D applied as an adapter to every painting. Needs Δ on γ, β in the bilinear form."""
    _check_model(st)
    if st.backend != "torch":  # the ONNX graphs hold the old weights: folding would not reach the renders
        raise AdapterError(
            f"fold_offsets changes the torch weights; load the model with backend='torch', not {st.backend!r}"
        )
    lam = st.model.mlp
    head = getattr(lam, "delta_params", None)
    if head is None or getattr(lam, "terms", 1) != offsets.shape[0]:
        raise AdapterError(
            "fold_offsets needs a model whose Δ adds to γ, β in the bilinear form (model.delta=params, "
            "model.delta_form=bilinear)"
        )
    with torch.no_grad():
        head.bias += offsets.to(head.bias).reshape(-1)
