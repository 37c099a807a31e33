"""The web page's logic without a browser: Studio callbacks, upload checks, the gradio wiring, ``serve`` CLI."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adjustable_style.prepare import DEFAULT_PRESET, preset
from adjustable_style.stylizer import Stylizer
from adjustable_style.ui.callbacks import NEED_IMAGES, NEED_STYLE, Studio, UploadError, check_upload, example_images

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "examples" / "photo_cat.jpg"  # 451x300
PAINTING = ROOT / "examples" / "painting_vangogh_starry_night.jpg"


@pytest.fixture(scope="module")
def studio(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Studio:
    st = Stylizer.load(tiny_model_dir, device="cpu")
    return Studio(
        st, max_upload_mb=1, preview_size=128, full_size=256, n_variations=4, out_dir=tmp_path_factory.mktemp("ui_out")
    )


def _px(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.int16)


def test_sliders_follow_the_model_schema(studio: Studio) -> None:
    sliders = studio.sliders()
    assert [name for name, _, _ in sliders] == list(studio.stylizer.style_layers)
    assert all(label.endswith(f"({name})") and value == 1.0 for name, label, value in sliders)
    assert ("relu2_2", "fine texture (relu2_2)", 1.0) in sliders


def test_slider_values_drive_the_image(studio: Studio) -> None:
    a, msg_a = studio.preview(str(PHOTO), str(PAINTING), 1.0, False, 1.0, 1.0, 1.0)
    b, msg_b = studio.preview(str(PHOTO), str(PAINTING), 1.0, False, 0.0, 1.0, 1.0)
    again, _ = studio.preview(str(PHOTO), str(PAINTING), 1.0, False, 1.0, 1.0, 1.0)
    assert a is not None and b is not None and again is not None
    assert a.size == (128, 85)  # preview size: longer side 128
    # (the test model trained for 2 steps, so α moves pixels only a little: any change counts)
    assert (_px(a) != _px(b)).any(), "moving a slider did not change the image"
    assert np.array_equal(_px(a), _px(again)), "same slider values must give the same image"
    assert "relu2_2=1.00" in msg_a and "relu2_2=0.00" in msg_b and "128×85 px" in msg_a
    # strength and preserve-colour reach the model too
    weak, _ = studio.preview(str(PHOTO), str(PAINTING), 0.0, False, 1.0, 1.0, 1.0)
    kept, _ = studio.preview(str(PHOTO), str(PAINTING), 1.0, True, 1.0, 1.0, 1.0)
    assert weak is not None and kept is not None
    assert (_px(a) != _px(weak)).any() and (_px(a) != _px(kept)).any()


def test_full_render_is_larger_and_downloadable(studio: Studio) -> None:
    img, path, message = studio.full(str(PHOTO), str(PAINTING), 1.0, False, 0.3, 0.6, 1.0)
    assert img is not None and path is not None and img.size == (256, 170)
    saved = Image.open(path)
    assert saved.format == "PNG" and np.array_equal(np.asarray(saved.convert("RGB")), np.asarray(img))
    assert "relu3_4=0.60" in message


def test_downloads_do_not_pile_up(studio: Studio, monkeypatch: pytest.MonkeyPatch) -> None:
    import adjustable_style.ui.callbacks as callbacks

    monkeypatch.setattr(callbacks, "KEEP_DOWNLOADS", 2)
    tile = Image.new("RGB", (32, 16), (10, 20, 30))
    paths = [studio._save(tile, "photo.jpg", "style.jpg", v) for v in (0.1, 0.2, 0.3)]
    assert studio._save(tile, "photo.jpg", "style.jpg", 0.3) == paths[2]  # same settings, same file
    assert not paths[0].exists() and paths[1].exists() and paths[2].exists()


def test_missing_images_and_bad_values_give_messages(studio: Studio) -> None:
    assert studio.preview(None, str(PAINTING), 1.0, False, 1.0, 1.0, 1.0) == (None, NEED_IMAGES)
    assert studio.full(str(PHOTO), None, 1.0, False, 1.0, 1.0, 1.0) == (None, None, NEED_IMAGES)
    img, message = studio.preview(str(PHOTO), str(PAINTING), 1.0, False, 1.0, 1.0, 7.0)
    assert img is None and "relu4_4" in message and "\n" not in message
    img, message = studio.preview(str(PHOTO), str(PAINTING), 1.0, False, 1.0)
    assert img is None and "expected 3 slider values" in message


def test_refuses_oversize_and_non_images(studio: Studio, tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (700, 700, 3), dtype=np.uint8)).save(big)
    assert big.stat().st_size > 2**20
    path, thumb, message = studio.accept(str(big), "content image")
    assert path is None and thumb is None
    assert "'big.png'" in message and "over the 1 MB upload limit" in message

    fake = tmp_path / "notes.jpg"
    fake.write_text("not a picture")
    path, _, message = studio.accept(str(fake), "style image")
    assert path is None and "not a recognised image file" in message
    assert str(tmp_path) not in message, "messages name the upload, not the server's temporary path"

    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(UploadError, match="not an image file"):
        check_upload(text, 20, "content image")
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(PHOTO.read_bytes()[:3000])
    with pytest.raises(UploadError, match="corrupt or truncated"):
        check_upload(truncated, 20)
    with pytest.raises(UploadError, match="no content image arrived"):
        check_upload(None, 20, "content image")

    path, thumb, message = studio.accept(str(PHOTO), "content image")
    assert path == str(PHOTO) and thumb is not None and max(thumb.size) <= 384 and message == ""


def test_variations_and_clicking_one_loads_its_weights(studio: Studio) -> None:
    items, table, message = studio.variations(str(PHOTO), str(PAINTING), 1.0, False, 3)
    assert len(items) == len(table) == 4 and "seed 3" in message
    assert all(len(row) == 3 and all(0.0 <= v <= 1.0 for v in row) for row in table)
    again, table_again, _ = studio.variations(str(PHOTO), str(PAINTING), 1.0, False, 3)
    assert table_again == table  # seeded

    row = studio.variation_values(table, 2)
    assert row == table[2]
    image, caption = items[2]
    assert caption == " ".join(f"{n}={v:.2f}" for n, v in zip(studio.layers, row))
    # Loading those weights into the sliders reproduces the clicked image (batched vs single pass: ±1 level).
    preview, _ = studio.preview(str(PHOTO), str(PAINTING), 1.0, False, *row)
    assert preview is not None and np.abs(_px(preview) - _px(image)).max() <= 2
    assert studio.variation_values(table, 9) is None and studio.variation_values([], 0) is None
    assert studio.variations(None, str(PAINTING), 1.0, False, 0) == ([], [], NEED_IMAGES)


def test_example_images_found(tmp_path: Path) -> None:
    photos, paintings = example_images()
    assert photos and paintings
    assert all(p.name.startswith("photo_") for p in photos) and all(p.name.startswith("painting_") for p in paintings)
    shipped = ROOT / "src" / "adjustable_style" / "assets" / "examples"
    only_package = example_images([tmp_path / "missing", shipped])
    # the package ships three photos (the adapters fit on them) and one painting
    assert [p.name for p in only_package[0]] == ["photo_astronaut.jpg", "photo_cat.jpg", "photo_rocket_launch.jpg"]
    assert [p.name for p in only_package[1]] == ["painting_hokusai_great_wave.jpg"]


def test_build_app_wires_every_slider(studio: Studio) -> None:
    pytest.importorskip("gradio")
    from adjustable_style.ui import build_app

    app = build_app(studio.stylizer, preview_size=128, full_size=256)
    config = app.get_config_file()
    by_id = {c["id"]: c for c in config["components"]}
    sliders = {c["props"].get("elem_id"): c["id"] for c in config["components"] if c["type"] == "slider"}
    assert set(sliders) == {"w-relu2_2", "w-relu3_4", "w-relu4_4", "strength"}
    labels = {by_id[i]["props"]["label"] for i in sliders.values()}
    assert "fine texture (relu2_2)" in labels
    result = next(c["id"] for c in config["components"] if c["props"].get("elem_id") == "result")
    for elem_id, cid in sliders.items():
        deps = [d for d in config["dependencies"] if [cid, "input"] in [list(t) for t in d["targets"]]]
        assert deps and result in deps[0]["outputs"], f"{elem_id}: no live preview on input"
        assert deps[0]["trigger_mode"] == "always_last"
        assert any([cid, "release"] in [list(t) for t in d["targets"]] for d in config["dependencies"]), elem_id
    tune = next(c for c in config["components"] if c["props"].get("elem_id") == "tune-button")
    assert tune["props"]["visible"] is False  # the tiny model has no base network to tune
    auto = next(c for c in config["components"] if c["props"].get("elem_id") == "auto-prepare")
    assert auto["props"]["visible"] is False and auto["props"]["value"] is False  # nor to prepare

    def prepare_seconds(cfg: dict) -> int:  # what the Prepare button says the fit takes
        label = next(c for c in cfg["components"] if c["props"].get("elem_id") == "prepare-button")["props"]["value"]
        number, unit = re.search(r"about (\d+) (s|min) on a CPU", label).groups()
        return int(number) * (60 if unit == "min" else 1)

    said = {"quick": prepare_seconds(config)}  # the default fit
    for fit in ("medium", "full"):
        said[fit] = prepare_seconds(
            build_app(studio.stylizer, preview_size=128, full_size=256, prepare_fit=fit).get_config_file()
        )
    assert 0 < said["quick"] < said["medium"] < said["full"], said
    big = build_app(studio.stylizer, preview_size=256, full_size=1024).get_config_file()
    assert prepare_seconds(big) > said["quick"]  # the page's sizes count
    assert any([tune["id"], "click"] in [list(t) for t in d["targets"]] for d in config["dependencies"])


def test_gradio_missing_is_one_line(studio: Studio, monkeypatch: pytest.MonkeyPatch) -> None:
    from adjustable_style.ui import GRADIO_MISSING, build_app

    monkeypatch.setitem(sys.modules, "gradio", None)  # makes `import gradio` raise ImportError
    with pytest.raises(ImportError) as e:
        build_app(studio.stylizer)
    assert str(e.value) == GRADIO_MISSING == "the web page needs gradio: pip install 'adjustable-style[ui]'"


def test_serve_cli_wiring(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    import adjustable_style.ui as ui
    from adjustable_style.cli import main

    calls: list[tuple] = []
    monkeypatch.setattr(ui, "serve", lambda *a, **kw: calls.append((a, kw)))
    assert main(["serve", "--model", str(tiny_model_dir), "--port", "8123", "--device", "cpu"]) == 0
    ((args, kw),) = calls
    assert Path(args[0]) == tiny_model_dir
    assert kw["host"] == "127.0.0.1" and kw["port"] == 8123 and kw["device"] == "cpu" and kw["share"] is False
    assert kw["prepare_fit"] == DEFAULT_PRESET and kw["auto_prepare"] is True
    assert main(["serve", "--model", str(tiny_model_dir), "--prepare", "full", "--no-prepare"]) == 0
    assert calls[-1][1]["prepare_fit"] == "full" and calls[-1][1]["auto_prepare"] is False
    assert main(["serve", "--model", str(tiny_model_dir), "--prepare", "slow"]) == 1
    assert "--prepare: unknown preparation 'slow'" in capsys.readouterr().err

    assert main(["serve", "--model", str(tiny_model_dir), "--port", "0"]) == 1
    assert "--port must be in 1..65535" in capsys.readouterr().err

    def no_gradio(*a: object, **kw: object) -> None:
        raise ImportError(ui.GRADIO_MISSING)

    monkeypatch.setattr(ui, "serve", no_gradio)
    assert main(["serve", "--model", str(tiny_model_dir)]) == 1
    assert capsys.readouterr().err.strip() == f"adjustable-style serve: error: {ui.GRADIO_MISSING}"


def test_batched_previews_equal_single_ones(studio: Studio) -> None:
    rows = [(1.0, 1.0, 1.0), (0.0, 1.0, 1.0), (0.3, 0.6, 0.9)]
    n = len(rows) + 2
    contents = [str(PHOTO)] * (n - 1) + [None]  # the last request has no photo yet: its own message
    styles = [str(PAINTING)] * n
    strengths = [1.0, 1.0, 1.0, 0.5, 1.0]  # request 3 (strength 0.5) is in a group of its own
    values = [[r[j] for r in [*rows, (1.0, 1.0, 1.0), (1.0, 1.0, 1.0)]] for j in range(3)]
    images, messages = studio.preview_batch(contents, styles, strengths, [False] * n, *values)
    assert len(images) == len(messages) == n
    for k, row in enumerate([*rows, (1.0, 1.0, 1.0)]):
        single, _ = studio.preview(contents[k], styles[k], strengths[k], False, *row)
        assert images[k] is not None and images[k].size == single.size
        assert np.abs(_px(images[k]) - _px(single)).max() <= 2, k  # same pixels as one by one
    assert "batch of 3" in messages[0] and "batch of" not in messages[3]
    assert images[-1] is None and messages[-1] == NEED_IMAGES


def test_page_folder_is_removed_with_its_studio_and_after_a_crash(
    studio: Studio, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc
    import tempfile

    from adjustable_style.ui.callbacks import OUT_PREFIX

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f"{OUT_PREFIX}{int(dead.stdout)}-abc"  # left by a server that was SIGKILLed
    stale.mkdir()
    (stale / "stylized-x.png").write_bytes(b"png")
    alive = tmp_path / f"{OUT_PREFIX}{os.getpid()}-def"  # another page in a running process: kept
    alive.mkdir()
    page = Studio(studio.stylizer)
    folder = page.out_dir
    assert folder.is_dir() and folder.parent == tmp_path and folder.name.startswith(f"{OUT_PREFIX}{os.getpid()}-")
    assert not stale.exists() and alive.is_dir()
    del page
    gc.collect()
    assert not folder.exists()


def test_serve_removes_its_folder_on_sigterm(tiny_model_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("gradio")
    env = {**os.environ, "TMPDIR": str(tmp_path), "OMP_NUM_THREADS": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "adjustable_style",
            "serve",
            "--model",
            str(tiny_model_dir),
            "--port",
            str(port),
            "--device",
            "cpu",
            "--backend",
            "torch",
            "-q",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(1200):  # the folder appears when the page is built; then wait for the port to listen
            if list(tmp_path.glob("adjustable-style-ui-*")) and _listening(port):
                break
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            time.sleep(0.1)
        assert list(tmp_path.glob("adjustable-style-ui-*")), "the page made no folder"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not list(tmp_path.glob("adjustable-style-ui-*")), err[-2000:]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_tune_fits_an_adapter_for_the_painting(tmp_path: Path, studio: Studio) -> None:
    """The "Tune" button: a real (2-step) adapter fit for the current painting, saved, used by the next renders."""
    assert studio.tune(None) == NEED_STYLE
    assert "base network" in studio.tune(str(PAINTING))  # the tiny model was trained from scratch
    monet = ROOT / "examples" / "painting_monet_water_lilies.jpg"
    page = Studio(
        Stylizer.load("default", device="cpu"),
        preview_size=96,
        full_size=128,
        out_dir=tmp_path / "out",
        adapter_dir=tmp_path / "adapters",
        adapt_steps=2,
    )
    before, status = page.preview(str(PHOTO), str(monet), 1.0, False, 0.0, 1.0, 0.5)
    assert "tuned" not in status
    ticks: list[int] = []
    message = page.tune(str(monet), progress=lambda i, n, obj: ticks.append(i))
    assert message.startswith("sliders tuned to 'painting_monet_water_lilies.jpg'"), message
    assert ticks == [1, 2]
    saved = list((tmp_path / "adapters").iterdir())
    assert len(saved) == 1 and saved[0].suffix == ".safetensors" and saved[0].name in message
    after, status = page.preview(str(PHOTO), str(monet), 1.0, False, 0.0, 1.0, 0.5)
    assert "sliders tuned to this painting" in status
    _, batched = page.preview_batch(
        [str(PHOTO)] * 2, [str(monet)] * 2, [1.0] * 2, [False] * 2, [0.0, 1.0], [1.0] * 2, [0.5] * 2
    )
    assert all("batch of 2" in m and "sliders tuned to this painting" in m for m in batched), batched
    assert np.abs(_px(after) - _px(before)).mean() > 0.5  # the adapter changes what the sliders give
    assert "already tuned" in page.tune(str(monet))
    with page._tuning:  # a fit in progress elsewhere: refused with a message, nothing blocks
        assert "another painting is being tuned" in page.tune(str(PAINTING))
    # without a folder, a stylizer that uses an adapter store (serve's default) keeps the fit there for next time
    st = Stylizer.load("default", device="cpu")
    store = st.use_adapter_store(tmp_path / "store")
    stored = Studio(st, preview_size=96, full_size=128, out_dir=tmp_path / "out2", adapt_steps=1)
    assert "kept in the adapter store" in stored.tune(str(monet))
    assert [p.name for p in store.iterdir()] == [f"{st.style_digest(monet)}.safetensors"]
    fresh = Stylizer.load("default", device="cpu")
    fresh.use_adapter_store(store)
    assert fresh.has_adapter(monet)


def test_prepare_fits_the_sliders_to_the_pair(tmp_path: Path, studio: Studio) -> None:
    """The "Prepare" button: a real (1-step) fit of the sliders' ends for this photo and painting at the preview's
    and the full render's size, used by the next renders of that pair only, kept in the store."""
    assert studio.prepare(None, str(PAINTING)) == NEED_IMAGES
    assert "base network" in studio.prepare(str(PHOTO), str(PAINTING))  # the tiny model was trained from scratch
    monet = ROOT / "examples" / "painting_monet_water_lilies.jpg"
    st = Stylizer.load("default", device="cpu")
    store = st.use_preparation_store(tmp_path / "prepared")
    page = Studio(st, preview_size=64, full_size=96, out_dir=tmp_path / "out")  # the default (quick) fit
    before, status = page.preview(str(PHOTO), str(monet), 1.0, False, 1.0, 0.5, 0.5)
    assert "prepared" not in status and not page.prepared(str(PHOTO), str(monet))
    ticks: list[int] = []
    message = page.prepare(str(PHOTO), str(monet), progress=lambda i, n, obj: ticks.append(i))
    assert message.startswith("sliders prepared for this photo and painting") and "kept" in message, message
    fit = preset(DEFAULT_PRESET)
    per_size = fit.total_steps  # the single sliders' stage (with relu4_4's own steps), then the corners' own stage
    assert per_size == fit.steps + fit.solo_steps + fit.corner_steps
    assert ticks == list(range(1, 2 * per_size + 1)) and len(list(store.iterdir())) == 2  # preview and full size
    assert page.prepared(str(PHOTO), str(monet)) and not page.prepared(str(PHOTO), str(PAINTING))
    assert not page.prepared(str(PHOTO), None) and not page.prepared(str(tmp_path / "gone.jpg"), str(monet))
    after, status = page.preview(str(PHOTO), str(monet), 1.0, False, 1.0, 0.5, 0.5)
    assert "sliders prepared for this photo and painting" in status
    assert np.abs(_px(after) - _px(before)).mean() > 0.5
    _, full_status = page.render(str(PHOTO), str(monet), 1.0, False, [1.0, 0.5, 0.5], 96)
    assert "prepared" in full_status
    _, other = page.preview(str(PHOTO), str(PAINTING), 1.0, False, 1.0, 0.5, 0.5)
    assert "prepared" not in other  # another painting: the model's own sliders
    with page._tuning:
        assert "try again" in page.prepare(str(PHOTO), str(monet))


