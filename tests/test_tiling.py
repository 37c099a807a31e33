"""Large images: tiles with whole-image instance-norm statistics give the untiled result, in less memory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from adjustable_style.cli import main
from adjustable_style.image import load_image
from adjustable_style.model_files import load_model
from adjustable_style.stylizer import Stylizer
from adjustable_style.tiling import MemoryLimitError, plan, stylize_tiled

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "examples" / "photo_cat.jpg"
PAINTING = ROOT / "examples" / "painting_hokusai_great_wave.jpg"


@pytest.mark.parametrize("model", ["default", "starry_night"])  # CIN only; CIN + the encoder's plain instance norm
def test_tiles_equal_untiled_on_a_real_photo(model: str) -> None:
    m = load_model(model).model
    x = load_image(PHOTO, size=301).expand(2, -1, -1, -1)  # 301 px: not a multiple of 4 either
    e = m.embed(load_image(PAINTING, size=256)).expand(2, -1)
    alpha = torch.tensor([[1.0, 0.0, 0.3, 1.0], [1.0, 1.0, 0.7, 0.0]])[:, : m.schema.n_layers]
    with torch.no_grad():
        gamma, beta = m.cin_params(alpha, e)
        whole = m.net(x, gamma, beta)
        tiled = stylize_tiled(m.net, x, gamma, beta, tile=96 if model == "default" else 160)
    assert tiled.shape == whole.shape
    assert (tiled - whole).abs().mean() < 0.01
    assert (tiled - whole).abs().max() < 1e-3  # not just close on average: no seams anywhere


def test_stylizer_tiles_when_over_the_memory_limit() -> None:
    st = Stylizer.load("default", device="cpu", backend="torch")
    full = st.stylize(PHOTO, PAINTING, max_size=320)
    rows, tile = plan(st.model.net, *full.shape[-2:], 1, 8, 0.01)
    assert tile is not None  # the limit below forces tiles
    st.memory_limit_gb = 0.01
    tiled = st.stylize(PHOTO, PAINTING, max_size=320)
    assert (tiled - full).abs().mean() < 0.01


_CHILD = """
import sys, torch
from adjustable_style.stylizer import Stylizer
from adjustable_style.image import load_image, resize
torch.set_num_threads(1)
st = Stylizer.load("default", device="cpu", backend="torch")
st.memory_limit_gb = float(sys.argv[1])
c = resize(load_image({photo!r}, size=1024), (1024, 1024))
y = st.stylize(c, {painting!r}, max_size=None)
torch.save(y, sys.argv[2])
print(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak RSS is read from /proc (Linux)")
def test_tiled_1024_uses_less_memory_and_matches(tmp_path: Path) -> None:
    code = _CHILD.format(photo=str(PHOTO), painting=str(PAINTING))
    peaks, outs = {}, {}
    for name, limit in (("untiled", "100"), ("tiled", "0.15")):
        path = tmp_path / f"{name}.pt"
        done = subprocess.run(
            [sys.executable, "-c", code, limit, str(path)], capture_output=True, text=True, check=True
        )
        peaks[name] = int(done.stdout.split()[-1]) / 1024  # MiB
        outs[name] = torch.load(path, weights_only=True)
    assert (outs["tiled"] - outs["untiled"]).abs().mean() < 0.01
    # The network's activations at 1024² are ~300 MB untiled; the tiled run keeps well under that on top of the
    # same model, image and interpreter.
    assert peaks["tiled"] < peaks["untiled"] - 100, peaks


def test_refuses_what_cannot_fit_even_in_tiles(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    st = Stylizer.load("default", device="cpu", backend="torch")
    st.memory_limit_gb = 0.001
    with pytest.raises(MemoryLimitError, match="--memory-limit"):
        st.stylize(PHOTO, PAINTING, max_size=512)
    out = tmp_path / "x.png"
    assert main(["stylize", str(PHOTO), str(PAINTING), "-o", str(out), "--memory-limit", "0.001"]) == 1
    err = capsys.readouterr().err
    assert "memory limit" in err and len(err.strip().splitlines()) == 1 and not out.exists()
    assert main(["stylize", str(PHOTO), str(PAINTING), "-o", str(out), "--memory-limit", "-1"]) == 1
