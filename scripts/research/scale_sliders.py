"""Scale each style slider's effect by a gain and write the model as a new export.

Λ's bilinear Δ gives slider l the term (2α_l − 1)·head_l(h); multiplying head_l's weights and bias by g_l makes
the slider's move of γ, β g_l times as large (α = 0.5 is unchanged: every image there stays the same). Choose the
gains with ``slider_agreement.py judge --gain`` so each slider moves the VGG statistics about as far as L-BFGS on
the same weights does (magnitude ratio near 1, within 0.5–2×).

``--low``/``--high`` instead size each half of a slider apart (``ModelConfig.slider_gain_low/high``, stored in the
export's config; the weights stay as they are): choose them with ``slider_agreement.py judge --lo --hi`` so that
each half moves the statistics as far as L-BFGS does from every slider at the middle.

    python scripts/research/scale_sliders.py --model M --gain 1.8,2.5,1.8 --out runs/scaled
    python scripts/research/scale_sliders.py --model M --low 1,1.3,1.4 --high 0.6,0.3,0.4 --out runs/halves
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import torch

from adjustable_style.export import write_export
from adjustable_style.model_files import resolve_model
from adjustable_style.stylizer import Stylizer


def scale_sliders(st: Stylizer, gains: list[float]) -> None:
    """Multiply each style slider's bilinear head of Δ (the (2α_l − 1) term) by its gain, in place."""
    lam = st.model.conditioning
    head = lam.delta_params
    n_c = len(st.schema.content)
    if len(gains) != len(st.style_layers):
        raise SystemExit(f"error: give {len(st.style_layers)} gains ({', '.join(st.style_layers)}), got {len(gains)}")
    rows = head.out_features // lam.terms
    with torch.no_grad():
        for i, g in enumerate(gains):
            t = 1 + n_c + i
            head.weight[t * rows : (t + 1) * rows] *= g
            head.bias[t * rows : (t + 1) * rows] *= g


def write_model(st: Stylizer, source: str, recipe: str, out: Path) -> None:
    """Write ``st``'s model as an export in ``out`` with ``recipe`` appended to its config's "calibrated" list and
    the source model's LICENSE and NOTICE."""
    earlier = st.exported.config.get("calibrated", [])
    config = {**st.exported.config, "calibrated": [*(earlier if isinstance(earlier, list) else [earlier]), recipe]}

    def licence(folder: Path) -> list[str]:
        src = resolve_model(source)
        names = [n for n in ("LICENSE", "NOTICE") if (src / n).exists()]
        for n in names:
            shutil.copy(src / n, folder / n)
        return names

    write_export(config, st.model.state_dict(), out, extra=licence)


def set_half_gains(st: Stylizer, low: list[float], high: list[float]) -> None:
    """Store per-half gains of the style sliders in the model's config (``ModelConfig.slider_gain_low/high``; the
    content weight's entries stay 1) and in Λ; the weights are unchanged."""
    n_c = len(st.schema.content)
    if len(low) != len(st.style_layers) or len(high) != len(st.style_layers):
        raise SystemExit(f"error: give {len(st.style_layers)} gains per half ({', '.join(st.style_layers)})")
    model = dict(st.exported.config["model"])
    model["slider_gain_low"] = [1.0] * n_c + low
    model["slider_gain_high"] = [1.0] * n_c + high
    st.exported.config["model"] = model
    st.model.conditioning.half_gains.copy_(torch.tensor([model["slider_gain_low"], model["slider_gain_high"]]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--gain", default=None, help="one per style slider, e.g. 1.8,2.5,1.8 (both halves; weights)")
    ap.add_argument("--low", default=None, help="gains below the middle, one per style slider (config)")
    ap.add_argument("--high", default=None, help="gains above the middle, one per style slider (config)")
    ap.add_argument("--out", required=True, help="folder for the export (must not exist)")
    args = ap.parse_args()
    out = Path(args.out)
    if out.exists():
        raise SystemExit(f"error: {out} exists; give a new folder (nothing is overwritten)")
    if not args.gain and not (args.low and args.high):
        raise SystemExit("error: give --gain, or --low and --high")
    st = Stylizer.load(args.model, device="cpu", backend="torch")
    recipe = "scripts/research/scale_sliders.py"
    if args.gain:
        scale_sliders(st, [float(x) for x in args.gain.split(",")])
        recipe += f" --gain {args.gain}"
    if args.low and args.high:
        set_half_gains(st, [float(x) for x in args.low.split(",")], [float(x) for x in args.high.split(",")])
        recipe += f" --low {args.low} --high {args.high}"
    write_model(st, args.model, f"{recipe} on {args.model}", out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
