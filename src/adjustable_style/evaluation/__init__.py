"""Evaluation of a trained adjustable model: does each slider do what it says, at what quality, how fast.

``adjustable-style evaluate`` runs its measurements on held-out content/style pairs and writes a report folder
(``report.md``, ``results.json``, plots and contact sheets); ``--readme`` pastes the summary between
``<!-- eval:begin -->`` and ``<!-- eval:end -->`` so that the README's numbers always come from this code.

The package, one concept per module:

- :mod:`.settings`: :class:`EvalSettings` (what can be told) and :class:`EvalError`.
- :mod:`.splits`: which images: the shared data, the split's held-out names, the seeded pairs.
- :mod:`.stats`: Spearman's ρ and NaN-tolerant summaries.
- :mod:`.pairs`: a pair under evaluation and the α rows and loss totals the measurements share.
- :mod:`.sliders`: controllability (the paper's claim: α^l up → L^l down) and the span around the base network.
- :mod:`.comparisons`: ours vs L-BFGS (Gatys) at the same weights, and vs a peer network.
- :mod:`.diversity`: how different seeded variations are.
- :mod:`.slider_effect`: what one slider does to the picture: agreement of its ends with L-BFGS at the same
  weights, visibility, and its own-layer effect with the style at two scales.
- :mod:`.report`: Markdown, headline lines and plots, rendered from the results alone.
- :mod:`.readme`: the README's eval block.
- :mod:`.run`: :func:`run_evaluation`, which runs the sections and writes the folder atomically.

Example:
    >>> spearman([0, 1, 2, 3], [10, 8, 8, 1])  # ties get the mean of their ranks
    -0.9486832980505138
    >>> run_evaluation(EvalSettings(model="models/quick", pairs=1))  # doctest: +SKIP
"""

from __future__ import annotations

from .report import summary_lines
from .run import EvalResult, run_evaluation
from .settings import EvalError, EvalSettings
from .splits import choose_pairs, find_images, shared_data_dir
from .stats import spearman

__all__ = [
    "EvalError",
    "EvalResult",
    "EvalSettings",
    "choose_pairs",
    "find_images",
    "run_evaluation",
    "shared_data_dir",
    "spearman",
    "summary_lines",
]
