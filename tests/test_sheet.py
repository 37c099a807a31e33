from __future__ import annotations

from pathlib import Path

import pytest
import torch

from adjustable_style.image import load_image
from adjustable_style.sheet import contact_sheet, format_weights


def _tiles(n: int, h: int = 20, w: int = 30) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(n)
    return [torch.rand(1, 3, h, w, generator=gen) for _ in range(n)]


def test_one_row_by_default() -> None:
    sheet = contact_sheet(_tiles(3), pad=4)
    assert sheet.shape == (1, 3, 20 + 2 * 4, 3 * 30 + 4 * 4)
    assert sheet.dtype == torch.float32


def test_grid_layout_and_exact_pixels() -> None:
    tiles = _tiles(5)
    sheet = contact_sheet(tiles, ncol=2, pad=3, background=0.0)
    assert sheet.shape == (1, 3, 3 * 20 + 4 * 3, 2 * 30 + 3 * 3)
    # Tile 3 sits in row 1, column 1; pixels are copied, not re-quantised.
    assert torch.equal(sheet[0, :, 3 + 23 : 3 + 23 + 20, 3 + 33 : 3 + 33 + 30], tiles[3][0])
    # The empty sixth cell and the padding are background.
    assert sheet[0, :, 49:, 36:66].abs().max() == 0.0
    assert sheet[0, :, :3, :].abs().max() == 0.0


def test_ncol_larger_than_count_is_one_row() -> None:
    assert contact_sheet(_tiles(2), ncol=10, pad=0).shape == (1, 3, 20, 60)


def test_mixed_sizes_are_centred() -> None:
    big = torch.zeros(3, 40, 40)
    small = torch.zeros(1, 3, 10, 20)
    sheet = contact_sheet([big, small], pad=0, background=1.0)
    assert sheet.shape == (1, 3, 40, 80)
    cell = sheet[0, :, :, 40:]
    assert cell[:, 15:25, 10:30].max() == 0.0  # the small tile, centred
    assert cell[:, :15].min() == 1.0 and cell[:, 25:].min() == 1.0
    assert cell[:, :, :10].min() == 1.0 and cell[:, :, 30:].min() == 1.0


def test_cell_resizes_longer_side() -> None:
    sheet = contact_sheet([torch.rand(3, 100, 50), torch.rand(1, 3, 40, 80)], cell=32, pad=2)
    assert sheet.shape == (1, 3, 32 + 4, 2 * 32 + 3 * 2)


def test_labels_draw_dark_text_below_tiles() -> None:
    tiles = [torch.ones(3, 64, 96) for _ in range(2)]
    plain = contact_sheet(tiles, pad=4)
    labelled = contact_sheet(tiles, labels=["relu2_2=0.25", "relu3_4=1.00"], pad=4)
    assert labelled.shape[-1] == plain.shape[-1]
    assert labelled.shape[-2] > plain.shape[-2]
    band = labelled[0, :, 4 + 64 :, :]
    assert band.min() < 0.2  # black text
    assert (band < 0.5).any(dim=0)[:, 4 : 4 + 96].any() and (band < 0.5).any(dim=0)[:, 104:200].any()
    assert labelled[0, :, 4 : 4 + 64].min() == 1.0  # tiles untouched by the text


def test_multiline_and_wrapped_labels_get_a_taller_band() -> None:
    tiles = [torch.ones(3, 40, 60) for _ in range(2)]
    one = contact_sheet(tiles, labels=["a", "b"]).shape[-2]
    two = contact_sheet(tiles, labels=["a\nb", "c"]).shape[-2]
    long_label = "relu1_2=0.10 relu2_2=0.25 relu3_4=1.00 relu4_4=0.50"
    wrapped = contact_sheet(tiles, labels=[long_label, "c"], pad=4)
    assert two > one
    assert wrapped.shape[-2] > one
    # Wrapping keeps the text inside its own cell: the gap between the two columns stays white.
    gap = wrapped[0, :, :, 4 + 60 : 4 + 60 + 4]
    assert gap.min() == 1.0


def test_empty_labels_add_no_band() -> None:
    assert contact_sheet(_tiles(2), labels=["", ""]).shape == contact_sheet(_tiles(2)).shape


def test_real_paintings(style_images: list[Path]) -> None:
    images = [load_image(p, max_size=96) for p in style_images[:4]]
    sheet = contact_sheet(images, labels=[p.stem for p in style_images[:4]], ncol=2, cell=64)
    assert sheet.shape[:2] == (1, 3) and sheet.shape[-1] == 2 * 64 + 3 * 4
    assert 0.0 <= sheet.min() and sheet.max() <= 1.0


def test_errors() -> None:
    with pytest.raises(ValueError, match="at least one image"):
        contact_sheet([])
    with pytest.raises(ValueError, match="3 images but 2 labels"):
        contact_sheet(_tiles(3), labels=["a", "b"])
    with pytest.raises(ValueError, match=r"images\[1\].*got \(1, 1, 8, 8\)"):
        contact_sheet([torch.rand(3, 8, 8), torch.rand(1, 1, 8, 8)])
    with pytest.raises(ValueError, match="ncol"):
        contact_sheet(_tiles(2), ncol=0)
    with pytest.raises(ValueError, match="background"):
        contact_sheet(_tiles(2), background=2.0)


def test_format_weights() -> None:
    assert format_weights({"relu2_2": 0.25, "relu3_4": 1.0}) == "relu2_2=0.25 relu3_4=1.00"
    assert format_weights({"relu4_4": 0.333}, digits=1) == "relu4_4=0.3"
    assert format_weights({}) == ""
    with pytest.raises(ValueError):
        format_weights({"relu2_2": 1.0}, digits=-1)
