"""What the web page does, as plain functions: check uploads, render previews and full-size results, variations.

Nothing here imports gradio: :mod:`adjustable_style.ui.app` only lays out widgets and wires their events to
a :class:`Studio`, so every behaviour of the page can be tested without a browser or a server. User mistakes
(no image yet, a file that is too big or not an image) come back as one-line messages, never as exceptions.

Example:
    >>> studio = Studio(Stylizer.load("models/quick"))  # doctest: +SKIP
    >>> image, message = studio.preview("examples/photo_cat.jpg", "examples/painting_monet_water_lilies.jpg",
    ...                                 1.0, False, 0.2, 1.0, 1.0)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import shutil
import tempfile
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from PIL import Image

from ..adapt import save_adapter
from ..checks import InputError, check_int, check_number
from ..image import (
    IMAGE_EXTENSIONS,
    ImageError,
    is_image_file,
    load_image,
    open_image,
    pil_to_tensor,
    resize,
    save_image,
    tensor_to_pil,
)
from ..prepare import DEFAULT_PRESET, preset
from ..sheet import format_weights
from ..stylizer import Stylizer

THUMBNAIL_SIZE = 384
"""Longer side of the upload previews shown on the page (px)."""

KEEP_DOWNLOADS = 64
"""How many rendered PNGs (offered for download) a :class:`Studio` keeps on disk."""

NEED_IMAGES = "Pick a content photo and a style image (upload one or click an example)."
NEED_STYLE = "Pick a style image first (upload one or click an example), then tune the sliders to it."

_REPO_EXAMPLES = Path(__file__).resolve().parents[3] / "examples"  # a source checkout: <repo>/examples
_PACKAGE_EXAMPLES = Path(__file__).resolve().parents[1] / "assets" / "examples"  # shipped in the wheel


OUT_PREFIX = "adjustable-style-ui-"
"""Temporary download folders are ``<tmp>/adjustable-style-ui-<pid>-<random>``: removed when their Studio goes
(or the process exits normally), and by the next Studio when the process that made them is gone (SIGKILL)."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive, and not ours to clean
        return True
    return True


def remove_stale_out_dirs(tmp: str | Path | None = None) -> list[Path]:
    """Delete download folders left by page servers that no longer run; returns what was removed."""
    removed = []
    for d in Path(tmp or tempfile.gettempdir()).glob(f"{OUT_PREFIX}*"):
        m = re.match(rf"^{re.escape(OUT_PREFIX)}(\d+)-", d.name)
        if (
            m
            and d.is_dir()
            and not d.is_symlink()
            and d.stat().st_uid == os.getuid()
            and not _pid_alive(int(m.group(1)))
        ):
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed


class UploadError(ImageError):
    """An upload the page refuses (too large, not an image); the message is one line for the user."""


def example_images(dirs: Sequence[Path] | None = None) -> tuple[list[Path], list[Path]]:
    """The bundled example photos (``photo_*``) and paintings (``painting_*``), deduplicated by file name.

    Args:
        dirs: folders to look in; default: ``examples/`` of a source checkout (if present), then the copies
            shipped inside the package.

    Returns:
        ``(photos, paintings)``, each sorted by name.

    Example:
        >>> photos, paintings = example_images()
        >>> all(p.name.startswith("photo_") for p in photos)
        True
    """
    found: dict[str, Path] = {}
    for d in dirs if dirs is not None else (_REPO_EXAMPLES, _PACKAGE_EXAMPLES):
        if d.is_dir():
            for p in sorted(d.iterdir()):
                if p.is_file() and is_image_file(p):
                    found.setdefault(p.name, p)
    names = sorted(found)
    return [found[n] for n in names if n.startswith("photo_")], [found[n] for n in names if n.startswith("painting_")]


