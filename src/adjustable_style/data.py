"""Training data: content crops from photo folders, style crops from painting/texture folders.

Built for exact resumption and for several GPUs without a ``DistributedSampler``: the loader walks a global
sample counter ``i`` (rank r of W takes ``i = start·W + r, + W, …``), and everything about sample ``i`` — which
photo (a seeded permutation per epoch), which style, every augmentation draw — is a pure function of
``(seed, i)``. Resuming at step k therefore replays exactly the batches an uninterrupted run would have seen,
whatever the number of workers.

Unreadable files never stop a run: the sample takes a seeded random other file instead (not the next one in
sorted order, which would make that neighbour appear twice as often), the skipped files travel with the batch
(``"skipped_ids"``: content files by index, style files by ``len(content) + index``) so the system can count
distinct files, and each is logged once.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import kornia.enhance as KE
import pytorch_lightning as pl
import torch
from kornia.geometry.transform import resize as kresize
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler

from .config import ConfigError, DataConfig
from .image import ImageError, is_image_file, open_image, pil_to_tensor

log = logging.getLogger(__name__)

MAX_SKIPS_PER_SAMPLE = 8
"""Skipped file ids a sample reports (padded with -1 so batches collate); more in one sample is only counted."""


# ----------------------------------------------------------------------------------------------- file lists
def list_images(dirs: Sequence[str | Path]) -> list[Path]:
    """All image files under ``dirs``, recursively, sorted (so the list is the same on every machine)."""
    files: list[Path] = []
    for d in dirs:
        p = Path(d).expanduser()
        if not p.is_dir():
            raise ConfigError(f"image folder {str(p)!r} does not exist; check data.content_dirs / data.style_dirs")
        files += [f for f in p.rglob("*") if f.is_file() and is_image_file(f)]
    return sorted(set(files))


def _is_val(path: Path, val_fraction: float, seed: int) -> bool:
    # Stable across machines and Python runs (unlike hash()): by file name, so moving the folder keeps the split.
    h = hashlib.sha1(f"{seed}:{path.name}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64 < val_fraction


def split_files(
    files: Sequence[Path], val_fraction: float, seed: int = 0, names: dict[str, list[str]] | None = None
) -> tuple[list[Path], list[Path]]:
    """(train, val) files: from an explicit ``names`` split ({"train": [...], "val": [...]} of file names)
    or a seeded hash split by file name."""
    if names is not None:
        val_names = set(names.get("val", []))
        train_names = set(names.get("train", [])) or {f.name for f in files} - val_names
        return [f for f in files if f.name in train_names], [f for f in files if f.name in val_names]
    val = [f for f in files if _is_val(f, val_fraction, seed)]
    val_set = set(val)
    return [f for f in files if f not in val_set], val


def load_split(path: str | Path) -> dict[str, dict[str, list[str]]]:
    p = Path(path)
    try:
        d = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read split file {str(p)!r}: {e}") from None
    if not isinstance(d, dict) or not {"content", "style"} <= set(d):
        raise ConfigError(f"split file {str(p)!r} must hold {{'content': {{...}}, 'style': {{...}}}}")
    return d


# ----------------------------------------------------------------------------------------------- augmentation
def _load_scaled(path: Path, short_side: int) -> torch.Tensor:
    """Decode ``path`` and bring its shorter side to ``short_side`` → (1, 3, H, W).

    PIL's integer ``reduce`` (a cheap box filter) first takes huge photos close to the target, then kornia's
    antialiased resize lands on it exactly.
    """
    img = open_image(path)
    factor = min(img.size) // (2 * short_side)
    if factor >= 2:
        img = img.reduce(factor)
    x = pil_to_tensor(img)
    return kresize(x, short_side, side="short", antialias=True).clamp(0, 1)


def random_crop(
    path: Path, size: int, scale_range: tuple[float, float], g: torch.Generator, flip: bool = True
) -> torch.Tensor:
    """Random scale (shorter side = size × U(scale_range)), random size×size crop, random h-flip → (3, size, size)."""
    lo, hi = scale_range
    short = round(size * (lo + (hi - lo) * torch.rand((), generator=g).item()))
    x = _load_scaled(path, max(short, size))
    h, w = x.shape[-2:]
    top = int(torch.randint(0, h - size + 1, (), generator=g))
    left = int(torch.randint(0, w - size + 1, (), generator=g))
    x = x[..., top : top + size, left : left + size]
    if flip and torch.rand((), generator=g).item() < 0.5:
        x = x.flip(-1)
    return x[0]


def center_crop(path: Path, size: int) -> torch.Tensor:
    x = _load_scaled(path, size)
    h, w = x.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return x[0, :, top : top + size, left : left + size]


def color_jitter(x: torch.Tensor, strength: float, hue: float, g: torch.Generator) -> torch.Tensor:
    """Brightness, contrast, saturation in 1 ± strength and hue ± hue·2π (kornia), for style images."""
    if strength <= 0 and hue <= 0:
        return x

    def u() -> float:  # uniform in [-1, 1)
        return 2 * torch.rand((), generator=g).item() - 1

    x = x[None]
    x = KE.adjust_brightness(x, strength * u())
    x = KE.adjust_contrast(x, 1 + strength * u())
    x = KE.adjust_saturation(x, 1 + strength * u())
    if hue > 0:
        x = KE.adjust_hue(x, hue * u() * 2 * torch.pi)
    return x[0].clamp(0, 1)


# ---------------------------------------------------------------------------------------------------- datasets
class PairDataset(Dataset):
    """Sample ``i`` → a content crop and a style crop, both pure functions of ``(seed, i)``.

    Args:
        content, style: image files.
        cfg: crop sizes and augmentation strengths.
        seed: the run's seed.
        train: random crops and jitter (train) or fixed centre crops, pairs ``i → (i % Nc, i % Ns)`` (val).
    """

    def __init__(self, content: Sequence[Path], style: Sequence[Path], cfg: DataConfig, seed: int, train: bool = True):
        if not content or not style:
            raise ConfigError(f"need at least one content and one style image, got {len(content)} and {len(style)}")
        self.content, self.style = list(content), list(style)
        self.cfg, self.seed, self.train = cfg, seed, train
        self._perm: tuple[int, torch.Tensor] | None = None
        self._warned: set[Path] = set()
        self.world_size = 1  # set by the DataModule: samples sharing a style are grouped per rank

    def style_key(self, i: int) -> int | None:
        """With ``styles_per_batch = k``, the ``B/k`` consecutive samples of one rank's batch that share a style
        share this key (the style, its crop and its jitter are drawn from it); ``None`` when every sample has its
        own style."""
        k = self.cfg.styles_per_batch
        share = self.cfg.batch_size // k if k else 1
        if not self.train or share <= 1:
            return None
        w = self.world_size
        return (i // w // share) * w + i % w

    def __len__(self) -> int:  # one pass over the photos; the sampler is infinite anyway
        return len(self.content)

    def _content_index(self, i: int) -> int:
        if not self.train:
            return i % len(self.content)
        epoch, pos = divmod(i, len(self.content))
        if self._perm is None or self._perm[0] != epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm = (epoch, torch.randperm(len(self.content), generator=g))
        return int(self._perm[1][pos])

    def _read(self, files: list[Path], start: int, fn, i: int, offset: int) -> tuple[torch.Tensor, list[int]]:
        """fn(path) on files[start]; an unreadable file is replaced by a seeded random other one (a pure function
        of ``(seed, i, offset)``, so resumes replay it). Returns (x, ids of the skipped files, ``offset + index``)."""
        g = torch.Generator().manual_seed((self.seed * 6_364_136_223_846_793 + i * 1_442_695 + offset + 1) % (2**63))
        index, skipped = start, []
        for _ in range(min(len(files), 50)):
            path = files[index]
            try:
                return fn(path), skipped
            except (ImageError, OSError, Image.DecompressionBombError) as e:
                skipped.append(offset + index)
                if path not in self._warned:
                    self._warned.add(path)
                    log.warning("skipping unreadable training image: %s", e)
            tried = {k - offset for k in skipped}
            while index in tried and len(tried) < len(files):
                index = int(torch.randint(0, len(files), (), generator=g))
        raise RuntimeError(
            f"{len(skipped)} images could not be read, starting at {files[start]}; check the data folders"
        )

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        if self.train:
            g = torch.Generator().manual_seed((self.seed * 1_000_003 + i) % (2**63))
            s_idx = int(torch.randint(0, len(self.style), (), generator=g))
            key = self.style_key(i)
            gs = g  # every sample its own style (the original scheme, kept draw for draw)
            if key is not None:  # a style shared by a group of samples: drawn from the group's own generator
                gs = torch.Generator().manual_seed((self.seed * 998_244_353 + key + 2**40) % (2**63))
                s_idx = int(torch.randint(0, len(self.style), (), generator=gs))
            content, skip_c = self._read(
                self.content, self._content_index(i), lambda p: random_crop(p, cfg.crop_size, cfg.scale_range, g), i, 0
            )

            def style_fn(p: Path) -> torch.Tensor:
                x = random_crop(p, cfg.style_size, cfg.scale_range, gs)
                return color_jitter(x, cfg.style_jitter, cfg.hue_jitter, gs)

            style, skip_s = self._read(self.style, s_idx, style_fn, i if key is None else key, len(self.content))
        else:
            content, skip_c = self._read(
                self.content, i % len(self.content), lambda p: center_crop(p, cfg.crop_size), i, 0
            )
            style, skip_s = self._read(
                self.style, i % len(self.style), lambda p: center_crop(p, cfg.style_size), i, len(self.content)
            )
        ids = (skip_c + skip_s)[:MAX_SKIPS_PER_SAMPLE]
        return {
            "content": content,
            "style": style,
            "index": torch.tensor(i),
            "skipped": torch.tensor(len(skip_c) + len(skip_s)),
            "skipped_ids": torch.tensor(ids + [-1] * (MAX_SKIPS_PER_SAMPLE - len(ids)), dtype=torch.long),
        }


class CounterSampler(Sampler[int]):
    """Infinite sample counter for one rank: start·W + r, start·W + r + W, … (see module docs)."""

    def __init__(self, start: int = 0, rank: int = 0, world_size: int = 1) -> None:
        self.start, self.rank, self.world_size = start, rank, world_size

    def __iter__(self) -> Iterator[int]:
        i = self.start * self.world_size + self.rank
        while True:
            yield i
            i += self.world_size

    def __len__(self) -> int:  # Lightning asks; the run is bounded by max_steps
        return 2**62


class ResumableLoader(DataLoader):
    """The training loader. Its position needs no saving — the sampler starts at global_step × batch size —
    but a resume is only exact with the same batch size and world size, so those are saved and checked.
    (Having ``state_dict``/``load_state_dict`` also tells Lightning that mid-epoch resumes are exact.)"""

    def state_dict(self) -> dict[str, int]:
        sampler = self.sampler
        return {"batch_size": int(self.batch_size or 0), "world_size": getattr(sampler, "world_size", 1)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        now = self.state_dict()
        if state and state != now:
            log.warning(
                "resuming with %s, the checkpoint was written with %s: the data order will not replay exactly",
                now,
                state,
            )


class StyleDataModule(pl.LightningDataModule):
    """Train/val loaders over content and style folders (see the module docstring for the sampling scheme)."""

    def __init__(self, cfg: DataConfig, seed: int = 0) -> None:
        super().__init__()
        self.cfg, self.seed = cfg, seed
        self.train_set: PairDataset | None = None
        self.val_set: PairDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        cfg = self.cfg
        if not cfg.content_dirs or not cfg.style_dirs:
            raise ConfigError(
                "no training images: set data.content_dirs=[PHOTOS_DIR] and "
                "data.style_dirs=[PAINTINGS_DIR,TEXTURES_DIR]"
            )
        split = load_split(cfg.split_file) if cfg.split_file else {"content": None, "style": None}
        sets = {}
        for kind, dirs in (("content", cfg.content_dirs), ("style", cfg.style_dirs)):
            files = list_images(dirs)
            if not files:
                raise ConfigError(f"no images found in data.{kind}_dirs={list(dirs)}")
            train, val = split_files(files, cfg.val_fraction, self.seed, split[kind])
            if not train:
                raise ConfigError(f"the split leaves no {kind} images for training")
            sets[kind] = (train, val or train[:1])
            log.info("%s images: %d train, %d val", kind, len(train), len(val))
        self.train_set = PairDataset(sets["content"][0], sets["style"][0], cfg, self.seed, train=True)
        self.val_set = PairDataset(sets["content"][1], sets["style"][1], cfg, self.seed, train=False)

    def _loader(self, dataset: Dataset, sampler: Sampler, batch_size: int) -> DataLoader:
        workers = self.cfg.num_workers
        return ResumableLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            num_workers=workers,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=workers > 0,
            drop_last=False,
        )

    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None
        trainer = self.trainer
        rank, world, start = 0, 1, 0
        if trainer is not None:
            rank, world = trainer.global_rank, trainer.world_size
            # Samples this rank has consumed so far: resuming replays the exact continuation.
            start = trainer.global_step * trainer.accumulate_grad_batches * self.cfg.batch_size
        self.train_set.world_size = world
        return self._loader(self.train_set, CounterSampler(start, rank, world), self.cfg.batch_size)

    def val_dataloader(self) -> DataLoader:
        assert self.val_set is not None
        n = min(len(self.val_set), self.cfg.val_batches * self.cfg.batch_size)
        indices = list(range(max(n, 1)))
        return DataLoader(self.val_set, batch_size=self.cfg.batch_size, sampler=indices, num_workers=0, drop_last=False)
