"""Many users at once: N clients each move a slider at the same moment; how long until each gets its preview?

Starts ``adjustable-style serve`` on loopback in its own process (so the clients do not share its interpreter),
starts N client threads and releases them together: each sends one preview request over gradio's HTTP API (its
own slider values, the default pair), reads the event stream until its result arrives and fetches the image,
as a browser would. Prints p50/p90/max of the N latencies per round, and
the machine. To measure another version of the code, point PYTHONPATH at its ``src`` folder.

Usage:
    python scripts/research/bench_concurrent.py [--clients 50] [--rounds 3] [--model default] [--backend torch]
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time

import torch


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _preview_api(url: str) -> tuple[str, int]:
    """(api_name of the first slider's live preview, number of style sliders)."""
    import json
    import urllib.request

    with urllib.request.urlopen(f"{url.rstrip('/')}/config", timeout=30) as r:
        config = json.load(r)
    sliders = [c["id"] for c in config["components"] if c["type"] == "slider"]
    for d in config["dependencies"]:
        if [sliders[0], "input"] in [list(t) for t in d["targets"]]:
            return d["api_name"], len(sliders) - 1  # the last slider is the style strength
    raise RuntimeError("no preview event found on the page")


def _wait_for(url: str, server: subprocess.Popen) -> tuple[str, int]:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited: {server.stderr.read()[-2000:] if server.stderr else ''}")
        try:
            return _preview_api(url)
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"no server at {url} after 300 s")


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            name = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        name = ""
    return f"{name or platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def _predict(url: str, api_name: str, data: list) -> None:
    """One request as a browser-like client would make it, over gradio's HTTP API (no gradio_client: 50 of
    those in one process cost more CPU than the server): POST the inputs, read the event stream until the result
    arrives, fetch the preview image."""
    import json
    import urllib.request

    base = f"{url.rstrip('/')}/gradio_api/call/{api_name}"
    req = urllib.request.Request(
        base, data=json.dumps({"data": data}).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=600) as r:
        event_id = json.load(r)["event_id"]
    event = ""
    with urllib.request.urlopen(f"{base}/{event_id}", timeout=600) as r:
        for raw in r:
            line = raw.decode().strip()
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event in ("complete", "error"):
                if event == "error":
                    raise RuntimeError(f"server error: {line}")
                image = json.loads(line[5:])[0]
                with urllib.request.urlopen(image["url"], timeout=600) as img:
                    img.read()
                return
    raise RuntimeError("the event stream ended without a result")


def run_round(url: str, api_name: str, n_layers: int, clients: int, seed: int) -> list[float]:
    start = threading.Barrier(clients)
    times: list[float] = [0.0] * clients
    errors: list[BaseException] = []

    def one(k: int) -> None:
        g = torch.Generator().manual_seed(seed * 1000 + k)
        values = [round(float(v), 2) for v in torch.rand(n_layers, generator=g)]
        start.wait()
        t0 = time.perf_counter()
        try:
            _predict(url, api_name, [1.0, False, *values])
        except BaseException as e:
            errors.append(e)
        times[k] = time.perf_counter() - t0

    threads = [threading.Thread(target=one, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"{len(errors)} of {clients} requests failed; first: {errors[0]!r}")
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--backend", default="torch", choices=("torch", "onnxruntime"))
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "adjustable_style",
            "serve",
            "--model",
            args.model,
            "--backend",
            args.backend,
            "--device",
            "cpu",
            "--port",
            str(port),
            "-q",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        api_name, n_layers = _wait_for(url, server)
        run_round(url, api_name, n_layers, 2, seed=999)  # warm-up: first renders, connections
        print(
            f"{args.clients} clients, one preview each, released together; model {args.model}, backend "
            f"{args.backend}, torch threads {torch.get_num_threads()}; {_cpu()}; load average {os.getloadavg()[0]:.1f}"
        )
        print(f"{'round':>5} {'p50 s':>7} {'p90 s':>7} {'max s':>7}")
        every: list[float] = []
        for r in range(args.rounds):
            t = sorted(run_round(url, api_name, n_layers, args.clients, seed=r))
            every += t
            print(f"{r + 1:>5} {statistics.median(t):>7.2f} {statistics.quantiles(t, n=10)[-1]:>7.2f} {t[-1]:>7.2f}")
        print(
            f"{'all':>5} {statistics.median(every):>7.2f} "
            f"{statistics.quantiles(every, n=10)[-1]:>7.2f} {max(every):>7.2f}"
        )
    finally:
        server.terminate()
        server.wait(timeout=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
