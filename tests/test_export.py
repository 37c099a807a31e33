"""Export format: checkpoint → model.safetensors + config.json → model, safely and atomically."""

from __future__ import annotations

import argparse
import json
import os
import pickle
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from adjustable_style import export as export_mod
from adjustable_style.checkpoint import ModelFormatError, read_checkpoint
from adjustable_style.export import FORMAT_VERSION, checkpoint_payload, export_checkpoint
from adjustable_style.model_files import ExportedModel, load_model, resolve_model


def _one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg, msg
    return msg


def _snapshot(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


def _outputs(m: ExportedModel) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    content, style = torch.rand(2, 3, 48, 40, generator=g), torch.rand(1, 3, 64, 64, generator=g)
    alpha = torch.tensor([[1.0, 0.1, 0.5, 0.9], [1.0, 1.0, 0.0, 0.3]])
    with torch.inference_mode():
        return m.model(content, m.model.embed(style).expand(2, -1), alpha)


@pytest.fixture(scope="module")
def fp32_dir(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_checkpoint(tiny_checkpoint, tmp_path_factory.mktemp("fp32") / "model", dtype="float32")


# ------------------------------------------------------------------------------------------------ round trip
def test_fp32_export_is_exact(tiny_checkpoint: Path, fp32_dir: Path) -> None:
    sd = torch.load(tiny_checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    expected = {k[len("model.") :]: v for k, v in sd.items() if k.startswith("model.")}
    m = load_model(fp32_dir)
    got = m.model.state_dict()
    assert set(got) == set(expected)
    for k, v in expected.items():
        assert torch.equal(got[k], v), k
    assert torch.equal(_outputs(m), _outputs(load_model(tiny_checkpoint)))  # .ckpt loaded in memory == export


def test_fp16_export_is_close(tiny_model_dir: Path, fp32_dir: Path) -> None:
    a, b = _outputs(load_model(tiny_model_dir)), _outputs(load_model(fp32_dir))
    assert a.dtype == torch.float32  # loaded back into float32
    assert torch.allclose(a, b, atol=1e-2), float((a - b).abs().max())


def test_config_json(tiny_model_dir: Path) -> None:
    cfg = json.loads((tiny_model_dir / "config.json").read_text())
    assert cfg["format"] == "adjustable-style" and cfg["version"] == FORMAT_VERSION == 1
    assert cfg["schema"] == {"content": ["relu3_4"], "style": ["relu2_2", "relu3_4", "relu4_4"]}
    assert sum(c for _, c in cfg["cin_layers"]) == 1379 and len(cfg["cin_layers"]) == 13
    assert cfg["model"]["embedding_dim"] == 100 and cfg["model"]["channels"] == [32, 64, 128]
    assert cfg["vgg"] == {"weights": "caffe", "pooling": "max"}
    assert cfg["train"]["step"] == 2 and cfg["train"]["crop_size"] == 64 and cfg["train"]["style_size"] == 64
    assert cfg["train"]["ema_decay"] == 0.99
    assert list(cfg["ema"]) == ["content/relu3_4", "style/relu2_2", "style/relu3_4", "style/relu4_4"]
    assert all(v > 0 for v in cfg["ema"].values()) and cfg["ema_tv"] > 0
    assert cfg["labels"]["relu2_2"] == "fine texture (relu2_2)"
    assert cfg["dtype"] == "float16"
    m = load_model(tiny_model_dir)
    assert m.style_size == 64 and m.ema.shape == (4,) and not m.model.training
    assert torch.allclose(m.ema, torch.tensor(list(cfg["ema"].values())))


def test_safetensors_holds_only_the_model(tiny_model_dir: Path, fp32_dir: Path) -> None:
    m = load_model(tiny_model_dir)
    with safe_open(str(tiny_model_dir / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
        assert f.metadata()["format"] == "adjustable-style"
        assert all(f.get_tensor(k).dtype == torch.float16 for k in keys)
    assert keys == set(m.model.state_dict())
    assert not any(k.startswith("vgg") or "conv1_1" in k for k in keys)
    n_params = sum(v.numel() for v in m.model.state_dict().values())
    size16 = (tiny_model_dir / "model.safetensors").stat().st_size
    size32 = (fp32_dir / "model.safetensors").stat().st_size
    assert 2 * n_params <= size16 < 2 * n_params + 100_000 and 2 * 2**20 < size16 < 20 * 2**20
    assert abs(size32 - 2 * size16) < 200_000
    assert sorted(p.name for p in tiny_model_dir.iterdir()) == ["config.json", "model.safetensors"]


# ------------------------------------------------------------------------------------------------- bad input
def _copy_export(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    for p in src.iterdir():
        (dst / p.name).write_bytes(p.read_bytes())
    return dst


def test_bad_model_dirs(tiny_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelFormatError, match="not found") as e:
        load_model(tmp_path / "missing")
    _one_line(e)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelFormatError, match="not an adjustable-style model: .* has no config.json") as e:
        load_model(empty)
    _one_line(e)

    d = _copy_export(tiny_model_dir, tmp_path / "d")
    cfg = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**cfg, "format": "something-else"}))
    with pytest.raises(ModelFormatError, match="not an adjustable-style model") as e:
        load_model(d)
    _one_line(e)
    (d / "config.json").write_text(json.dumps({**cfg, "version": 2}))
    with pytest.raises(ModelFormatError) as e:
        load_model(d)
    assert _one_line(e) == "model format version 2 is newer than this package supports; upgrade adjustable-style"
    (d / "config.json").write_text("{not json")
    with pytest.raises(ModelFormatError, match="not valid JSON") as e:
        load_model(d)
    _one_line(e)
    (d / "config.json").write_text(json.dumps(cfg))
    (d / "model.safetensors").unlink()
    with pytest.raises(ModelFormatError, match="no model.safetensors") as e:
        load_model(d)
    _one_line(e)
    (d / "model.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(ModelFormatError, match="cannot read") as e:
        load_model(d)
    _one_line(e)


# Out-of-range values a downloaded config.json may hold: each is refused with one line naming the key, before
# any network is allocated (a path in vgg.weights never reaches the loader).
BAD_CONFIG_VALUES = [
    ("model", "channels", [-8, 16, 32], "model.channels"),
    ("model", "channels", "abc", "model.channels"),
    ("model", "mlp_hidden", 2e9, "model.mlp_hidden"),
    ("model", "mlp_hidden", 60000, "weights do not match"),  # in bounds, but not what the file holds
    ("train", "style_size", 0, "train.style_size"),
    ("train", "style_size", -5, "train.style_size"),
    ("train", "style_size", 100000, "train.style_size"),
    ("train", "style_size", "256", "train.style_size"),
    ("train", "alpha_high", 1e9, "train.alpha_high"),
    ("train", "alpha_low", 2.0, "alpha_low must be below"),
    ("vgg", "weights", "/etc/passwd", "vgg.weights"),
    ("vgg", "weights", "model.safetensors", "vgg.weights"),
    ("ema", None, float("nan"), "ema\\["),
    ("ema", None, -1.0, "ema\\["),
    ("ema_tv", None, float("inf"), "ema_tv"),
]


@pytest.mark.parametrize(("section", "key", "value", "match"), BAD_CONFIG_VALUES)
def test_out_of_range_config_values_are_refused(
    tiny_model_dir: Path, tmp_path: Path, section: str, key: str | None, value: object, match: str
) -> None:
    d = _copy_export(tiny_model_dir, tmp_path / "d")
    cfg = json.loads((d / "config.json").read_text())
    if section == "ema_tv":
        cfg["ema_tv"] = value
    elif key is None:
        cfg[section][next(iter(cfg[section]))] = value
    else:
        cfg[section][key] = value
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFormatError, match=match) as e:
        load_model(d)
    _one_line(e)


def test_torchvision_named_but_missing_is_one_line(tiny_model_dir: Path, tmp_path: Path) -> None:
    try:
        import torchvision  # noqa: F401
    except Exception:
        pass
    else:
        pytest.skip("torchvision works here: the weights would download instead")
    d = _copy_export(tiny_model_dir, tmp_path / "d")
    cfg = json.loads((d / "config.json").read_text())
    cfg["vgg"]["weights"] = "torchvision"
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFormatError, match="torchvision") as e:
        load_model(d)
    _one_line(e)


def test_resolve_model(tiny_checkpoint: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    assert resolve_model(tiny_model_dir) == tiny_model_dir
    assert resolve_model(str(tiny_checkpoint)) == tiny_checkpoint
    with pytest.raises(ModelFormatError) as e:
        resolve_model("no-such-model-name")
    assert _one_line(e) == "no bundled model named 'no-such-model-name'; train one and pass --model DIR"
    with pytest.raises(ModelFormatError, match="not found") as e:
        resolve_model(str(tmp_path / "nope"))
    _one_line(e)
    m = load_model(tiny_checkpoint)  # a .ckpt is exported in memory
    assert m.config["format"] == "adjustable-style" and m.schema.style == ("relu2_2", "relu3_4", "relu4_4")


def test_bad_checkpoints(tmp_path: Path) -> None:
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelFormatError, match="corrupt") as e:
        export_checkpoint(junk, tmp_path / "out")
    _one_line(e)
    torch.save({"state_dict": {"x": torch.zeros(1)}}, tmp_path / "other.ckpt")
    with pytest.raises(ModelFormatError, match="no training config") as e:
        export_checkpoint(tmp_path / "other.ckpt", tmp_path / "out")
    _one_line(e)
    with pytest.raises(ModelFormatError, match="not found"):
        export_checkpoint(tmp_path / "missing.ckpt", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unsafe_objects_become_inert_placeholders(tiny_checkpoint: Path, tmp_path: Path) -> None:
    ckpt = torch.load(tiny_checkpoint, map_location="cpu", weights_only=True)
    # Objects a weights-only load refuses, outside what the export needs: loaded as placeholders.
    ckpt["loops"]["extra"] = argparse.Namespace(a=1)
    torch.save(ckpt, tmp_path / "odd.ckpt")
    with pytest.raises(pickle.UnpicklingError):
        torch.load(tmp_path / "odd.ckpt", weights_only=True)
    config, state = checkpoint_payload(tmp_path / "odd.ckpt")
    assert config["train"]["step"] == 2 and state
    assert "unloaded argparse.Namespace" in repr(read_checkpoint(tmp_path / "odd.ckpt")["loops"]["extra"])

    # Inside the config: refused. Code from the checkpoint never runs.
    ckpt["hyper_parameters"]["config"]["seed"] = argparse.Namespace(a=1)
    torch.save(ckpt, tmp_path / "odd2.ckpt")
    with pytest.raises(ModelFormatError, match="hyper-parameters.seed") as e:
        checkpoint_payload(tmp_path / "odd2.ckpt")
    _one_line(e)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    del ckpt["hyper_parameters"]["config"]["seed"]
    ckpt["loops"]["evil"] = Evil()
    torch.save(ckpt, tmp_path / "evil.ckpt")
    with pytest.raises(ModelFormatError, match="safely") as e:
        checkpoint_payload(tmp_path / "evil.ckpt")
    _one_line(e)
    assert not marker.exists()


# --------------------------------------------------------------------------------------------------- atomic
def test_overwrite_rules(tiny_checkpoint: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    d = _copy_export(tiny_model_dir, tmp_path / "export")
    assert export_checkpoint(tiny_checkpoint, d, dtype="float32") == d  # replacing an export is fine
    assert json.loads((d / "config.json").read_text())["dtype"] == "float32"
    (tmp_path / "empty").mkdir()
    export_checkpoint(tiny_checkpoint, tmp_path / "empty")  # so is an empty folder

    other = tmp_path / "photos"
    other.mkdir()
    (other / "holiday.jpg").write_bytes(b"precious")
    with pytest.raises(ModelFormatError, match="refusing to overwrite") as e:
        export_checkpoint(tiny_checkpoint, other)
    _one_line(e)
    assert _snapshot(other) == {"holiday.jpg": b"precious"}
    (tmp_path / "file").write_text("x")
    with pytest.raises(ModelFormatError, match="is a file"):
        export_checkpoint(tiny_checkpoint, tmp_path / "file")
    with pytest.raises(ValueError, match="dtype"):
        export_checkpoint(tiny_checkpoint, tmp_path / "x", dtype="int8")


def test_failed_export_leaves_existing_export_untouched(
    tiny_checkpoint: Path, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = _copy_export(tiny_model_dir, tmp_path / "export")
    before = _snapshot(d)
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"garbage")
    with pytest.raises(ModelFormatError):
        export_checkpoint(junk, d)
    assert _snapshot(d) == before

    def crash(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(export_mod, "save_file", crash)
    with pytest.raises(OSError, match="disk full"):
        export_checkpoint(tiny_checkpoint, d, dtype="float32")
    assert _snapshot(d) == before
    with pytest.raises(OSError):
        export_checkpoint(tiny_checkpoint, tmp_path / "new")
    assert not (tmp_path / "new").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export", "junk.ckpt"]  # no temp folders left
    load_model(d)
