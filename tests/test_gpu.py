"""On a CUDA device (deselected by default: `python -m pytest -m gpu`; skipped where there is no GPU)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from adjustable_style.config import load_config
from adjustable_style.stylizer import Stylizer
from adjustable_style.train import fit

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "examples" / "photo_cat.jpg"
PAINTING = ROOT / "examples" / "painting_hokusai_great_wave.jpg"


def test_bf16_channels_last_inference_matches_float32() -> None:
    full = Stylizer.load("default", device="cuda")
    half = Stylizer.load("default", device="cuda", autocast=True)
    w = {"relu2_2": 0.2, "relu3_4": 0.9, "relu4_4": 0.5}
    a = full.stylize(PHOTO, PAINTING, w, max_size=512)
    b = half.stylize(PHOTO, PAINTING, w, max_size=512)
    cpu = Stylizer.load("default", device="cpu").stylize(PHOTO, PAINTING, w, max_size=512)
    assert (a - cpu).abs().max() < 1e-3  # the GPU's float32 path is the CPU's result
    assert (a - b).abs().mean() < 0.02  # bf16 autocast: close, not equal


def test_training_steps_on_the_gpu_in_bf16(shared_data: Path, tmp_path: Path) -> None:
    cfg = load_config(
        ROOT / "configs" / "train" / "magenta_gpu.yaml",
        [
            f"data.content_dirs=[{shared_data / 'content'}]",
            f"data.style_dirs=[{shared_data / 'style'}]",
            "data.num_workers=2",
            "trainer.max_steps=20",
            f"log.out_dir={tmp_path}",
            "log.checkpoint_every_n_steps=10",
        ],
    )
    trainer, system = fit(cfg)
    assert trainer.global_step == 20
    assert system.device.type == "cuda" and next(system.model.conditioning.parameters()).is_cuda
