"""Scale each style slider's effect by a gain and write the model as a new export.

Λ's bilinear Δ gives slider l the term (2α_l − 1)·head_l(h); multiplying head_l's weights and bias by g_l makes
the slider's move of γ, β g_l times as large (α = 0.5 is unchanged: every image there stays the same). Choose the
gains with ``slider_agreement.py judge --gain`` so each slider moves the VGG statistics about as far as L-BFGS on
the same weights does (magnitude ratio near 1, within 0.5–2×).

    python scripts/research/scale_sliders.py --model M --gain 1.8,2.5,1.8 --out runs/scaled
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--gain", required=True, help="one per style slider, e.g. 1.8,2.5,1.8")
    ap.add_argument("--out", required=True, help="folder for the export (must not exist)")
    args = ap.parse_args()
    out = Path(args.out)
    if out.exists():
        raise SystemExit(f"error: {out} exists; give a new folder (nothing is overwritten)")
    st = Stylizer.load(args.model, device="cpu", backend="torch")
    gains = [float(x) for x in args.gain.split(",")]
    scale_sliders(st, gains)
    write_model(st, args.model, f"scripts/research/scale_sliders.py --gain {args.gain} on {args.model}", out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