def check_upload(path: str | Path | None, max_mb: float, what: str = "image") -> Path:
    """Refuse uploads that are missing, larger than ``max_mb`` megabytes, or not readable images.

    Args:
        path: the uploaded file on disk.
        max_mb: size limit in MiB.
        what: how to call the file in messages (``"content image"``).

    Returns:
        ``path`` as a :class:`~pathlib.Path`, once fully decoded without error.

    Raises:
        UploadError: one line naming the file (by its own name, not the server's temporary path) and the fix.
    """
    if path is None or str(path) == "":
        raise UploadError(f"no {what} arrived; upload a file again")
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError:
        raise UploadError(f"the {what} upload '{p.name}' is missing on the server; upload it again") from None
    if size > max_mb * 2**20:
        raise UploadError(
            f"the {what} '{p.name}' is {size / 2**20:.1f} MB, over the {max_mb:g} MB upload limit; downscale it first"
        )
    if not is_image_file(p):
        raise UploadError(
            f"the {what} '{p.name}' is not an image file; use one of {', '.join(sorted(IMAGE_EXTENSIONS))}"
        )
    try:
        open_image(p)  # full decode: corrupt, truncated and decompression-bomb files fail here, not mid-render
    except ImageError as e:
        raise UploadError(str(e).replace(str(path), p.name).replace(f"'{p}'", f"'{p.name}'")) from None
    return p


def thumbnail(path: str | Path, size: int = THUMBNAIL_SIZE) -> Image.Image:
    """A small RGB copy of an image file for display (longer side at most ``size``)."""
    img = open_image(path)
    img.thumbnail((size, size), Image.Resampling.LANCZOS)
    return img


