"""Training data with unreadable files: seeded random replacements, distinct files counted, count resumed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from adjustable_style.config import DataConfig
from adjustable_style.data import PairDataset


def _folder_with_broken(content_images: list[Path], tmp_path: Path, n: int = 12) -> tuple[list[Path], list[Path]]:
    """n real photos (symlinked) and three unreadable files between them, sorted by name."""
    d = tmp_path / "content"
    d.mkdir()
    files = []
    for k, src in enumerate(content_images[:n]):
        files.append(d / f"{k:02d}_ok{src.suffix}")
        files[-1].symlink_to(src)
    broken = [d / "03_x_broken.jpg", d / "07_x_broken.png", d / "10_x_broken.jpg"]
    broken[0].write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    broken[1].write_bytes(b"")
    broken[2].write_bytes(content_images[0].read_bytes()[:200])  # truncated
    return sorted(files + broken), broken


def test_unreadable_files_are_counted_once_each(
    content_images: list[Path], style_images: list[Path], tmp_path: Path
) -> None:
    files, broken = _folder_with_broken(content_images, tmp_path)
    cfg = DataConfig(crop_size=32, style_size=32, scale_range=(1.0, 1.0), style_jitter=0.0, hue_jitter=0.0)
    ds = PairDataset(files, style_images[:2], cfg, seed=3)
    skipped: set[int] = set()
    events = 0
    for i in range(2 * len(files)):  # two passes over the photos
        sample = ds[i]
        assert sample["content"].shape == (3, 32, 32)
        skipped.update(int(k) for k in sample["skipped_ids"] if k >= 0)
        events += int(sample["skipped"])
    assert skipped == {files.index(b) for b in broken}  # three distinct files...
    assert events >= 2 * len(broken)  # ...met at least once per pass each
    again = PairDataset(files, style_images[:2], cfg, seed=3)
    torch.testing.assert_close(again[4]["content"], ds[4]["content"], rtol=0, atol=0)  # a pure function of (seed, i)


def test_replacement_is_seeded_random_not_the_sorted_neighbour(content_images: list[Path], tmp_path: Path) -> None:
    files, broken = _folder_with_broken(content_images, tmp_path)
    ds = PairDataset(files, files[:1], DataConfig(), seed=0)
    bad = files.index(broken[0])
    chosen = [ds._read(files, bad, _path_or_fail, i, 0)[0] for i in range(40)]
    assert not any("broken" in p.name for p in chosen)
    assert len(set(chosen)) >= 5  # spread over the folder, not always files[bad + 1]
    assert chosen == [ds._read(files, bad, _path_or_fail, i, 0)[0] for i in range(40)]  # seeded: replayable


def _fail(p: Path) -> Path:
    from adjustable_style.image import ImageError

    raise ImageError(f"cannot read image '{p}'")


def _path_or_fail(p: Path) -> Path:
    return _fail(p) if "broken" in p.name else p


@pytest.mark.filterwarnings("ignore:The dirpath has changed:UserWarning")
def test_distinct_skipped_files_survive_a_resume(
    content_images: list[Path], style_images: list[Path], tmp_path: Path
) -> None:
    from adjustable_style.config import load_config
    from adjustable_style.train import fit

    _folder_with_broken(content_images, tmp_path, n=3)  # 6 files, half of them broken: met within a few steps
    style_dir = tmp_path / "style"
    style_dir.mkdir()
    (style_dir / "s.jpg").symlink_to(style_images[0])

    def run(out: str, *extra: str):
        return fit(
            load_config(
                None,
                [
                    f"data.content_dirs=[{tmp_path / 'content'}]",
                    f"data.style_dirs=[{style_dir}]",
                    "data.val_fraction=0",
                    "data.crop_size=32",
                    "data.style_size=32",
                    "data.batch_size=2",
                    "data.num_workers=0",
                    f"log.out_dir={tmp_path / out}",
                    "log.progress_bar=false",
                    "log.image_every_n_steps=0",
                    "log.logger=csv",
                    "trainer.val_check_interval=100000",
                    "trainer.accelerator=cpu",
                    "trainer.devices=1",
                    "trainer.precision=32-true",
                    "log.checkpoint_every_n_steps=3",
                    "log.keep_checkpoints=-1",
                    "model.channels=[8,16,16]",
                    "model.n_residual=1",
                    "optim.warmup_steps=1",
                    "channels_last=false",
                    *extra,
                ],
            )
        )

    full, sys_full = run("full", "trainer.max_steps=6")
    assert 1 <= len(sys_full.skipped_files) <= 3
    mid = Path(full.checkpoint_callback.dirpath) / "step0000003.ckpt"  # type: ignore[union-attr]
    saved = torch.load(mid, map_location="cpu", weights_only=True)["skipped_files"]
    _, sys_resumed = run("resumed", "trainer.max_steps=6", f"resume={mid}")
    assert set(saved) <= sys_resumed.skipped_files == sys_full.skipped_files
