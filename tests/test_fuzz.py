"""Fuzzing the image reader and the command line's error path with generated files (hypothesis).

Inputs: real-looking images in every format and odd mode PIL writes (1, L, LA, P, I, I;16, F, CMYK, RGBA, tiny and
EXIF-rotated ones), then truncated, bit-flipped, given a header that claims a huge size, or replaced by random
bytes. ``load_image`` must return a (1, 3, H, W) float image in [0, 1] or raise :class:`ImageError`, nothing
else; ``adjustable-style optimize`` must answer every file with exit code 1 and one line (valid files are
stopped by a zero memory limit after they were decoded), write nothing, and never print a traceback. Memory is
bounded: the peak RSS of the process may not grow by more than 1.5 GB over all the examples (a file that
claims 100000² pixels must be refused from its header, never allocated).
"""

from __future__ import annotations

import io
import resource
import struct
import zlib
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from adjustable_style.cli import main
from adjustable_style.image import ImageError, load_image

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
N_EXAMPLES = 500  # per test: 1000 generated files in all
FUZZ = settings(
    max_examples=N_EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FORMATS = {  # format → modes PIL can write in it
    "PNG": ("1", "L", "LA", "P", "RGB", "RGBA", "I;16"),  # 32-bit "I" PNGs are deprecated in Pillow
    "JPEG": ("L", "RGB", "CMYK"),
    "BMP": ("1", "L", "P", "RGB"),
    "GIF": ("L", "P"),
    "TIFF": ("1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I", "I;16", "F"),
    "WEBP": ("RGB", "RGBA"),
}
SUFFIX = {"PNG": ".png", "JPEG": ".jpg", "BMP": ".bmp", "GIF": ".gif", "TIFF": ".tif", "WEBP": ".webp"}


def _png_with_size(data: bytes, w: int, h: int) -> bytes:
    """A PNG whose IHDR claims w×h (with a valid CRC, so only the size is wrong)."""
    ihdr = data[12:29]  # b"IHDR" + 13 bytes
    body = b"IHDR" + struct.pack(">II", w, h) + ihdr[12:17]
    return data[:8] + struct.pack(">I", 13) + body + struct.pack(">I", zlib.crc32(body)) + data[33:]


@st.composite
def image_files(draw: st.DrawFn) -> tuple[bytes, str]:
    fmt = draw(st.sampled_from(sorted(FORMATS)))
    mode = draw(st.sampled_from(FORMATS[fmt]))
    w, h = draw(st.integers(1, 48)), draw(st.integers(1, 48))
    seed = draw(st.integers(0, 2**16))
    g = torch.Generator().manual_seed(seed)
    rgb = Image.fromarray((torch.rand(h, w, 3, generator=g) * 255).to(torch.uint8).numpy(), "RGB")
    img = rgb.convert("RGBA").convert(mode) if mode in ("LA",) else rgb.convert(mode if mode != "I;16" else "I")
    if mode == "I;16":
        img = img.convert("I;16")
    buf = io.BytesIO()
    kwargs = {}
    if fmt == "JPEG" and draw(st.booleans()):
        exif = Image.Exif()
        exif[0x0112] = draw(st.integers(0, 9))  # orientation, including invalid values
        kwargs["exif"] = exif.tobytes()
    img.save(buf, fmt, **kwargs)
    data = buf.getvalue()

    damage = draw(st.sampled_from(["none", "truncate", "flip", "huge_header", "random", "prefix_only"]))
    if damage == "truncate":
        data = data[: draw(st.integers(0, max(0, len(data) - 1)))]
    elif damage == "flip":
        flipped = bytearray(data)
        for pos in draw(st.lists(st.integers(0, len(data) - 1), min_size=1, max_size=16)):
            flipped[pos] ^= 1 << draw(st.integers(0, 7))
        data = bytes(flipped)
    elif damage == "huge_header":
        side = draw(st.sampled_from([70_000, 100_000, 2**31 - 1]))
        if fmt == "PNG":
            data = _png_with_size(data, side, side)
        elif fmt == "BMP":
            data = data[:18] + struct.pack("<ii", min(side, 2**31 - 1), min(side, 2**31 - 1)) + data[26:]
        elif fmt == "GIF":
            s16 = min(side, 65535)
            data = data[:6] + struct.pack("<HH", s16, s16) + data[10:]
        else:  # no easy size field: a PNG that claims the size instead
            png = io.BytesIO()
            rgb.save(png, "PNG")
            data, fmt = _png_with_size(png.getvalue(), side, side), "PNG"
    elif damage == "random":
        data = draw(st.binary(min_size=0, max_size=2048))
    elif damage == "prefix_only":  # the right magic bytes, then garbage
        data = data[:16] + draw(st.binary(min_size=0, max_size=512))
    suffix = draw(st.sampled_from([SUFFIX[fmt], SUFFIX[fmt], ".png", ".jpg"]))  # sometimes the wrong extension
    return data, suffix


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def test_load_image_returns_an_image_or_raises_image_error(fuzz_dir: Path) -> None:
    seen = {"ok": 0, "refused": 0}
    before = _peak_rss_bytes()

    @FUZZ
    @given(image_files())
    def check(file: tuple[bytes, str]) -> None:
        data, suffix = file
        path = fuzz_dir / f"in{suffix}"
        path.write_bytes(data)
        try:
            x = load_image(path)
        except ImageError as e:
            assert "\n" not in str(e).strip()
            seen["refused"] += 1
            return
        assert x.dtype == torch.float32 and x.ndim == 4 and x.shape[:2] == (1, 3)
        assert bool(torch.isfinite(x).all()) and float(x.min()) >= 0 and float(x.max()) <= 1
        seen["ok"] += 1

    check()
    assert seen["ok"] + seen["refused"] >= N_EXAMPLES
    assert seen["ok"] >= 50 and seen["refused"] >= 50, seen  # both outcomes were exercised
    assert _peak_rss_bytes() - before < 1.5e9


def test_cli_error_path_is_one_line_for_any_file(fuzz_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = fuzz_dir / "out.png"
    painting = EXAMPLES / "painting_hokusai_great_wave.jpg"
    count = [0]
    before = _peak_rss_bytes()

    @FUZZ
    @given(image_files(), st.booleans())
    def check(file: tuple[bytes, str], as_style: bool) -> None:
        data, suffix = file
        path = fuzz_dir / f"cli{suffix}"
        path.write_bytes(data)
        images = [str(painting), str(path)] if as_style else [str(path), str(painting)]
        # A zero memory limit stops valid images right after both were decoded: only the error path runs.
        code = main(
            ["optimize", *images, "-o", str(out), "--memory-limit", "1e-12", "--steps", "1", "-q", "--device", "cpu"]
        )
        err = capsys.readouterr().err
        assert code == 1, err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("adjustable-style optimize: error: "), err
        assert "Traceback" not in err
        assert not out.exists()
        count[0] += 1

    check()
    assert count[0] >= N_EXAMPLES
    assert _peak_rss_bytes() - before < 1.5e9
