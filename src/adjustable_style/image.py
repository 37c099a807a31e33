"""The one image convention: float32 RGB in [0, 1], shape (B, 3, H, W).

Every module that reads, writes or resizes pictures goes through here, so decoding quirks (EXIF rotation,
16-bit, palettes, alpha, CMYK) and bad files are handled once, with one-line errors that name the file.

Example:
    >>> t = torch.rand(1, 3, 40, 60)
    >>> resize(t, 30).shape
    torch.Size([1, 3, 20, 30])
    >>> pil_to_tensor(tensor_to_pil(t)).shape
    torch.Size([1, 3, 40, 60])
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from .atomic import write_file
from .checks import InputError, check_int

__all__ = [
    "IMAGE_EXTENSIONS",
    "MAX_PIXELS",
    "MIN_SIDE",
    "ImageError",
    "is_image_file",
    "load_image",
    "open_image",
    "pil_to_tensor",
    "resize",
    "save_image",
    "target_size",
    "tensor_to_pil",
]

StrPath = Union[str, "os.PathLike[str]"]
"""Anything accepted as a file path."""

MIN_SIDE = 16
"""Smallest side accepted: VGG downsamples 16x, so smaller images have no deep features."""

MAX_PIXELS = 100_000_000
"""Decompression-bomb limit, checked from the header before any pixel is decoded."""

IMAGE_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})

_SAVE_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}


class ImageError(InputError):
    """An image file could not be read or written; the message is one line naming the path and the fix."""

    def __init__(self, message: str) -> None:
        # Messages end up in CLI output and UI toasts; decoder errors sometimes carry newlines.
        super().__init__(" ".join(str(message).split()))


def is_image_file(path: StrPath) -> bool:
    """Whether ``path`` has one of :data:`IMAGE_EXTENSIONS` (case-insensitive); the file is not opened.

    Args:
        path: File name or path.

    Returns:
        True for ``.jpg``, ``.JPEG``, ``.png``, ... names.

    Example:
        >>> is_image_file("holiday.JPG"), is_image_file("notes.txt")
        (True, False)
    """
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


# ---------------------------------------------------------------------------------------------------------
# Reading


def _read_error(path: StrPath, reason: str) -> ImageError:
    return ImageError(f"cannot read image '{path}': {reason}")


def _check_size(path: StrPath, width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise ImageError(
            f"image '{path}' is {width}x{height} px ({width * height:,} pixels), more than the limit of "
            f"{MAX_PIXELS:,}; downscale it before use"
        )
    if min(width, height) < MIN_SIDE:
        raise ImageError(f"image '{path}' is {width}x{height} px; images must be at least {MIN_SIDE} px on each side")


def _white_background(img: Image.Image) -> Image.Image:
    rgba = img.convert("RGBA")
    canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(canvas, rgba).convert("RGB")


def _high_bit_depth_to_rgb(img: Image.Image) -> Image.Image:
    # PIL's own convert("L") clips I;16 / I / F values at 255 instead of rescaling, turning a 16-bit
    # photo almost white, so rescale by hand.
    values = np.asarray(img).astype(np.float64)
    if img.mode.startswith("I;16"):
        full_scale = 65535.0
    else:
        # Modes I (int32) and F (float32) do not say their range; guess the smallest common one that fits.
        peak = float(values.max()) if values.size else 0.0
        full_scale = 1.0 if img.mode == "F" and peak <= 1.0 else 255.0 if peak <= 255.0 else 65535.0
    grey = np.clip(np.rint(values * (255.0 / full_scale)), 0, 255).astype(np.uint8)
    return Image.fromarray(grey, mode="L").convert("RGB")


def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode == "RGB":
        return img
    if mode.startswith("I") or mode == "F":
        return _high_bit_depth_to_rgb(img)
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info
    if has_alpha or (mode == "P" and img.palette is not None and img.palette.mode == "RGBA"):
        return _white_background(img)
    return img.convert("RGB")


def open_image(path: StrPath) -> Image.Image:
    """Open an image file as a fully decoded RGB PIL image, upright per its EXIF orientation.

    Greyscale (including 16-bit and float), palette, alpha (composited onto white) and CMYK files are
    converted to 8-bit RGB; 16-bit values are rescaled, not clipped.

    Args:
        path: Path to an image file.

    Returns:
        An RGB ``PIL.Image.Image`` not tied to the open file.

    Raises:
        ImageError: The file is missing, a directory, empty, not an image, truncated or corrupt, smaller than
            :data:`MIN_SIDE` on a side, or larger than :data:`MAX_PIXELS`.

    Example:
        >>> open_image("examples/photo_cat.jpg").mode  # doctest: +SKIP
        'RGB'
    """
    p = Path(path)
    if not p.exists():
        raise _read_error(path, "file does not exist; check the path")
    if p.is_dir():
        raise _read_error(path, "it is a directory; pass an image file")
    try:
        if p.stat().st_size == 0:
            raise _read_error(path, "file is empty")
        # PIL warns (and past 2x its limit, raises) about huge images from Image.open; MAX_PIXELS is our
        # limit and is checked from the header below, so PIL's warning is redundant here. Scoped so that no
        # process-wide PIL or warnings state changes.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            # PIL warns about damaged metadata it skips ("Corrupt EXIF data", odd palettes): the pixels either
            # decode (fine) or fail below with one message, so such a warning must not add lines of its own.
            warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
            with Image.open(p) as img:
                _check_size(path, *img.size)
                # Force a full decode now: a truncated JPEG otherwise fails later, far from the file name.
                img.load()
                try:
                    upright = ImageOps.exif_transpose(img)
                except (OSError, ValueError, KeyError, IndexError, TypeError, SyntaxError):
                    # A malformed EXIF block should not make an otherwise good photo unreadable.
                    upright = img.copy()
                assert upright is not None  # in_place=False always returns an image
                return _to_rgb(upright)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(f"image '{path}' is too large to decode safely ({e}); downscale it before use") from e
    except UnidentifiedImageError as e:
        raise _read_error(path, "not a recognised image file; use JPEG, PNG, BMP, WebP or TIFF") from e
    except PermissionError as e:
        raise _read_error(path, f"permission denied ({e.strerror}); check the file's permissions") from e
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        # PIL reports truncated and corrupt data as OSError ("image file is truncated ...") or
        # SyntaxError/ValueError from plugin parsers.
        raise _read_error(path, f"the file is corrupt or truncated ({e}); re-export or re-download it") from e


# ---------------------------------------------------------------------------------------------------------
# Tensor conversion


def _check_image_tensor(t: object) -> torch.Tensor:
    """Return ``t`` as (1, 3, H, W) or raise with what arrived."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"expected an image tensor, got {type(t).__name__}")
    x = t.unsqueeze(0) if t.ndim == 3 else t
    if x.ndim != 4 or x.shape[0] != 1 or x.shape[1] != 3:
        raise ValueError(f"expected an image tensor of shape (1, 3, H, W) or (3, H, W), got {tuple(t.shape)}")
    return x


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """Convert a PIL image to the package's image format.

    Args:
        img: A PIL image of any mode; non-RGB modes are converted as in :func:`open_image`.

    Returns:
        Float32 tensor of shape (1, 3, H, W) with values in [0, 1].

    Example:
        >>> pil_to_tensor(Image.new("RGB", (32, 16), (255, 0, 0)))[0, :, 0, 0].tolist()
        [1.0, 0.0, 0.0]
    """
    if not isinstance(img, Image.Image):
        raise TypeError(f"expected a PIL.Image.Image, got {type(img).__name__}")
    array = np.asarray(_to_rgb(img), dtype=np.uint8)  # (H, W, 3)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)


