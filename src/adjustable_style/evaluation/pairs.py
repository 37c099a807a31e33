"""A content/style pair under evaluation, and the slider rows and loss totals every measurement shares.

Example:
    >>> pair = Pair(0, Path("photo.jpg"), Path("painting.jpg"), torch.rand(1, 3, 64, 64))
    >>> pair.name
    'photo × painting'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..stylizer import Stylizer


@dataclass
class Pair:
    """One (content, style) pair: the loaded content and the α rows already measured on it."""

    index: int
    content_path: Path
    style_path: Path
    content: torch.Tensor  # (1, 3, H, W) at --size
    # Every (α row, raw losses row) measured at --size: the candidates for "ours at the best α".
    pool: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.content_path.stem} × {self.style_path.stem}"


def norm_total(st: Stylizer, raw: torch.Tensor) -> torch.Tensor:
    """Σ_l L^l (Σ_i L̄^i) / L̄^l over all layers: the training objective with every α = 1, without TV. (N,)."""
    scales, _ = st.exported.loss_module().scales()
    return (raw.to(scales.device) * scales).sum(1).cpu()


def style_alpha(st: Stylizer, weights: dict[str, float]) -> torch.Tensor:
    """The (1, L) α row of ``weights`` (style sliders by layer name; content α stays 1)."""
    return st.check_weights(weights)
