"""ONNX export with the sliders as an input: the graphs run in onnxruntime and match torch on real images."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from adjustable_style.cli import main
from adjustable_style.image import load_image, resize
from adjustable_style.model_files import load_model
from adjustable_style.onnx_export import ONNX_FILES, OnnxGraphs, max_difference
from adjustable_style.stylizer import Stylizer

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "examples" / "photo_cat.jpg"
PAINTING = ROOT / "examples" / "painting_kandinsky_small_worlds_i.jpg"


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("onnx") / "default_onnx"
    assert main(["export", "default", "--onnx", "-o", str(out)]) == 0
    return out


def test_export_writes_graphs_and_slider_schema(onnx_dir: Path) -> None:
    for f in (*ONNX_FILES, "model.safetensors", "config.json", "LICENSE", "NOTICE"):
        assert (onnx_dir / f).is_file(), f
    cfg = json.loads((onnx_dir / "config.json").read_text())
    keys = [*(f"content/{n}" for n in cfg["schema"]["content"]), *(f"style/{n}" for n in cfg["schema"]["style"])]
    assert cfg["onnx"]["alpha"] == keys
    assert cfg["onnx"]["stylize"]["inputs"]["alpha"] == ["batch", len(keys)]


@pytest.mark.parametrize("size", [160, 237])
def test_onnxruntime_matches_torch_on_real_images(onnx_dir: Path, size: int) -> None:
    model = load_model(onnx_dir).model
    graphs = OnnxGraphs(onnx_dir, threads=1)
    content = load_image(PHOTO, size=size).expand(3, -1, -1, -1)
    alpha = torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0], [1.0, 0.2, 0.9, 0.5]])
    diff = max_difference(model, graphs, {"content": content, "style": load_image(PAINTING, size=256), "alpha": alpha})
    assert diff["embedding"] < 1e-3 and diff["image"] < 1e-3, diff
    # The sliders are a real input of the graph: different α, different images.
    y = graphs.stylize(content, graphs.embed(load_image(PAINTING, size=256)).expand(3, -1), alpha)
    assert y.shape == content.shape
    assert (y[0] - y[1]).abs().mean() > 1e-3


def test_stylizer_backends_agree_and_auto_picks_onnxruntime(
    onnx_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ADJUSTABLE_STYLE_CACHE", str(tmp_path / "cache"))  # an empty cache: only the folder has graphs
    ort = Stylizer.load(onnx_dir, device="cpu", backend="auto")
    assert ort.backend == "onnxruntime"
    assert Stylizer.load("default", device="cpu", backend="auto").backend == "torch"
    ref = Stylizer.load(onnx_dir, device="cpu", backend="torch")
    w = {"relu2_2": 0.1, "relu3_4": 0.8, "relu4_4": 0.4}
    a = ort.stylize(PHOTO, PAINTING, w, max_size=200)
    b = ref.stylize(PHOTO, PAINTING, w, max_size=200)
    assert (a - b).abs().max() < 1e-3


def test_backend_errors_are_one_line(onnx_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="backend must be one of"):
        Stylizer.load(onnx_dir, device="cpu", backend="tensorrt")
    with pytest.raises(SystemExit) as e:
        main(["stylize", str(PHOTO), str(PAINTING), "-o", "x.png", "--backend", "tensorrt"])
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert "invalid choice" in err and "Traceback" not in err


def test_shift_input_matches_torch_and_carries_a_preparation(onnx_dir: Path) -> None:
    """The graph's ``shift`` input (adapters, pair preparations) matches torch; a Stylizer on onnxruntime renders a
    prepared pair through the graph, equal to the torch backend with the same preparation."""
    cfg = json.loads((onnx_dir / "config.json").read_text())
    graphs = OnnxGraphs(onnx_dir, threads=1)
    model = load_model(onnx_dir).model
    c = model.net.cin_channels
    assert cfg["onnx"]["stylize"]["inputs"]["shift"] == ["batch", 2 * c] and graphs.shift_channels == 2 * c
    content = load_image(PHOTO, size=160).expand(2, -1, -1, -1)
    alpha = torch.tensor([[1.0, 0.5, 0.5, 0.5], [1.0, 1.0, 0.0, 0.5]])
    shift = 0.3 * torch.randn(2, 2 * c, generator=torch.Generator().manual_seed(0))
    diff = max_difference(
        model, graphs, {"content": content, "style": load_image(PAINTING, size=256), "alpha": alpha, "shift": shift}
    )
    assert diff["image"] < 1e-3, diff
    ort = Stylizer.load(onnx_dir, device="cpu", backend="onnxruntime")
    ref = Stylizer.load(onnx_dir, device="cpu", backend="torch")
    prep = ref.prepare(PHOTO, PAINTING, max_size=96, steps=1, pixel_steps=1)
    assert prep.pixels is not None
    ort.add_preparation(prep)
    w = {"relu2_2": 1.0, "relu3_4": 0.2, "relu4_4": 0.9}
    shifted = ort.cin_shift(PHOTO, PAINTING, ort.check_weights(w), max_size=96)
    assert shifted.abs().max() > 0
    calls = []
    run = ort._graphs.stylize
    ort._graphs.stylize = lambda *a: calls.append(a[3]) or run(*a)
    a, b = ort.stylize(PHOTO, PAINTING, w, max_size=96), ref.stylize(PHOTO, PAINTING, w, max_size=96)
    assert len(calls) == 1 and torch.equal(calls[0].cpu(), shifted)  # through the graph, with the shift
    assert (a - b).abs().max() < 1e-3
    # Elsewhere: the graph with cin_shift's shift, then pixel_residual's residual added, gives the same picture.
    residual = ort.pixel_residual(PHOTO, PAINTING, ort.check_weights(w), max_size=96)
    assert residual.shape == a.shape and residual.abs().max() > 0
    photo = resize(load_image(PHOTO), max_size=96)
    net = run(photo, ort.embed(PAINTING), ort.check_weights(w), shifted)
    assert ((net.cpu() + residual).clamp(0, 1) - a).abs().max() < 1e-5
    ref.remove_preparations()
    assert (ref.stylize(PHOTO, PAINTING, w, max_size=96) - b).abs().mean() > 1 / 255  # the preparation mattered
