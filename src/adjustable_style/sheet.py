"""Contact sheets: a grid of images with optional text labels, as one image tensor.

Used by ``variations``, ``sweep`` and evaluation reports to show how results change with the layer weights.

Example:
    >>> tiles = [torch.rand(1, 3, 32, 48) for _ in range(4)]
    >>> contact_sheet(tiles, ncol=2, pad=4).shape
    torch.Size([1, 3, 76, 108])
    >>> format_weights({"relu2_2": 0.25, "relu3_4": 1.0})
    'relu2_2=0.25 relu3_4=1.00'
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from .checks import check_int, check_number
from .image import resize

__all__ = ["contact_sheet", "format_weights"]

_LINE_SPACING = 2  # px between label lines
_LABEL_MARGIN = 3  # px between a tile and its label, and below the label
_MIN_FONT_SIZE = 7


def format_weights(weights: Mapping[str, float], digits: int = 2) -> str:
    """Short ``name=value`` text for a label, in the mapping's order.

    Args:
        weights: Layer name → weight.
        digits: Digits after the decimal point.

    Returns:
        Space-separated ``name=value`` pairs; empty string for an empty mapping.

    Example:
        >>> format_weights({"relu2_2": 0.25, "relu3_4": 1.0})
        'relu2_2=0.25 relu3_4=1.00'
    """
    check_int("digits", digits, low=0)
    return " ".join(f"{name}={float(value):.{digits}f}" for name, value in weights.items())


def _split_word(word: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: int) -> list[str]:
    # A word wider than the cell is cut between characters rather than spill into the neighbouring cell.
    pieces: list[str] = []
    while len(word) > 1 and font.getlength(word) > width:
        cut = 1
        while cut < len(word) - 1 and font.getlength(word[: cut + 1]) <= width:
            cut += 1
        pieces.append(word[:cut])
        word = word[cut:]
    return [*pieces, word]


def _wrap(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: int) -> list[str]:
    """Split ``text`` at its newlines, then greedily at spaces (or inside over-long words) to fit ``width`` px."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split(" "):
            for piece in _split_word(word, font, width):
                candidate = f"{line} {piece}" if line else piece
                if line and font.getlength(candidate) > width:
                    lines.append(line)
                    line = piece
                else:
                    line = candidate
        lines.append(line)
    return lines