def tensor_to_pil(t: torch.Tensor) -> Image.Image:
    """Convert one image tensor to an 8-bit RGB PIL image (values clamped to [0, 1], then rounded).

    Args:
        t: Tensor of shape (1, 3, H, W) or (3, H, W), any device or float dtype; NaN becomes 0.

    Returns:
        An RGB ``PIL.Image.Image`` of size (W, H).

    Example:
        >>> tensor_to_pil(torch.full((3, 16, 32), 0.5)).getpixel((0, 0))
        (128, 128, 128)
    """
    t = _check_image_tensor(t)
    x = torch.nan_to_num(t[0].detach().to("cpu", torch.float32), nan=0.0).clamp(0.0, 1.0)
    array = x.mul(255.0).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()  # (H, W, 3)
    return Image.fromarray(array, mode="RGB")


# ---------------------------------------------------------------------------------------------------------
# Resizing


def _target_size(h: int, w: int, size: int | tuple[int, int] | None, max_size: int | None) -> tuple[int, int]:
    if size is not None:
        if isinstance(size, (tuple, list)):
            if len(size) != 2:
                raise InputError(f"size must be an int or a (height, width) pair of positive ints, got {size!r}")
            h, w = check_int("size height", size[0], low=1), check_int("size width", size[1], low=1)
        else:
            scale = check_int("size", size, low=1) / max(h, w)
            h, w = max(1, round(h * scale)), max(1, round(w * scale))
    if max_size is not None:
        check_int("max_size", max_size, low=1)
        if max(h, w) > max_size:
            scale = max_size / max(h, w)
            h, w = max(1, round(h * scale)), max(1, round(w * scale))
    return h, w


def target_size(
    img: torch.Tensor, size: int | tuple[int, int] | None = None, max_size: int | None = None
) -> tuple[int, int]:
    """(H, W) that :func:`resize` would give ``img`` (B, 3, H, W), without resizing: for checking before allocating.

    Example:
        >>> target_size(torch.rand(1, 3, 100, 50), 40)
        (40, 20)
    """
    return _target_size(int(img.shape[-2]), int(img.shape[-1]), size, max_size)


