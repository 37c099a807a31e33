"""The web page in a real browser: `adjustable-style serve` on loopback, headless Chromium driven by Playwright.

Needs the system's Chromium (Debian: ``apt-get install chromium``; ``ADJUSTABLE_STYLE_CHROMIUM`` overrides the
path) and the ``playwright`` Python package (its own browser downloads are not used). Skips when either is
missing. With ``ADJUSTABLE_STYLE_SCREENSHOT=1`` the screenshot is also copied to ``docs/ui_screenshot.png``;
``ADJUSTABLE_STYLE_UI_TEST_MODEL=DIR`` serves that model instead of the 2-step test model.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
PHOTO = EXAMPLES / "photo_rocket_launch.jpg"  # 512x342: preview 256x171, full size 512x342
STYLE_NAME = "painting_kandinsky_small_worlds_i"
PREVIEW, FULL = 256, 1024  # build_app's defaults, which `serve` uses
CHROMIUM = os.environ.get("ADJUSTABLE_STYLE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
RENDER_TIMEOUT_MS = 90_000  # a full render on a busy 2-core CPU takes seconds, not minutes
PREVIEW_TIMEOUT_MS = 45_000

pytest.importorskip("gradio", reason="the web page needs gradio (pip install 'adjustable-style[ui]')")
sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests need playwright (pip install playwright)")
if not Path(CHROMIUM).is_file():
    pytest.skip(
        f"no Chromium at {CHROMIUM} (apt-get install chromium, or set ADJUSTABLE_STYLE_CHROMIUM)",
        allow_module_level=True,
    )

# The <img> of the result panel, as [src, naturalWidth, naturalHeight] once loaded (else null).
RESULT_JS = """() => { const i = document.querySelector('#result img');
  return i && i.complete && i.naturalWidth > 0 ? [i.src, i.naturalWidth, i.naturalHeight] : null; }"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def model_dir(request: pytest.FixtureRequest) -> Path:
    """The tiny test model, or ``$ADJUSTABLE_STYLE_UI_TEST_MODEL`` (a real model, for a README screenshot)."""
    override = os.environ.get("ADJUSTABLE_STYLE_UI_TEST_MODEL")
    return Path(override) if override else request.getfixturevalue("tiny_model_dir")