def _label_font(labels: Sequence[str], width: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    # Readable at thumbnail size and growing with the cell, but shrunk (down to a floor) in narrow cells
    # so that whole words fit and are not cut.
    size = max(11, round(width / 22))
    words = [w for label in labels for w in str(label).split()]
    while True:
        font = ImageFont.load_default(size=size)
        if size <= _MIN_FONT_SIZE or all(font.getlength(w) <= width for w in words):
            return font
        size -= 1


def contact_sheet(
    images: Sequence[torch.Tensor],
    labels: Sequence[str] | None = None,
    ncol: int | None = None,
    pad: int = 4,
    cell: int | None = None,
    background: float = 1.0,
) -> torch.Tensor:
    """Lay images out in a grid, each centred in a cell, with an optional label under each.

    Labels are drawn in black below their tile; they may contain ``"\\n"`` and are also wrapped at spaces
    to fit the cell width (the font shrinks in narrow cells). The label band is as tall as the longest
    label needs.

    Args:
        images: Images of shape (1, 3, h, w) or (3, h, w) in [0, 1]; sizes may differ.
        labels: One string per image, or None for no labels.
        ncol: Number of columns; None puts all images in one row.
        pad: Pixels of background around and between cells.
        cell: If given, each image is first resized so that its longer side is ``cell``.
        background: Grey level of the background, in [0, 1].

    Returns:
        Float32 tensor of shape (1, 3, H, W) in [0, 1], on the CPU. Cells are as large as the largest tile.

    Raises:
        ValueError: No images, a wrong image shape, or a label count that differs from the image count.

    Example:
        >>> sheet = contact_sheet([torch.rand(3, 20, 30), torch.rand(3, 30, 20)], labels=["a", "b"])
        >>> sheet.shape[-1]  # 2 cells of width 30 plus 3 pads of 4
        72
    """
    if len(images) == 0:
        raise ValueError("contact_sheet needs at least one image, got an empty sequence")
    if labels is not None:
        if isinstance(labels, str):
            raise TypeError("labels must be a sequence of strings, one per image, not a single string")
        if len(labels) != len(images):
            raise ValueError(
                f"got {len(images)} images but {len(labels)} labels; pass one label per image or labels=None"
            )
    if ncol is not None:
        check_int("ncol", ncol, low=1)
    check_int("pad", pad, low=0)
    check_number("background", background, 0.0, 1.0)

    tiles: list[torch.Tensor] = []
    for i, img in enumerate(images):
        if not isinstance(img, torch.Tensor):
            raise TypeError(f"images[{i}]: expected an image tensor, got {type(img).__name__}")
        x = img.unsqueeze(0) if img.ndim == 3 else img
        if x.ndim != 4 or x.shape[0] != 1 or x.shape[1] != 3:
            raise ValueError(
                f"images[{i}]: expected an image tensor of shape (1, 3, H, W) or (3, H, W), got {tuple(img.shape)}"
            )
        # Composed on the CPU: labels are drawn with PIL, and sheets are for saving or display anyway.
        x = x.detach().to("cpu", torch.float32)
        if cell is not None:
            x = resize(x, size=cell)
        tiles.append(x[0].clamp(0.0, 1.0))  # (3, h, w)

    n = len(tiles)
    cols = n if ncol is None else min(ncol, n)
    rows = math.ceil(n / cols)
    tile_h = max(t.shape[1] for t in tiles)
    tile_w = max(t.shape[2] for t in tiles)

    font: ImageFont.FreeTypeFont | ImageFont.ImageFont | None = None
    wrapped: list[list[str]] = []
    band = 0
    if labels is not None:
        font = _label_font(labels, tile_w)
        wrapped = [_wrap(str(label), font, tile_w) for label in labels]
        ascent, descent = font.getmetrics()
        line_h = ascent + descent + _LINE_SPACING
        longest = max(len(lines) for lines in wrapped)
        band = 2 * _LABEL_MARGIN + longest * line_h if any(any(lines) for lines in wrapped) else 0

    cell_h, cell_w = tile_h + band, tile_w
    height = rows * cell_h + (rows + 1) * pad
    width = cols * cell_w + (cols + 1) * pad
    sheet = torch.full((3, height, width), float(background))  # (3, H, W)

    origins: list[tuple[int, int]] = []
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        top, left = pad + r * (cell_h + pad), pad + c * (cell_w + pad)
        origins.append((top, left))
        h, w = tile.shape[1:]
        y, x = top + (tile_h - h) // 2, left + (tile_w - w) // 2
        sheet[:, y : y + h, x : x + w] = tile

    if font is not None and band > 0:
        # Text is drawn as a coverage mask and blended in, so the image pixels stay exact floats
        # rather than going through an 8-bit round trip.
        mask = Image.new("L", (width, height), 0)
        draw = ImageDraw.Draw(mask)
        for (top, left), lines in zip(origins, wrapped):
            text = "\n".join(lines)
            if not text.strip():
                continue
            draw.multiline_text(
                (left + tile_w / 2, top + tile_h + _LABEL_MARGIN),
                text,
                fill=255,
                font=font,
                anchor="ma",
                align="center",
                spacing=_LINE_SPACING,
            )
        coverage = torch.from_numpy(np.asarray(mask, dtype=np.float32) / 255.0)  # (H, W)
        sheet = sheet * (1.0 - coverage)  # black text: blend towards 0

    return sheet.unsqueeze(0)
