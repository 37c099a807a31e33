"""Shared pytest fixtures.

The real photos and paintings live outside the repository, in ``../shared/data`` (``content/`` and
``style/``); tests that need them skip when that folder is absent.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from adjustable_style.image import is_image_file

# $ADJUSTABLE_STYLE_DATA (as in the configs) points elsewhere, e.g. on a machine without ../shared
SHARED_DATA = Path(
    os.environ.get("ADJUSTABLE_STYLE_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data"
)


def _images_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        pytest.skip(f"shared data folder not found: {folder}")
    return sorted(p for p in folder.iterdir() if p.is_file() and is_image_file(p))


@pytest.fixture(scope="session", autouse=True)
def _onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """ONNX graphs that tests export on demand go to a temporary cache, not the user's ~/.cache."""
    old = os.environ.get("ADJUSTABLE_STYLE_CACHE")
    os.environ["ADJUSTABLE_STYLE_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("ADJUSTABLE_STYLE_CACHE", None)
    else:
        os.environ["ADJUSTABLE_STYLE_CACHE"] = old


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


@pytest.fixture(scope="session")
def tiny_checkpoint(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real model (caffe VGG19, real images) trained for 2 steps at 64 px: its Lightning ``last.ckpt``."""
    from adjustable_style.config import load_config
    from adjustable_style.train import fit

    out = tmp_path_factory.mktemp("tiny_run")
    cfg = load_config(
        Path(__file__).resolve().parents[1] / "configs" / "train" / "quick.yaml",
        [
            f"data.content_dirs=[{shared_data / 'content'}]",
            f"data.style_dirs=[{shared_data / 'style'}]",
            "trainer.max_steps=2",
            "data.crop_size=64",
            "data.style_size=64",
            "data.batch_size=2",
            "data.num_workers=0",
            "trainer.val_check_interval=100000",
            f"log.out_dir={out}",
            "log.progress_bar=false",
            "log.image_every_n_steps=0",
        ],
    )
    trainer, _ = fit(cfg)
    ckpt = Path(trainer.checkpoint_callback.last_model_path)  # type: ignore[union-attr]
    assert ckpt.is_file(), f"training wrote no checkpoint at {ckpt}"
    return ckpt


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``tiny_checkpoint`` exported for inference (float16 ``model.safetensors`` + ``config.json``)."""
    from adjustable_style.export import export_checkpoint

    return export_checkpoint(tiny_checkpoint, tmp_path_factory.mktemp("tiny_model") / "model")
