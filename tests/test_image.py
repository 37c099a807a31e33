from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import adjustable_style.image as image_mod
from adjustable_style.image import (
    IMAGE_EXTENSIONS,
    MIN_SIDE,
    ImageError,
    is_image_file,
    load_image,
    open_image,
    pil_to_tensor,
    resize,
    save_image,
    tensor_to_pil,
)

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def _assert_one_line_naming(err: pytest.ExceptionInfo[ImageError], path: Path) -> None:
    message = str(err.value)
    assert f"'{path}'" in message
    assert "\n" not in message


def _asymmetric_rgb(width: int = 48, height: int = 32) -> Image.Image:
    """Left half red, right half blue, a green square in the top-left corner: every rotation looks different."""
    img = Image.new("RGB", (width, height), RED)
    img.paste(BLUE, (width // 2, 0, width, height))
    img.paste(GREEN, (0, 0, 8, 8))
    return img


# ---------------------------------------------------------------------------------------------------------
# File names


def test_is_image_file() -> None:
    assert is_image_file("a/b/photo.JPG")
    assert is_image_file(Path("scan.tiff"))
    assert not is_image_file("notes.txt")
    assert not is_image_file("jpg")  # no suffix
    assert {".jpg", ".png", ".webp"} <= IMAGE_EXTENSIONS


# ---------------------------------------------------------------------------------------------------------
# Real photos


def test_load_real_photos(content_images: list[Path]) -> None:
    for path in content_images[:3]:
        with Image.open(path) as raw:
            width, height = raw.size
        t = load_image(path)
        assert t.shape == (1, 3, height, width)
        assert t.dtype == torch.float32
        assert 0.0 <= t.min() and t.max() <= 1.0
        assert t.std() > 0.05  # a real photo, not a blank decode


def test_real_photo_round_trip_png_and_jpg(content_images: list[Path], tmp_path: Path) -> None:
    t = load_image(content_images[0], size=128)
    png = load_image(save_image(t, tmp_path / "out.png"))
    # Quantising to 8 bits is the only loss, and load_image output is already 8-bit exact.
    assert torch.equal(png, pil_to_tensor(tensor_to_pil(t)))
    assert (png - t).abs().max() <= 0.5 / 255 + 1e-6
    jpg = load_image(save_image(t, tmp_path / "out.jpg", quality=95))
    assert jpg.shape == t.shape
    assert (jpg - t).abs().mean() < 0.02


def test_load_image_size_and_device(content_images: list[Path]) -> None:
    t = load_image(content_images[0], size=64, device="cpu")
    assert max(t.shape[-2:]) == 64
    t = load_image(content_images[0], max_size=50)
    assert max(t.shape[-2:]) == 50


# ---------------------------------------------------------------------------------------------------------
# Odd formats


def test_exif_orientation_6_rotates_clockwise(tmp_path: Path) -> None:
    img = _asymmetric_rgb(48, 32)
    plain, rotated = tmp_path / "plain.jpg", tmp_path / "rotated.jpg"
    img.save(plain, quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: the viewer must rotate 90° clockwise
    img.save(rotated, quality=95, exif=exif)

    t = load_image(rotated)
    assert t.shape == (1, 3, 48, 32)  # H and W swapped
    # Rotating clockwise puts the left (red) half on top and the green corner at the top right.
    assert torch.allclose(t, torch.rot90(load_image(plain), k=-1, dims=(-2, -1)), atol=2 / 255)
    top, bottom = t[0, :, 10, 10], t[0, :, 40, 16]
    assert top[0] > 0.9 and top[2] < 0.1
    assert bottom[2] > 0.9 and bottom[0] < 0.1
    assert t[0, 1, 2, 29] > 0.9 and t[0, 0, 2, 29] < 0.1


def test_greyscale(tmp_path: Path) -> None:
    path = tmp_path / "grey.png"
    Image.new("L", (20, 24), 100).save(path)
    img = open_image(path)
    assert img.mode == "RGB" and img.size == (20, 24)
    assert torch.allclose(pil_to_tensor(img), torch.full((1, 3, 24, 20), 100 / 255))


def test_palette_with_transparency_goes_on_white(tmp_path: Path) -> None:
    img = Image.new("P", (20, 20), 0)
    img.putpalette([*RED, *GREEN] + [0] * (256 * 3 - 6))
    img.paste(1, (0, 0, 10, 20))  # left half: palette index 1, declared transparent below
    path = tmp_path / "palette.png"
    img.save(path, transparency=1)
    t = load_image(path)
    assert torch.equal(t[0, :, 5, 5], torch.ones(3))  # transparent → white, not green
    assert torch.equal(t[0, :, 5, 15], torch.tensor([1.0, 0.0, 0.0]))


def test_rgba_and_la_composite_over_white(tmp_path: Path) -> None:
    rgba = Image.new("RGBA", (20, 20), (0, 0, 0, 0))
    rgba.paste((255, 0, 0, 255), (10, 0, 20, 10))
    rgba.paste((0, 0, 0, 128), (10, 10, 20, 20))
    rgba.save(tmp_path / "rgba.png")
    t = load_image(tmp_path / "rgba.png")
    assert torch.equal(t[0, :, 2, 2], torch.ones(3))
    assert torch.equal(t[0, :, 2, 15], torch.tensor([1.0, 0.0, 0.0]))
    assert torch.allclose(t[0, :, 15, 15], torch.full((3,), 127 / 255), atol=1.5 / 255)

    la = Image.new("LA", (20, 20), (0, 0))
    la.save(tmp_path / "la.png")
    assert torch.equal(load_image(tmp_path / "la.png"), torch.ones(1, 3, 20, 20))


def test_cmyk(tmp_path: Path) -> None:
    img = Image.new("CMYK", (20, 20), (0, 0, 0, 0))  # no ink: white
    img.paste((0, 255, 255, 0), (10, 0, 20, 20))  # magenta + yellow: red
    img.save(tmp_path / "cmyk.tif")
    t = load_image(tmp_path / "cmyk.tif")
    assert torch.equal(t[0, :, 5, 5], torch.ones(3))
    assert torch.equal(t[0, :, 5, 15], torch.tensor([1.0, 0.0, 0.0]))


def test_16_bit_png_is_rescaled_not_clipped(tmp_path: Path) -> None:
    values = np.zeros((20, 30), dtype=np.uint16)
    values[:, 10:20] = 32768
    values[:, 20:] = 65535
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    with Image.open(path) as raw:
        assert raw.mode.startswith("I")  # really decoded as a 16-bit image
    t = load_image(path)
    assert t[0, :, 5, 5].tolist() == [0.0, 0.0, 0.0]
    assert torch.allclose(t[0, :, 5, 15], torch.full((3,), 0.5), atol=1 / 255)
    assert torch.equal(t[0, :, 5, 25], torch.ones(3))


def test_float_image_in_unit_range() -> None:
    img = Image.fromarray(np.full((16, 16), 0.25, dtype=np.float32))
    assert img.mode == "F"
    assert torch.allclose(pil_to_tensor(img), torch.full((1, 3, 16, 16), 64 / 255))


def test_too_many_pixels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "big.png"
    Image.new("RGB", (64, 64)).save(path)
    monkeypatch.setattr(image_mod, "MAX_PIXELS", 1000)
    with pytest.raises(ImageError, match="4,096 pixels") as err:
        open_image(path)
    _assert_one_line_naming(err, path)


def test_pil_decompression_bomb_error_becomes_image_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "bomb.png"
    Image.new("RGB", (64, 64)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 4096 px > 2x limit: PIL raises
    with pytest.raises(ImageError, match="too large") as err:
        open_image(path)
    _assert_one_line_naming(err, path)


def test_pil_decompression_bomb_warning_does_not_escape(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # pytest turns warnings into errors here, so this fails if PIL's warning leaks out of open_image.
    path = tmp_path / "biggish.png"
    Image.new("RGB", (64, 64)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 3000)  # 4096 px: between 1x and 2x, PIL only warns
    assert open_image(path).size == (64, 64)


# ---------------------------------------------------------------------------------------------------------
# Bad input files


def _missing(tmp: Path) -> Path:
    return tmp / "nope.jpg"


def _directory(tmp: Path) -> Path:
    (tmp / "folder.jpg").mkdir()
    return tmp / "folder.jpg"


def _empty(tmp: Path) -> Path:
    (tmp / "empty.jpg").touch()
    return tmp / "empty.jpg"


def _text(tmp: Path) -> Path:
    (tmp / "notes.jpg").write_text("not an image at all\n" * 20)
    return tmp / "notes.jpg"


def _tiny(tmp: Path) -> Path:
    Image.new("RGB", (10, 10)).save(tmp / "tiny.png")
    return tmp / "tiny.png"


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (_missing, "does not exist"),
        (_directory, "directory"),
        (_empty, "empty"),
        (_text, "not a recognised image"),
        (_tiny, f"10x10 px; images must be at least {MIN_SIDE} px"),
    ],
    ids=["missing", "directory", "empty", "text", "tiny"],
)
def test_bad_files(tmp_path: Path, make: Callable[[Path], Path], expected: str) -> None:
    path = make(tmp_path)
    with pytest.raises(ImageError, match=expected) as err:
        load_image(path)
    _assert_one_line_naming(err, path)


def test_thin_image_rejected(tmp_path: Path) -> None:
    path = tmp_path / "strip.png"
    Image.new("RGB", (200, 8)).save(path)
    with pytest.raises(ImageError, match="200x8 px"):
        open_image(path)


def test_truncated_jpeg(content_images: list[Path], tmp_path: Path) -> None:
    data = next(p for p in content_images if p.suffix.lower() in (".jpg", ".jpeg")).read_bytes()
    path = tmp_path / "half.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="truncated") as err:
        open_image(path)
    _assert_one_line_naming(err, path)


# ---------------------------------------------------------------------------------------------------------
# Tensor conversion


def test_pil_tensor_round_trip_is_exact() -> None:
    array = np.random.default_rng(0).integers(0, 256, size=(17, 23, 3), dtype=np.uint8)
    t = pil_to_tensor(Image.fromarray(array))
    assert t.shape == (1, 3, 17, 23) and t.dtype == torch.float32
    assert np.array_equal(np.asarray(tensor_to_pil(t)), array)
    assert np.array_equal(np.asarray(tensor_to_pil(t[0])), array)  # (3, H, W) accepted


def test_tensor_to_pil_rounds_and_clamps() -> None:
    t = torch.tensor([100.6 / 255, -0.5, 2.0, float("nan")]).view(1, 1, 1, 4).expand(1, 3, 1, 4)
    assert np.asarray(tensor_to_pil(t))[0, :, 0].tolist() == [101, 0, 255, 0]


@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (1, 1, 8, 8), (8, 8), (4, 8, 8)])
def test_tensor_to_pil_bad_shape(shape: tuple[int, ...]) -> None:
    expected = f"expected an image tensor of shape (1, 3, H, W) or (3, H, W), got {shape}"
    with pytest.raises(ValueError, match=re.escape(expected)):
        tensor_to_pil(torch.zeros(shape))


# ---------------------------------------------------------------------------------------------------------
# Resize


def test_resize_longer_side() -> None:
    assert resize(torch.rand(1, 3, 100, 50), 40).shape == (1, 3, 40, 20)
    assert resize(torch.rand(1, 3, 30, 90), 45).shape == (1, 3, 15, 45)
    assert resize(torch.rand(2, 3, 31, 17), 62).shape == (2, 3, 62, 34)  # enlarges too
    assert resize(torch.rand(3, 100, 3), 10).shape == (3, 10, 1)  # rank kept, sides at least 1


def test_resize_exact_and_max_size() -> None:
    x = torch.rand(1, 3, 100, 50)
    assert resize(x, (10, 70)).shape == (1, 3, 10, 70)
    assert resize(x, max_size=60).shape == (1, 3, 60, 30)
    assert resize(x, max_size=500) is x  # never enlarges
    assert resize(x) is x
    assert resize(x, 400, max_size=200).shape == (1, 3, 200, 100)


def test_resize_does_not_mutate_and_keeps_range() -> None:
    x = torch.rand(1, 3, 64, 64)
    before = x.clone()
    y = resize(x, 17)
    assert torch.equal(x, before)
    assert 0.0 <= y.min() and y.max() <= 1.0
    assert resize(x.double(), 16).dtype == torch.float64


def test_resize_antialiases() -> None:
    noise = (torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    small = resize(noise, 16)
    # Averaging ~16x16 pixels leaves little variance; plain bilinear (2x2 taps) would leave std ≈ 0.25.
    assert small.std() < 0.06
    assert abs(small.mean().item() - 0.5) < 0.02


@pytest.mark.parametrize("kwargs", [{"size": 0}, {"size": (10,)}, {"size": 2.5}, {"max_size": -1}, {"size": True}])
def test_resize_bad_arguments(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        resize(torch.rand(1, 3, 8, 8), **kwargs)  # type: ignore[arg-type]


def test_resize_bad_shape() -> None:
    with pytest.raises(ValueError, match=r"got \(1, 1, 8, 8\)"):
        resize(torch.rand(1, 1, 8, 8), 4)


# ---------------------------------------------------------------------------------------------------------
# Saving


def test_save_formats_round_trip(tmp_path: Path) -> None:
    t = pil_to_tensor(_asymmetric_rgb(40, 24))
    for ext in (".png", ".bmp", ".tif", ".webp", ".JPG"):
        out = save_image(t, tmp_path / f"img{ext}")
        assert out == tmp_path / f"img{ext}"
        back = load_image(out)
        if ext in (".png", ".bmp", ".tif"):
            assert torch.equal(back, t), ext
        else:
            assert (back - t).abs().mean() < 0.03, ext


def test_save_creates_parents_and_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "out.png"
    save_image(torch.zeros(3, 16, 16), path)
    save_image(torch.ones(1, 3, 16, 16), path)
    assert torch.equal(load_image(path), torch.ones(1, 3, 16, 16))
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.png"]


def test_saved_file_has_normal_permissions(tmp_path: Path) -> None:
    # A temp file made by mkstemp is 0600; the output must get the same mode as any newly created file.
    reference = tmp_path / "reference.txt"
    reference.write_text("x")
    out = save_image(torch.zeros(3, 16, 16), tmp_path / "out.png")
    assert stat.S_IMODE(out.stat().st_mode) == stat.S_IMODE(reference.stat().st_mode)


def test_save_unknown_extension(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"'\.gif'.*\.png") as err:
        save_image(torch.zeros(3, 16, 16), tmp_path / "out.gif")
    _assert_one_line_naming(err, tmp_path / "out.gif")
    with pytest.raises(ImageError, match="unsupported extension"):
        save_image(torch.zeros(3, 16, 16), tmp_path / "out")


def test_save_rejects_batches_and_bad_quality(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"got \(2, 3, 16, 16\)"):
        save_image(torch.zeros(2, 3, 16, 16), tmp_path / "out.png")
    with pytest.raises(ValueError, match="quality"):
        save_image(torch.zeros(3, 16, 16), tmp_path / "out.jpg", quality=0)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), RuntimeError("encoder bug")])
def test_save_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
    target = tmp_path / "result.png"
    save_image(torch.full((3, 16, 16), 0.25), target)
    before = target.read_bytes()

    def failing_save(self: Image.Image, fp: object, *args: object, **kwargs: object) -> None:
        fp.write(b"\x89PNG half-written")  # type: ignore[attr-defined]
        raise error

    monkeypatch.setattr(Image.Image, "save", failing_save)
    expected = (ImageError, "No space left") if isinstance(error, OSError) else (RuntimeError, "encoder bug")
    with pytest.raises(expected[0], match=expected[1]):
        save_image(torch.ones(3, 16, 16), target)
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["result.png"]  # no temp file left behind


def test_save_unwritable_location(tmp_path: Path) -> None:
    (tmp_path / "file.txt").write_text("I am a file, not a folder")
    path = tmp_path / "file.txt" / "out.png"
    with pytest.raises(ImageError, match="choose a writable output path") as err:
        save_image(torch.zeros(3, 16, 16), path)
    _assert_one_line_naming(err, path)
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(ImageError, match="directory"):
        save_image(torch.zeros(3, 16, 16), tmp_path / "dir.png")
