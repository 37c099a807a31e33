"""The web front end: a page with one slider per style layer over the same :class:`~adjustable_style.stylizer.Stylizer`.

``build_app`` and ``serve`` need the optional dependency gradio (``pip install 'adjustable-style[ui]'``);
the logic behind the page (:mod:`adjustable_style.ui.callbacks`) does not.
"""

from __future__ import annotations

from .app import GRADIO_MISSING, build_app, serve
from .callbacks import Studio, UploadError, check_upload, example_images

__all__ = ["GRADIO_MISSING", "Studio", "UploadError", "build_app", "check_upload", "example_images", "serve"]