class Studio:
    """The page's state-free logic over one shared :class:`~adjustable_style.stylizer.Stylizer`.

    Slider values arrive in ``stylizer.style_layers`` order. Content photos are decoded once and kept at
    ``full_size`` and ``preview_size`` (an LRU of a few images); style embeddings are cached by the Stylizer.
    So a slider move costs only Λ and T at preview size.

    Args:
        stylizer: the model.
        max_upload_mb: uploads larger than this are refused.
        preview_size: longer side of the live preview (and of variations), px.
        full_size: longer side of the render on slider release and of the download, px.
        n_variations: how many seeded variations the button draws.
        out_dir: where downloadable PNGs are written (default: a new temporary folder).
        adapter_dir: where :meth:`tune` saves the slider adapters it fits (None: the stylizer's adapter store when it
            uses one, else memory only).
        adapt_steps: optimisation steps of :meth:`tune` (``adjustable-style adapt --steps``).
        prepare_fit: the fit of :meth:`prepare`: ``"quick"``, ``"medium"``, ``"full"`` or a number of the full
            fit's steps (``adjustable-style stylize --prepare FIT``).
    """

    def __init__(
        self,
        stylizer: Stylizer,
        max_upload_mb: float = 20,
        preview_size: int = 256,
        full_size: int = 1024,
        n_variations: int = 6,
        out_dir: str | Path | None = None,
        adapter_dir: str | Path | None = None,
        adapt_steps: int = 60,
        prepare_fit: str | int = DEFAULT_PRESET,
    ) -> None:
        if not check_number("max_upload_mb", max_upload_mb, 0.0, math.inf) > 0:
            raise InputError(f"max_upload_mb must be positive, got {max_upload_mb!r}")
        for name, v in (
            ("preview_size", preview_size),
            ("full_size", full_size),
            ("n_variations", n_variations),
            ("adapt_steps", adapt_steps),
        ):
            check_int(name, v, low=1)
        self.stylizer = stylizer
        self.max_upload_mb = max_upload_mb
        self.preview_size = preview_size
        self.full_size = full_size
        self.n_variations = n_variations
        if out_dir is None:
            remove_stale_out_dirs()
            self.out_dir = Path(tempfile.mkdtemp(prefix=f"{OUT_PREFIX}{os.getpid()}-"))
            # Our own folder goes with the Studio, or at interpreter exit (the CLI turns SIGTERM into an exit).
            self._cleanup = weakref.finalize(self, shutil.rmtree, str(self.out_dir), True)
        else:
            self.out_dir = Path(out_dir)
        self.adapter_dir = Path(adapter_dir) if adapter_dir is not None else None
        self.adapt_steps = adapt_steps
        preset(prepare_fit)  # a wrong name fails here, not at the first click
        self.prepare_fit = prepare_fit
        self._tuning = threading.Lock()  # one fit at a time: it takes minutes of the CPU
        self.layers: tuple[str, ...] = stylizer.style_layers
        self._contents: OrderedDict[tuple, torch.Tensor] = OrderedDict()
        self._lock = threading.Lock()  # gradio runs callbacks in worker threads

    # ------------------------------------------------------------------------------------------ sliders
    def sliders(self) -> list[tuple[str, str, float]]:
        """``(layer, label, initial value)`` for each style slider, in the model's order."""
        labels, defaults = self.stylizer.labels(), self.stylizer.default_weights()
        return [(n, labels[n], defaults[n]) for n in self.layers]

    def weights(self, values: Sequence[float]) -> dict[str, float]:
        """Slider values (model order) → ``{layer: weight}``."""
        if len(values) != len(self.layers):
            raise ValueError(f"expected {len(self.layers)} slider values ({', '.join(self.layers)}), got {len(values)}")
        return {n: float(v) for n, v in zip(self.layers, values)}

    # ------------------------------------------------------------------------------------------ uploads
    def accept(self, path: str | Path | None, what: str) -> tuple[str | None, Image.Image | None, str]:
        """Check an upload: ``(path, thumbnail, "")`` when accepted, else ``(None, None, message)``."""
        try:
            p = check_upload(path, self.max_upload_mb, what)
            return str(p), thumbnail(p), ""
        except UploadError as e:
            return None, None, str(e)

    def _content(self, path: str | Path, size: int) -> torch.Tensor:
        p = Path(path)
        st = p.stat()
        key = (str(p.resolve()), st.st_mtime_ns, st.st_size, size)
        with self._lock:
            hit = self._contents.get(key)
            if hit is not None:
                self._contents.move_to_end(key)
                return hit
        if size == self.full_size:
            x = load_image(p, max_size=self.full_size)
        else:  # shrink from the cached full-size copy: one decode per photo
            x = resize(self._content(p, self.full_size), max_size=size)
        with self._lock:
            self._contents[key] = x
            while len(self._contents) > 8:
                self._contents.popitem(last=False)
        return x

    # ---------------------------------------------------------------------------------------- rendering
    def render(
        self,
        content: str | Path | None,
        style: str | Path | None,
        strength: float,
        preserve_color: bool,
        values: Sequence[float],
        size: int,
    ) -> tuple[Image.Image | None, str]:
        """Stylize at the given slider values: ``(image, status line)``, or ``(None, message)`` on a user error."""
        if not content or not style:
            return None, NEED_IMAGES
        try:
            weights = self.weights(values)
            t0 = time.perf_counter()
            photo = self._content(content, size)
            y = self.stylizer.stylize(
                photo,
                style,
                weights,
                strength=float(strength),
                preserve_color=bool(preserve_color),
                max_size=None,
            )
            dt = time.perf_counter() - t0
        except (ValueError, OSError) as e:  # ImageError is a ValueError; a vanished upload is an OSError
            return None, " ".join(str(e).split()) or type(e).__name__
        img = tensor_to_pil(y)
        return img, self._status(weights, strength, img, dt, self._tuned(style, photo if strength == 1 else None))

    def _tuned(self, style: str | Path, photo: torch.Tensor | None = None) -> str:
        """The status-line note for sliders prepared for this photo (at its size) and painting, or tuned to the
        painting (an adapter), else ""."""
        try:
            if photo is not None and self.stylizer.find_preparation(photo, style, None):
                return " · sliders prepared for this photo and painting"
            return " · sliders tuned to this painting" if self.stylizer.has_adapter(style) else ""
        except (ValueError, OSError):
            return ""

    def preview(
        self, content: str | None, style: str | None, strength: float, preserve_color: bool, *values: float
    ) -> tuple[Image.Image | None, str]:
        """The live preview while a slider moves (``preview_size``)."""
        return self.render(content, style, strength, preserve_color, values, self.preview_size)

    def preview_batch(
        self, contents: Sequence, styles: Sequence, strengths: Sequence, preserves: Sequence, *values: Sequence
    ) -> tuple[list[Image.Image | None], list[str]]:
        """Several previews at once, one per request (the page batches slider moves that arrive together).

        Requests that share content, style, strength and the colour option run as one batched forward pass
        (:meth:`Stylizer.stylize_alphas`: ~30% less compute per image on a CPU than one by one); any other
        request, or a group with a bad value, falls back to :meth:`preview` per request.

        Args:
            contents, styles, strengths, preserves: one entry per request.
            values: one sequence per style slider, one entry per request.

        Returns:
            ``(images, status lines)`` in request order (``None`` image where the request was refused).
        """
        n = len(contents)
        rows = [[float(v[k]) for v in values] for k in range(n)]
        images: list[Image.Image | None] = [None] * n
        messages = [""] * n
        groups: dict[tuple, list[int]] = {}
        for k in range(n):
            groups.setdefault((contents[k], styles[k], float(strengths[k]), bool(preserves[k])), []).append(k)
        for (content, style, strength, preserve), ks in groups.items():
            try:
                if len(ks) == 1 or not content or not style:
                    raise ValueError("one by one")
                alphas = torch.cat([self.stylizer.schema.to_tensor(self.weights(rows[k]), check=False) for k in ks])
                t0 = time.perf_counter()
                photo = self._content(content, self.preview_size)
                ys = self.stylizer.stylize_alphas(
                    photo,
                    style,
                    alphas,
                    strength=strength,
                    preserve_color=preserve,
                    max_size=None,
                    batch_size=len(ks),
                )
                dt = time.perf_counter() - t0
            except (ValueError, OSError):  # one by one: each request gets its own message
                for k in ks:
                    images[k], messages[k] = self.preview(content, style, strength, preserve, *rows[k])
                continue
            for k, y in zip(ks, ys):
                images[k] = tensor_to_pil(y[None])
                messages[k] = self._status(
                    self.weights(rows[k]),
                    strength,
                    images[k],
                    dt,
                    f" (batch of {len(ks)}){self._tuned(style, photo if strength == 1 else None)}",
                )
        return images, messages

    @staticmethod
    def _status(weights: dict[str, float], strength: float, img: Image.Image, seconds: float, note: str = "") -> str:
        size = f"{img.width}×{img.height} px"
        return f"{format_weights(weights)} · strength {float(strength):.2f} · {size} in {seconds:.2f} s{note}"

    def full(
        self, content: str | None, style: str | None, strength: float, preserve_color: bool, *values: float
    ) -> tuple[Image.Image | None, str | None, str]:
        """The full-size render when a slider is released: ``(image, PNG path for download, status)``."""
        img, message = self.render(content, style, strength, preserve_color, values, self.full_size)
        if img is None:
            return None, None, message
        return img, str(self._save(img, content, style, strength, preserve_color, values)), message

    def _save(self, img: Image.Image, *settings: object) -> Path:
        # Same settings → same file name; beyond KEEP_DOWNLOADS files the oldest go, so a server that runs
        # for weeks does not fill its disk (gradio keeps its own copy of what it already served).
        digest = hashlib.blake2b(repr(settings).encode(), digest_size=6).hexdigest()
        out = save_image(pil_to_tensor(img), self.out_dir / f"stylized-{Path(str(settings[0])).stem[:40]}-{digest}.png")
        with self._lock:
            old = sorted(self.out_dir.glob("stylized-*.png"), key=lambda p: p.stat().st_mtime_ns)[:-KEEP_DOWNLOADS]
            for p in old:
                p.unlink(missing_ok=True)
        return out

    # --------------------------------------------------------------------------------------- variations
    def variations(
        self, content: str | None, style: str | None, strength: float, preserve_color: bool, seed: float | None = 0
    ) -> tuple[list[tuple[Image.Image, str]], list[list[float]], str]:
        """``n_variations`` stylizations at seeded random weights (preview size).

        Returns:
            ``(gallery items (image, caption), slider values of each item, status)``; on a user error the
            lists are empty and the status says why.
        """
        if not content or not style:
            return [], [], NEED_IMAGES
        try:
            seed_int = int(seed or 0)
            t0 = time.perf_counter()
            images, alphas = self.stylizer.variations(
                self._content(content, self.preview_size),
                style,
                n=self.n_variations,
                seed=seed_int,
                strength=float(strength),
                preserve_color=bool(preserve_color),
                max_size=None,
            )
            dt = time.perf_counter() - t0
        except (ValueError, OSError, OverflowError) as e:
            return [], [], " ".join(str(e).split()) or type(e).__name__
        values = [[float(v) for v in row[self.stylizer.schema.style_slice].tolist()] for row in alphas]
        items = [(tensor_to_pil(img), format_weights(self.weights(v))) for img, v in zip(images, values)]
        return items, values, f"{len(items)} variations (seed {seed_int}) in {dt:.2f} s; click one to load its weights"

    def variation_values(self, table: Sequence[Sequence[float]] | None, index: int | None) -> list[float] | None:
        """The slider values of the clicked variation, or None if the index is not in the table."""
        if not table or index is None or not 0 <= int(index) < len(table):
            return None
        row = [float(v) for v in table[int(index)]]
        return row if len(row) == len(self.layers) else None

    # ------------------------------------------------------------------------------------------- tuning
    @property
    def prepare_sizes(self) -> list[int]:
        """The sizes :meth:`prepare` fits at: the preview's and the full render's (once when they are equal)."""
        return list(dict.fromkeys((self.preview_size, self.full_size)))

    def prepared(self, content: str | None, style: str | None) -> bool:
        """Whether this photo and painting are prepared at every size :meth:`prepare` fits at (in memory or in the
        stylizer's preparation store); False for a missing or unreadable image."""
        if not content or not style or not self.stylizer.has_base:
            return False
        try:
            return all(
                self.stylizer.find_preparation(self._content(content, n), style, None, preset=self.prepare_fit)
                for n in self.prepare_sizes
            )
        except (ValueError, OSError):
            return False

    def prepare(
        self, content: str | None, style: str | None, progress: Callable[[int, int, float], None] | None = None
    ) -> str:
        """Fit the sliders to this photo and painting (:meth:`Stylizer.prepare`) at the preview's and the full
        render's size, and use the fits from now on; kept in the stylizer's preparation store when it has one.
        Returns the status line (a user mistake or a busy server is a message, not an exception)."""
        if not content or not style:
            return NEED_IMAGES
        st = self.stylizer
        if not st.has_base:
            return (
                "preparing the sliders needs a model built on a base network (the bundled 'default'); this one "
                "was trained from scratch"
            )
        if not self._tuning.acquire(blocking=False):
            return "the sliders are being fitted for another image on this server; try again when it is done"
        try:
            t0 = time.perf_counter()
            sizes = self.prepare_sizes
            n = len(sizes)
            for k, size in enumerate(sizes):
                st.prepare(
                    self._content(content, size),
                    style,
                    max_size=None,
                    preset=self.prepare_fit,
                    progress=None if progress is None else lambda i, m, obj, k=k: progress(k * m + i, n * m, obj),
                )
        except (ValueError, OSError) as e:
            return " ".join(str(e).split()) or type(e).__name__
        finally:
            self._tuning.release()
        kept = ", kept for next time" if st.preparation_store is not None else ""
        return f"sliders prepared for this photo and painting in {time.perf_counter() - t0:.0f} s{kept}"

    def tune(self, style: str | None, progress: Callable[[int, int, float], None] | None = None) -> str:
        """Fit a slider adapter for this painting (:meth:`Stylizer.fit_adapter`, minutes on a CPU)
        and use it from now on for every photo; saved into ``adapter_dir`` when one is set. Returns the status
        line (a user mistake or a busy tuner is a message, not an exception)."""
        if not style:
            return NEED_STYLE
        st = self.stylizer
        if not st.has_base:
            return (
                "tuning the sliders needs a model built on a base network (the bundled 'default'); this one "
                "was trained from scratch"
            )
        if not self._tuning.acquire(blocking=False):
            return "another painting is being tuned on this server; try again when it is done"
        try:
            name = Path(style).name
            if st.has_adapter(style):
                return f"the sliders are already tuned to '{name}'"
            t0 = time.perf_counter()
            adapter = st.fit_adapter(style, progress=progress, steps=self.adapt_steps)
            saved = ""
            if self.adapter_dir is not None:
                self.adapter_dir.mkdir(parents=True, exist_ok=True)
                path = save_adapter(
                    adapter, self.adapter_dir / f"{Path(style).stem[:40]}-{adapter.style_digest[:8]}.safetensors"
                )
                saved = f", saved as {path.name}"
                st.add_adapter(adapter)
            elif st.adapter_store is not None:
                st.store_adapter(adapter)
                saved = ", kept in the adapter store for next time"
            else:
                st.add_adapter(adapter)
        except (ValueError, OSError) as e:
            return " ".join(str(e).split()) or type(e).__name__
        finally:
            self._tuning.release()
        return (
            f"sliders tuned to '{name}' in {time.perf_counter() - t0:.0f} s{saved}; each now moves its own layer more"
        )
