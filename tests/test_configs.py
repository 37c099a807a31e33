"""The shipped training configs and split files: they load, and their splits keep validation held out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adjustable_style.config import load_config
from adjustable_style.data import list_images, load_split

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs" / "train").glob("*.yaml"))
SPLITS = sorted((ROOT / "configs" / "splits").glob("*.json"))


def test_there_are_configs_and_splits() -> None:
    assert {p.name for p in CONFIGS} >= {"default.yaml", "quick.yaml", "cpu_default.yaml", "cpu_starry_night.yaml"}
    assert SPLITS


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_loads_and_its_split_file_exists(path: Path) -> None:
    cfg = load_config(path)
    if cfg.data.split_file is not None:
        assert Path(cfg.data.split_file).is_file(), cfg.data.split_file
        load_split(cfg.data.split_file)


@pytest.mark.parametrize("path", SPLITS, ids=lambda p: p.name)
def test_split_keeps_validation_disjoint_and_names_real_files(path: Path, shared_data: Path) -> None:
    split = json.loads(path.read_text())
    for kind in ("content", "style"):
        train, val = set(split[kind]["train"]), set(split[kind]["val"])
        # A single-style model has no held-out style: it validates on held-out photos with its own painting.
        single_style = kind == "style" and len(train) == 1
        assert train and (val or single_style), f"{path.name}: {kind} train or val is empty"
        assert not train & val, f"{path.name}: {kind} train and val overlap"
        on_disk = {p.name for p in list_images([shared_data / kind])}
        assert train | val <= on_disk, (
            f"{path.name}: names not in {shared_data / kind}: {sorted((train | val) - on_disk)[:3]}"
        )


def test_cpu_default_split_is_a_subset_with_the_same_held_out_styles() -> None:
    full = json.loads((ROOT / "configs" / "splits" / "shared_data.json").read_text())
    sub = json.loads((ROOT / "configs" / "splits" / "shared_data_16styles.json").read_text())
    assert sub["content"] == full["content"]
    assert sub["style"]["val"] == full["style"]["val"]
    assert set(sub["style"]["train"]) < set(full["style"]["train"]) and len(sub["style"]["train"]) == 16


def test_single_style_config_trains_and_validates_on_its_one_painting(shared_data: Path) -> None:
    from adjustable_style.data import StyleDataModule

    cfg = load_config(
        ROOT / "configs" / "train" / "cpu_starry_night.yaml",
        [f"data.style_dirs=[{shared_data / 'style'}]", f"data.content_dirs=[{shared_data / 'content'}]"],
    )
    dm = StyleDataModule(cfg.data)
    dm.setup()
    assert [p.name for p in dm.train_set.style] == ["vangogh_starry_night.jpg"]
    assert [p.name for p in dm.val_set.style] == ["vangogh_starry_night.jpg"]
    assert not {p.name for p in dm.train_set.content} & {p.name for p in dm.val_set.content}


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("trainer.max_steps=-5", "trainer.max_steps"),
        ("trainer.max_steps=0", "trainer.max_steps"),
        ("log.checkpoint_every_n_steps=0", "log.checkpoint_every_n_steps"),
        ("data.num_workers=-1", "data.num_workers"),
        ("loss.alpha_high=1e9", "loss.alpha_high"),
        ("loss.alpha_high=nan", "loss.alpha_high"),
        ("loss.ema_decay=nan", "loss.ema_decay"),
        ("data.style_size=100000", "data.style_size"),
        ("data.val_fraction=1.5", "data.val_fraction"),
    ],
)
def test_out_of_range_settings_fail_at_load_time(override: str, match: str) -> None:
    from adjustable_style.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=match) as e:
        load_config(None, [override])
    assert "\n" not in str(e.value)
