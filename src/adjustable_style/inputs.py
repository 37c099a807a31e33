"""What front ends pass in, turned into what the model takes: images (:data:`ImageLike` → the package's tensor
format), caches keyed by an image's identity (a file's path, mtime and size; a hash of pixels otherwise), and
device names.

Example:
    >>> x = as_tensor(torch.rand(3, 32, 48), "content")
    >>> tuple(x.shape), image_key(x)[0]
    ((1, 3, 32, 48), 'tensor')
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, Union

import torch
from PIL import Image

from .checks import InputError
from .image import MIN_SIDE, load_image, pil_to_tensor, resize

ImageLike = Union[str, "os.PathLike[str]", Image.Image, torch.Tensor]
"""A path to an image file, a PIL image, or a (1, 3, H, W) / (3, H, W) tensor in [0, 1]."""


def as_tensor(image: ImageLike, what: str = "content") -> torch.Tensor:
    """Any accepted image (path, PIL image, tensor) → (1, 3, H, W) float32 on the CPU; ``what`` names it in errors.

    Raises:
        InputError: a tensor of the wrong shape or type, or too small; an unreadable file.
        TypeError: something that is not an image at all.
    """
    if isinstance(image, torch.Tensor):
        x = image.unsqueeze(0) if image.ndim == 3 else image
        if x.ndim != 4 or x.shape[0] != 1 or x.shape[1] != 3 or not x.is_floating_point():
            raise InputError(
                f"{what} image must be a float tensor of shape (1, 3, H, W) in [0, 1], "
                f"got {tuple(image.shape)} {image.dtype}"
            )
        if min(x.shape[-2:]) < MIN_SIDE:
            raise InputError(
                f"{what} image is {x.shape[-1]}x{x.shape[-2]} px; images must be at least {MIN_SIDE} px on each side"
            )
        return x.detach().to("cpu", torch.float32)
    if isinstance(image, Image.Image):
        return pil_to_tensor(image)
    if isinstance(image, (str, os.PathLike)):
        return load_image(image)
    raise TypeError(f"{what} must be a path, a PIL image or an image tensor, got {type(image).__name__}")


def style_view(x: torch.Tensor, style_size: int) -> torch.Tensor:
    """A style image (1, 3, H, W) as the style predictor sees it: shorter side = ``style_size`` (the training
    style size, so P sees textures at the scale it learned them); extreme panoramas are capped at 4 × that on the
    longer side to bound memory."""
    h, w = x.shape[-2:]
    scale = min(style_size / min(h, w), 4 * style_size / max(h, w))
    return resize(x, (max(1, round(h * scale)), max(1, round(w * scale))))


def image_key(image: ImageLike) -> tuple:
    """A cache key for ``image``: path + mtime + size for files (an edited file gets a new key), a pixel hash
    otherwise."""
    if isinstance(image, (str, os.PathLike)):
        p = Path(image).resolve()
        try:
            st = p.stat()
        except OSError:
            return ("path", str(p), None, None)  # load_image raises the one-line error
        return ("path", str(p), st.st_mtime_ns, st.st_size)
    if isinstance(image, Image.Image):
        h = hashlib.blake2b(image.tobytes(), digest_size=16)
        return ("pil", image.mode, image.size, h.hexdigest())
    if isinstance(image, torch.Tensor):
        t = image.detach().to("cpu").contiguous()
        h = hashlib.blake2b(
            t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes(), digest_size=16
        )
        return ("tensor", tuple(t.shape), str(t.dtype), h.hexdigest())
    raise TypeError(f"expected a path, a PIL image or an image tensor, got {type(image).__name__}")


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``"auto"`` → ``cuda`` when available, else ``cpu``; other names are checked and returned.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {name!r} asked for, but no CUDA device is available; use cpu")
    return device


class ImageCache:
    """Values computed from images (style embeddings, digests), keyed by :func:`image_key`; least recently used
    first out beyond ``size``; safe to share between threads (web front ends call from several).

    Example:
        >>> cache = ImageCache(2)
        >>> cache.get_or_compute("a.jpg", lambda: 1), cache.get_or_compute("a.jpg", lambda: 2)
        (1, 1)
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[tuple, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_compute(self, image: ImageLike, compute: Callable[[], Any]) -> Any:
        """The value for ``image``, computed by ``compute()`` (outside the lock) when it is not cached."""
        key = image_key(image)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = compute()
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