@pytest.fixture(scope="module")
def server(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`adjustable-style serve` with the model on a free loopback port; yields its URL."""
    port = _free_port()
    tmp = tmp_path_factory.mktemp("ui_server")
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_TEMP_DIR": str(tmp / "gradio")}
    log = open(tmp / "server.log", "w+")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "adjustable_style",
            "serve",
            "--model",
            str(model_dir),
            "--port",
            str(port),
            "--device",
            "cpu",
            "--backend",
            "torch",
            "--max-upload-mb",
            "5",
            "--no-prepare",
            "-q",
        ],  # the references below are torch's, of the model's own sliders
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=tmp,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                log.seek(0)
                pytest.fail(f"server exited with {proc.returncode}:\n{log.read()[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("server did not answer within 120 s")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture()
def page(server: str) -> Iterator[sync_api.Page]:
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            pg = browser.new_page(viewport={"width": 1400, "height": 1150})
            pg.set_default_timeout(RENDER_TIMEOUT_MS)
            pg.goto(server, wait_until="domcontentloaded")
            pg.wait_for_function(RESULT_JS)  # the page renders the default pair on load
            yield pg
        finally:
            browser.close()


def _wait_result(
    page: sync_api.Page,
    *,
    not_src: str | None = None,
    width: int | None = None,
    status: str | None = None,
    timeout_ms: float | None = None,
) -> list:
    """Wait until the result image is loaded (and differs from ``not_src`` / has ``width``), then return it."""
    cond = [f"r[0] !== {not_src!r}" if not_src else "true", f"r[1] === {width}" if width else "true"]
    status_js = f"document.querySelector('#status').innerText.includes({status!r})" if status else "true"
    page.wait_for_function(
        f"() => {{ const r = ({RESULT_JS})(); return r && {' && '.join(cond)} && {status_js}; }}", timeout=timeout_ms
    )
    return page.evaluate(RESULT_JS)


def _pixels(page: sync_api.Page, src: str) -> np.ndarray:
    body = page.request.get(src).body()
    return np.asarray(Image.open(io.BytesIO(body)).convert("RGB"), dtype=np.int16)


def _status_weights(page: sync_api.Page) -> dict[str, float]:
    text = page.inner_text("#status")
    return {k: float(v) for k, v in re.findall(r"(relu\d_\d)=(\d\.\d\d)", text)}


def test_dragging_a_slider_drives_the_preview(page: sync_api.Page, model_dir: Path, tmp_path: Path) -> None:
    from adjustable_style.image import load_image, resize, tensor_to_pil
    from adjustable_style.stylizer import Stylizer

    # Upload a photo through the file input, pick a painting from the example gallery.
    first = page.evaluate(RESULT_JS)[0]
    page.set_input_files("#content-upload input[type=file]", str(PHOTO))
    after_upload = _wait_result(page, not_src=first, width=512, status="512×342")[0]
    page.locator("#style-examples .thumbnail-item", has_text=STYLE_NAME).click()
    before = _wait_result(page, not_src=after_upload, width=512)[0]
    assert _status_weights(page) == {"relu2_2": 1.0, "relu3_4": 1.0, "relu4_4": 1.0}

    # Real mouse drag on the relu4_4 slider: press on its thumb (value 1 = right end), move left, hold.
    track = page.locator("#w-relu4_4 input[type=range]")
    box = track.bounding_box()
    assert box is not None
    y, x = box["y"] + box["height"] / 2, box["x"] + box["width"] - 3
    page.mouse.move(x, y)
    page.mouse.down()
    for k in range(1, 9):
        page.mouse.move(x - k * 0.09 * box["width"], y, steps=2)
        time.sleep(0.03)
    value = float(page.input_value("#w-relu4_4 input[type=number]"))
    assert 0.0 < value < 0.5, f"the drag did not move the slider (value {value})"
    # While the button is still held, the preview must follow: a new, smaller image at the dragged value.
    preview_src = _wait_result(
        page, not_src=before, width=PREVIEW, status=f"relu4_4={value:.2f}", timeout_ms=PREVIEW_TIMEOUT_MS
    )[0]
    assert page.evaluate(RESULT_JS)[1] == PREVIEW

    # The preview is the model's output at the slider's value (not at 1, not a stale image). The test model
    # trained for 2 steps, so α moves few pixels: compare exact-pixel agreement with both references.
    # References straight from the Stylizer, with the page's content pipeline (decode at FULL, shrink to PREVIEW).
    shown = _pixels(page, preview_src)
    st = Stylizer.load(model_dir, device="cpu")
    content = resize(load_image(PHOTO, max_size=FULL), max_size=PREVIEW)
    style = EXAMPLES / f"{STYLE_NAME}.jpg"

    def reference(w: float) -> np.ndarray:
        y = st.stylize(content, style, {"relu2_2": 1.0, "relu3_4": 1.0, "relu4_4": w}, max_size=None)
        return np.asarray(tensor_to_pil(y), dtype=np.int16)

    ref_value, ref_one = reference(value), reference(1.0)
    assert shown.shape == ref_value.shape
    sensitive = int((ref_value != ref_one).sum())
    assert sensitive > 0, "the test model ignores relu4_4, so this test cannot tell the images apart"
    miss_value, miss_one = int((shown != ref_value).sum()), int((shown != ref_one).sum())
    assert miss_value < miss_one, (
        f"the preview does not follow the slider: {miss_value} values differ from the model's output at "
        f"relu4_4={value:.2f}, {miss_one} from its output at relu4_4=1"
    )
    assert int(np.abs(shown - ref_value).max()) <= 2

    # Letting go renders the full size.
    page.mouse.up()
    full = _wait_result(page, not_src=preview_src, width=512, status=f"relu4_4={value:.2f}")
    assert full[2] == 342 and "512×342 px" in page.inner_text("#status")
    assert page.locator("#download").is_enabled()

    shot = tmp_path / "ui_screenshot.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get("ADJUSTABLE_STYLE_SCREENSHOT") == "1":
        (ROOT / "docs").mkdir(exist_ok=True)
        shutil.copyfile(shot, ROOT / "docs" / "ui_screenshot.png")


def test_bad_upload_refused_and_variation_click_loads_weights(page: sync_api.Page, tmp_path: Path) -> None:
    shown = page.evaluate(RESULT_JS)[0]
    fake = tmp_path / "holiday.jpg"
    fake.write_text("this is not a picture")
    page.set_input_files("#style-upload input[type=file]", str(fake))
    page.wait_for_function("() => document.querySelector('#status').innerText.includes('Refused')")
    assert "'holiday.jpg'" in page.inner_text("#status") and "not a recognised image" in page.inner_text("#status")
    assert page.evaluate(RESULT_JS)[0] == shown, "a refused upload must leave the result alone"

    page.click("#variations-button")
    page.wait_for_function("() => document.querySelectorAll('#variations .thumbnail-item img').length === 6")
    item = page.locator("#variations .thumbnail-item").nth(2)
    caption = item.locator(".caption-label").inner_text()
    wanted = {k: float(v) for k, v in re.findall(r"(relu\d_\d)=(\d\.\d\d)", caption)}
    assert len(wanted) == 3
    item.click()
    for layer, v in wanted.items():
        page.wait_for_function(
            f"() => Math.abs(parseFloat(document.querySelector('#w-{layer} input[type=number]').value) - {v}) < 0.006"
        )
    _wait_result(page, not_src=shown, status=caption.split()[0])
    assert _status_weights(page) == pytest.approx(wanted, abs=0.006)