def test_the_page_prepares_each_new_pair(tmp_path: Path) -> None:
    """With a model on a base network the page's "prepare each new photo and painting" box starts ticked (unticked
    with auto_prepare=False), and it prepares on page load, on a new photo or painting and when ticked."""
    pytest.importorskip("gradio")
    from adjustable_style.ui import build_app

    st = Stylizer.load("default", device="cpu")
    for on in (True, False):
        config = build_app(st, preview_size=64, full_size=96, auto_prepare=on).get_config_file()
        auto = next(c for c in config["components"] if c["props"].get("elem_id") == "auto-prepare")
        assert auto["props"]["visible"] is True and auto["props"]["value"] is on
        assert re.search(r"about \d+ s the first time", auto["props"]["label"])
    deps = {d["id"]: d for d in config["dependencies"]}

    def root(d: dict) -> tuple:  # the event that starts the chain a dependency is in
        while d["targets"] == [(None, "then")]:
            d = deps[d["trigger_after"]]
        return tuple(d["targets"][0])

    starts = {root(d) for d in deps.values() if d["api_name"].startswith("prepare_new")}
    kinds = {by_id_type(config, cid): event for cid, event in starts}
    assert kinds == {None: "load", "file": "upload", "gallery": "select", "checkbox": "input"}, starts
    assert (auto["id"], "input") in starts


def by_id_type(config: dict, cid: int | None) -> str | None:
    """The type of component ``cid`` of a page's config (None for the page itself, which fires "load")."""
    return next((c["type"] for c in config["components"] if c["id"] == cid), None)
