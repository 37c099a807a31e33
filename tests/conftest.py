"""Shared pytest fixtures.

The real photos and paintings live outside the repository, in ``../shared/data`` (``content/`` and
``style/``); tests that need them skip when that folder is absent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from adjustable_style.image import is_image_file

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _images_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        pytest.skip(f"shared data folder not found: {folder}")
    return sorted(p for p in folder.iterdir() if p.is_file() and is_image_file(p))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder (``<repo>/../shared/data``); skips the test if it is missing."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder not found: {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def content_images(shared_data: Path) -> list[Path]:
    """Sorted paths of the real photos in ``shared/data/content``."""
    return _images_in(shared_data / "content")


@pytest.fixture(scope="session")
def style_images(shared_data: Path) -> list[Path]:
    """Sorted paths of the paintings and textures in ``shared/data/style``."""
    return _images_in(shared_data / "style")
