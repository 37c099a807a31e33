"""Evaluate a pair preparation fitted against the distilled loss network of ``distill_vgg.py`` instead of VGG19.

Only the fit uses the student (its objective: the model's loss, schema and EMA, with the student's features);
``evaluate`` measures everything with VGG19 as always. Same evaluation as ``prep_candidate.sh``.

    python scripts/research/prep_slim_vgg.py STUDENT_DIR OUT "steps=3"      # overrides of the quick fit
    BASE=medium python scripts/research/prep_slim_vgg.py STUDENT_DIR OUT ""
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path

import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from distill_vgg import LowRankVGG  # noqa: E402

import adjustable_style.prepare as prep_mod  # noqa: E402
from adjustable_style.cli import main  # noqa: E402
from adjustable_style.losses import PerceptualLoss  # noqa: E402
from adjustable_style.stylizer import Stylizer  # noqa: E402

student_dir, out, overrides = sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else ""
base = os.environ.get("BASE", "quick")
prep_mod.PRESETS["quick"] = replace(prep_mod.PRESETS[base], **eval(f"dict({overrides})"))  # research: trusted input
print(prep_mod.PRESETS["quick"], flush=True)
state = load_file(Path(student_dir) / "student.safetensors")
r3, r4 = state["down.3_1.weight"].shape[0], state["down.4_1.weight"].shape[0]
_orig = Stylizer.prepare
_losses: dict[int, PerceptualLoss] = {}


def slim_loss(st: Stylizer) -> PerceptualLoss:
    if id(st) not in _losses:
        base = st.exported.loss_module()
        student = LowRankVGG(base.vgg, r3, r4)
        student.load_state_dict(state)
        student.requires_grad_(False)
        loss = PerceptualLoss(base.schema, student, ema_decay=base.ema_decay, tv_weight=base.tv_weight)
        loss.set_ema(base.ema.clone(), float(base.ema_tv))
        _losses[id(st)] = loss.eval()
    return _losses[id(st)]


def prepare(self, *args, **kwargs):
    saved = self.exported.loss_module()
    self.exported._loss = slim_loss(self)
    try:
        return _orig(self, *args, **kwargs)
    finally:
        self.exported._loss = saved


Stylizer.prepare = prepare
torch.set_num_threads(1)
args = ["evaluate", "--pairs", "16", "--slider-pairs", os.environ.get("SLIDER_PAIRS", "8"), "--prepare", "quick"]
args += ["--gatys-pairs", "0", "--no-peer", "--threads", "1", "-o", out]
raise SystemExit(main(args))
