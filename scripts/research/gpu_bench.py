"""Frames per second of the bundled model on a GPU: float32 vs bf16 autocast (channels_last), one frame and batches.

Times the transformer with a cached style embedding (what a video or a slider drag runs per frame) on a real photo
resized to the given size, after warm-up, with CUDA synchronised around the timed loop; and the end-to-end
``Stylizer.stylize_alphas`` call (host image in, host image out). Prints a Markdown table and writes JSON.

Usage:
    python scripts/research/gpu_bench.py [--size 1920x1080] [--model default] [--iters 30] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from adjustable_style.image import load_image
from adjustable_style.stylizer import Stylizer

PHOTO, PAINTING = "examples/photo_cat.jpg", "examples/painting_kandinsky_small_worlds_i.jpg"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn, device: torch.device, iters: int) -> float:
    for _ in range(3):
        fn()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    _sync(device)
    return (time.perf_counter() - t0) / iters


def run(size: tuple[int, int], model: str, iters: int, device: str) -> list[dict]:
    w, h = size
    rows = []
    for autocast in (False, True):
        st = Stylizer.load(model, device=device, autocast=autocast)
        dev = st.device
        photo = F.interpolate(load_image(PHOTO), size=(h, w), mode="bilinear", antialias=True, align_corners=False)
        e = st.embed(PAINTING)
        alpha = st.check_weights({n: 0.5 for n in st.style_layers})
        for batch in (1, 8):
            c = photo.to(dev).expand(batch, -1, -1, -1).contiguous()
            if dev.type == "cuda":
                c = c.contiguous(memory_format=torch.channels_last)
            a, eb = alpha.to(dev).expand(batch, -1), e.expand(batch, -1)

            def net(c=c, eb=eb, a=a, st=st) -> None:
                with torch.inference_mode(), st._autocast():
                    st.model(c, eb, a)

            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats(dev)
            s = _time(net, dev, iters)
            peak = torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else float("nan")
            rows.append(
                {
                    "size": f"{w}x{h}",
                    "precision": "bf16 autocast" if st.autocast else "float32",
                    "batch": batch,
                    "what": "network (GPU tensor)",
                    "ms_per_frame": 1e3 * s / batch,
                    "fps": batch / s,
                    "peak_gib": peak,
                }
            )
        s = _time(
            lambda st=st, photo=photo, alpha=alpha: st.stylize_alphas(photo, PAINTING, alpha, max_size=None), dev, iters
        )
        rows.append(
            {
                "size": f"{w}x{h}",
                "precision": "bf16 autocast" if st.autocast else "float32",
                "batch": 1,
                "what": "stylize_alphas (host in/out)",
                "ms_per_frame": 1e3 * s,
                "fps": 1 / s,
                "peak_gib": float("nan"),
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="1920x1080", help="W x H of the frame (default 1920x1080)")
    ap.add_argument("--model", default="default")
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    rows = run((w, h), args.model, args.iters, args.device)
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    print(f"device: {name}; torch {torch.__version__}")
    print("| frame | precision | batch | what | ms / frame | frames / s | peak GPU memory (GiB) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['size']} | {r['precision']} | {r['batch']} | {r['what']} | {r['ms_per_frame']:.2f} "
            f"| {r['fps']:.1f} | {r['peak_gib']:.2f} |"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": name, "torch": torch.__version__, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