def resize(
    img: torch.Tensor,
    size: int | tuple[int, int] | None = None,
    max_size: int | None = None,
) -> torch.Tensor:
    """Resize images with antialiased bilinear interpolation.

    Args:
        img: Images of shape (B, 3, H, W) or (3, H, W) in [0, 1]; not modified.
        size: An int makes the longer side ``size`` (aspect ratio kept, sides rounded); a pair
            ``(height, width)`` is used exactly; None keeps the size.
        max_size: If the longer side (after ``size``) exceeds this, shrink to fit; never enlarges.

    Returns:
        Resized images, same rank, device and dtype, clamped to [0, 1]. When the size does not change,
        ``img`` itself is returned.

    Example:
        >>> x = torch.rand(1, 3, 100, 50)
        >>> resize(x, 40).shape, resize(x, (10, 20)).shape, resize(x, max_size=200).shape
        (torch.Size([1, 3, 40, 20]), torch.Size([1, 3, 10, 20]), torch.Size([1, 3, 100, 50]))
    """
    if not isinstance(img, torch.Tensor):
        raise TypeError(f"expected an image tensor, got {type(img).__name__}")
    if img.ndim not in (3, 4) or img.shape[-3] != 3:
        raise ValueError(f"expected an image tensor of shape (B, 3, H, W) or (3, H, W), got {tuple(img.shape)}")
    if not img.is_floating_point():
        raise ValueError(f"expected a floating-point image tensor in [0, 1], got dtype {img.dtype}")
    h, w = int(img.shape[-2]), int(img.shape[-1])
    new_h, new_w = _target_size(h, w, size, max_size)
    if (new_h, new_w) == (h, w):
        return img
    x = img if img.ndim == 4 else img.unsqueeze(0)
    # Antialiased kernels are float32/float64-only on some backends; the round trip costs nothing.
    out = F.interpolate(x.float(), size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)
    # Bilinear with antialias overshoots slightly at sharp edges.
    out = out.clamp(0.0, 1.0).to(img.dtype)
    return out if img.ndim == 4 else out[0]


def load_image(
    path: StrPath,
    size: int | tuple[int, int] | None = None,
    max_size: int | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Read an image file into the package's image format.

    Args:
        path: Path to an image file.
        size: As in :func:`resize`.
        max_size: As in :func:`resize`.
        device: Where to put the result; None keeps it on the CPU.

    Returns:
        Float32 tensor of shape (1, 3, H, W) in [0, 1].

    Raises:
        ImageError: As in :func:`open_image`.

    Example:
        >>> load_image("examples/photo_cat.jpg", size=256).shape  # doctest: +SKIP
        torch.Size([1, 3, 170, 256])
    """
    t = resize(pil_to_tensor(open_image(path)), size=size, max_size=max_size)
    return t.to(device) if device is not None else t


# ---------------------------------------------------------------------------------------------------------
# Writing


def _write_error(path: StrPath, reason: str) -> ImageError:
    return ImageError(f"cannot write '{path}': {reason}; choose a writable output path")


def writable_parent(path: StrPath) -> Path | None:
    """The nearest existing ancestor of ``path`` if it is a writable directory (``path`` can be created
    there, missing folders included), else ``None``. For checking an output path before any work."""
    parent = Path(path).parent
    while not parent.exists():
        parent = parent.parent
    return parent if parent.is_dir() and os.access(parent, os.W_OK) else None


def save_image(img: torch.Tensor, path: StrPath, quality: int = 95) -> Path:
    """Write one image to ``path`` atomically, in the format given by its extension.

    Written by :func:`adjustable_style.atomic.write_file`: a crash or error never leaves a half-written file
    and never damages an existing one. Missing parent folders are created; the file gets the usual
    permissions (0666 less the umask).

    Args:
        img: Tensor of shape (1, 3, H, W) or (3, H, W), values in [0, 1] (clamped, then rounded to 8 bits).
        path: Output path ending in .png, .jpg, .jpeg, .webp, .bmp, .tif or .tiff.
        quality: JPEG/WebP quality, 1-100; ignored by lossless formats.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        ImageError: Unsupported extension or unwritable location.
        ValueError: ``img`` is not a single image.

    Example:
        >>> save_image(torch.rand(1, 3, 32, 32), "out/result.png")  # doctest: +SKIP
        PosixPath('out/result.png')
    """
    if isinstance(img, torch.Tensor) and img.ndim == 4 and img.shape[0] > 1:
        raise ValueError(
            f"expected an image tensor of shape (1, 3, H, W) or (3, H, W), got {tuple(img.shape)}; "
            "save the images of a batch one at a time"
        )
    pil = tensor_to_pil(img)
    check_int("quality", quality, 1, 100)
    target = Path(path)
    ext = target.suffix.lower()
    fmt = _SAVE_FORMATS.get(ext)
    if fmt is None:
        raise ImageError(
            f"cannot write '{path}': unsupported extension '{target.suffix}'; "
            f"use one of {', '.join(sorted(_SAVE_FORMATS))}"
        )
    if target.is_dir():
        raise _write_error(path, "it is a directory")
    options: dict[str, object] = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            pil.save(f, format=fmt, **options)

    try:
        write_file(target, write)
    except (FileExistsError, NotADirectoryError) as e:
        raise _write_error(path, "part of its folder path is a file, not a folder") from e
    except OSError as e:
        raise _write_error(path, e.strerror or str(e)) from e
    return target
