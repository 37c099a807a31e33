"""adjustable-style: adjustable real-time neural style transfer (Babaeizadeh & Ghiasi, arXiv 1811.08560).

A feed-forward network with conditional instance normalisation is trained jointly with an MLP that maps
per-layer loss weights to the normalisation parameters, so the weights become sliders at inference.
"""

from __future__ import annotations

__version__ = "0.1.0"
