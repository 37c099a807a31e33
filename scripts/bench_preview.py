"""How long from a slider move to a new preview? Prints a small table.

Measures, for one content/style pair:

* ``stylizer``: ``Stylizer.stylize`` at preview size, content already decoded, style embedding cached
  (the model alone: Λ + T);
* ``callback``: ``Studio.preview``, the function the page calls (adds resizing bookkeeping and PIL conversion);
* ``http``: the same event through the running gradio server's HTTP API with ``gradio_client`` (queue, PNG
  encoding, server-sent events, file download on loopback); skipped without gradio_client;
* ``browser``: a click on a slider in headless Chromium until the new preview ``<img>`` has loaded
  (``--browser``; needs playwright and the system's chromium);
* ``full``: the full-size render done on release, for comparison.

Usage:
    python scripts/bench_preview.py --model models/quick [--n 20] [--browser] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from adjustable_style.image import load_image, resize
from adjustable_style.stylizer import Stylizer
from adjustable_style.ui.callbacks import Studio, example_images

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


def _values(n: int) -> list[float]:
    return [round(0.05 + 0.9 * i / max(n - 1, 1), 2) for i in range(n)]  # distinct slider positions


def _time(fn: Callable[[float], object], values: list[float], warmup: int = 2) -> list[float]:
    for v in values[:warmup]:
        fn(v)
    out = []
    for v in values:
        t0 = time.perf_counter()
        fn(v)
        out.append(time.perf_counter() - t0)
    return out


def _row(name: str, times: list[float], note: str = "") -> str:
    if not times:
        return f"{name:<10} {'-':>4} {'-':>9} {'-':>9}  {note}"
    p90 = statistics.quantiles(times, n=10)[-1] if len(times) >= 2 else times[0]
    return f"{name:<10} {len(times):>4} {statistics.median(times) * 1000:>7.0f}ms {p90 * 1000:>7.0f}ms  {note}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _http(app, n: int, layer_index: int) -> tuple[list[float], str]:
    try:
        from gradio_client import Client
    except ImportError:
        return [], "skipped: pip install gradio_client"
    config = app.get_config_file()
    sliders = [c["id"] for c in config["components"] if c["type"] == "slider"]
    fn_index = next(
        i
        for i, d in enumerate(config["dependencies"])
        if [sliders[layer_index], "input"] in [list(t) for t in d["targets"]]
    )
    api_name = config["dependencies"][fn_index].get("api_name")
    downloads = tempfile.mkdtemp(prefix="bench-preview-")
    client = Client(app.local_url, verbose=False, download_files=downloads, analytics_enabled=False)
    # The API exposes the non-state inputs: strength, preserve colour, then one value per style slider.
    n_layers = len(sliders) - 1

    def call(v: float) -> object:
        weights = [1.0] * n_layers
        weights[layer_index] = v
        return client.predict(1.0, False, *weights, api_name=f"/{api_name}")

    try:
        return _time(call, _values(n)), f"gradio_client → /{api_name} (default pair, loopback, PNG download)"
    finally:
        client.close()
        shutil.rmtree(downloads, ignore_errors=True)


def _browser(url: str, n: int, layer: str, preview_size: int, chromium: str) -> tuple[list[float], str]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return [], "skipped: pip install playwright"
    if not Path(chromium).is_file():
        return [], f"skipped: no chromium at {chromium}"
    js = (
        "() => { const i = document.querySelector('#result img'); "
        "return i && i.complete ? [i.src, i.naturalWidth] : null; }"
    )
    times = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1150})
        page.set_default_timeout(120_000)
        page.goto(url)
        page.wait_for_function(f"() => ({js})() !== null")
        box = page.locator(f"#w-{layer} input[type=range]").bounding_box()
        for v in _values(n):
            before = page.evaluate(js)[0]
            x, y = box["x"] + v * box["width"], box["y"] + box["height"] / 2
            page.mouse.move(x, y)
            t0 = time.perf_counter()
            page.mouse.down()  # the press moves the slider (input event → preview)
            page.wait_for_function(
                f"() => {{ const r = ({js})(); return r && r[0] !== {before!r} && r[1] <= {preview_size}; }}"
            )
            times.append(time.perf_counter() - t0)
            page.mouse.up()  # release → full render; wait for it so runs do not overlap
            page.wait_for_function(f"() => {{ const r = ({js})(); return r && r[1] > {preview_size}; }}")
        browser.close()
    return times, "mouse press on the slider → new preview <img> loaded (headless chromium)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=os.environ.get("ADJUSTABLE_STYLE_MODEL") or "default")
    parser.add_argument("--content", default=None, help="default: the bundled photo_cat.jpg")
    parser.add_argument("--style", default=None, help="default: the bundled painting_hokusai_great_wave.jpg")
    parser.add_argument("--n", type=int, default=20, help="slider values per measurement (default 20)")
    parser.add_argument("--preview-size", type=int, default=256)
    parser.add_argument("--full-size", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--no-http", action="store_true", help="skip the gradio server measurements")
    parser.add_argument("--browser", action="store_true", help="also time a real slider press in headless chromium")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    photos, paintings = example_images()
    content = Path(args.content) if args.content else next(p for p in photos if p.name == "photo_cat.jpg")
    style = (
        Path(args.style) if args.style else next(p for p in paintings if p.name == "painting_hokusai_great_wave.jpg")
    )
    st = Stylizer.load(args.model, device="cpu")
    layer = st.style_layers[-1]
    studio = Studio(st, preview_size=args.preview_size, full_size=args.full_size)
    small = resize(load_image(content, max_size=args.full_size), max_size=args.preview_size)
    base = st.default_weights()
    st.embed(style)  # cached from here on, as in the page

    def stylize(v: float) -> object:
        return st.stylize(small, style, {**base, layer: v}, max_size=None)

    def callback(v: float) -> object:
        return studio.preview(str(content), str(style), 1.0, False, *({**base, layer: v}.values()))

    def full(v: float) -> object:
        return studio.full(str(content), str(style), 1.0, False, *({**base, layer: v}.values()))

    h, w = small.shape[-2:]
    rows = [
        _row("stylizer", _time(stylize, _values(args.n)), f"Stylizer.stylize {w}x{h}, cached embedding"),
        _row("callback", _time(callback, _values(args.n)), "Studio.preview (what the page calls)"),
    ]
    full_times = _time(full, _values(max(3, args.n // 4)), warmup=1)
    if not args.no_http:
        from adjustable_style.ui import build_app

        app = build_app(st, preview_size=args.preview_size, full_size=args.full_size)
        app.launch(
            server_name="127.0.0.1", server_port=_free_port(), prevent_thread_lock=True, quiet=True, ssr_mode=False
        )
        try:
            rows.append(_row("http", *_http(app, args.n, len(st.style_layers) - 1)))
            if args.browser:
                rows.append(
                    _row(
                        "browser",
                        *_browser(app.local_url, max(3, args.n // 4), layer, args.preview_size, args.chromium),
                    )
                )
        finally:
            app.close()
    fh, fw = load_image(content, max_size=args.full_size).shape[-2:]
    rows.append(_row("full", full_times, f"Studio.full {fw}x{fh} + PNG for download (on release)"))

    print(
        f"model {args.model}; {content.name} x {style.name}; slider {layer}; torch threads "
        f"{torch.get_num_threads()}, {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}"
    )
    print(f"{'what':<10} {'n':>4} {'median':>9} {'p90':>9}  how")
    for r in rows:
        print(r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
