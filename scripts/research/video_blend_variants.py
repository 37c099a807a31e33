"""Stabiliser blend variants measured on video_footage.py's clips (research; the shipped stabiliser is unchanged).

Each variant is a FlickerStabiliser whose blend/restoration step (``combine``) differs: linear blend + spectrum
restoration with a weaker gain (``pw``), per-channel histogram matching to the per-frame output, Laplacian-band
histogram matching, and "patch refresh" (``sel=(fraction, cell, feather)``: each frame takes the per-frame output in
smooth random blobs covering ``fraction`` of the frame, seeded by frame index, and the warped previous output
elsewhere). Results and what they say: docs/video.md, "Blend variants".

    python scripts/research/video_blend_variants.py cache   # per-frame outputs of every clip (~10 min, one core)
    python scripts/research/video_blend_variants.py run     # the variants of the docs' table
"""

# ruff: noqa: E402
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import video_flicker as vfl
import video_footage as vf

from adjustable_style.flicker import FlickerStabiliser, _box, _power, pan_zoom_clip, warping_error
from adjustable_style.flow import flow_warping_error
from adjustable_style.image import load_image
from adjustable_style.measure import ClipLoss
from adjustable_style.stylizer import Stylizer
from adjustable_style.video import Keyframes, stylize_frames

CACHE = Path("/tmp/video_blend_variants.pt")


def make_cache(st: Stylizer) -> None:
    out = {"footage": {}, "clean": {}}
    for name, clip in vf.make_clips(16, (240, 320)).items():
        est = vf.estimated(clip.frames)
        for p in vf.STYLES:
            pf = torch.cat(list(stylize_frames(st, clip.frames.split(1), vf.EX / p, Keyframes(st, None, 24))))
            out["footage"][(name, p)] = dict(frames=clip.frames, flows=clip.flows, masks=clip.masks, est=est, pf=pf)
    for photo, painting in vfl.PAIRS:
        frames, motions = pan_zoom_clip(load_image(vfl.EX / photo), 16, (240, 320))
        pf = torch.cat(list(stylize_frames(st, frames.split(1), vfl.EX / painting, Keyframes(st, None, 24))))
        out["clean"][(photo, painting)] = dict(frames=frames, motions=motions, pf=pf)
    torch.save(out, CACHE)


def restore_pow(image, reference, detail=17, smooth=7, pw=1.0):
    """restore_spectrum with the gain raised to ``pw`` (1: the shipped restoration)."""
    low = _box(image, detail)
    fine = image - low
    spectrum = torch.fft.rfft2(fine)
    wanted = _power(torch.fft.rfft2(reference - _box(reference, detail)), smooth)
    gain = (wanted / _power(spectrum, smooth).clamp_min(1e-12)) ** (0.5 * pw)
    return low + torch.fft.irfft2(spectrum * gain.clamp(max=4.0), s=fine.shape[-2:])


def hist_match(x, ref):
    """Per channel: x's values replaced by ref's at the same rank."""
    c = x.shape[1]
    xf, rf = x.reshape(c, -1), ref.reshape(c, -1)
    out = torch.empty_like(xf)
    out.scatter_(1, xf.argsort(1), rf.sort(1)[0])
    return out.reshape(x.shape)


class Variant(FlickerStabiliser):
    def __init__(self, post="spec", pw=1.0, sel=None, **kw):
        super().__init__(**kw)
        self.sel, self.post, self.pw = sel, post, pw

    def weight(self, styled):
        if self.sel is None:
            return self.blend
        f, cell, feather = self.sel
        h, w = styled.shape[-2:]
        g = torch.Generator().manual_seed(1000 + self.index)
        n = torch.rand(1, 1, h // cell + 3, w // cell + 3, generator=g)
        n = F.interpolate(n, scale_factor=cell, mode="bicubic", align_corners=False)[
            ..., cell : cell + h, cell : cell + w
        ]
        fresh = ((torch.quantile(n.flatten()[::7], f) - n) / feather + 0.5).clamp(0, 1)
        return 1 - fresh + self.blend * fresh

    def combine(self, styled, past_out, m):
        mixed = styled + self.weight(styled) * m * (past_out - styled)
        if self.post == "none":
            return mixed
        if self.post == "hist":
            return hist_match(mixed, styled)
        r = restore_pow(mixed, styled, self.detail, pw=self.pw)
        return hist_match(r, styled) if self.post == "spec+hist" else r


def evaluate(st, cache, make, label):
    """One line: per footage clip, warping error (true / DIS flow) and worst style layer, each / per-frame; then the
    clean pans."""
    t0, nc, res, clean = time.time(), len(st.schema.content), {}, []

    def run(frames, pf):
        stab = make()
        return torch.cat([stab(f[None], y[None]) for f, y in zip(frames, pf)])

    for (name, style), d in cache["footage"].items():
        out, loss = run(d["frames"], d["pf"]), ClipLoss(st, d["frames"], vf.EX / style)
        worst = max((loss(out) / loss(d["pf"])).tolist()[nc:])
        e0 = flow_warping_error(out, d["flows"], d["masks"]) / flow_warping_error(d["pf"], d["flows"], d["masks"])
        e1 = flow_warping_error(out, *d["est"]) / flow_warping_error(d["pf"], *d["est"])
        res.setdefault(name, []).append((e0, e1, worst))
    for (_, style), d in cache["clean"].items():
        out, loss = run(d["frames"], d["pf"]), ClipLoss(st, d["frames"], vfl.EX / style)
        e = warping_error(out, d["motions"]) / warping_error(d["pf"], d["motions"])
        clean.append((e, max((loss(out) / loss(d["pf"])).tolist()[nc:])))
    s = f"{label:44}"
    for name, v in res.items():
        s += f" | {name[:5]} {sum(x[0] for x in v) / len(v):.3f}/{sum(x[1] for x in v) / len(v):.3f} "
        s += f"{max(x[2] for x in v):.3f}"
    s += f" || clean {sum(x[0] for x in clean) / 3:.3f} {max(x[1] for x in clean):.3f} [{time.time() - t0:.0f} s]"
    print(s, flush=True)


VARIANTS = {
    "blend 0.3 + restore (shipped)": lambda: Variant(blend=0.3),
    "blend 0.4 + restore": lambda: Variant(blend=0.4),
    "blend 0.4, no restoration": lambda: Variant(post="none", blend=0.4),
    "blend 0.4, histogram only": lambda: Variant(post="hist", blend=0.4),
    "blend 0.35, restore (detail 9) + histogram": lambda: Variant(post="spec+hist", blend=0.35, detail=9),
    "patch refresh 45 %, 32 px, hist + weak restore": lambda: Variant(
        post="spec+hist", blend=1e-3, sel=(0.45, 32, 0.1), detail=3, pw=0.3
    ),
    "blend 0.4, restore (detail 9) + histogram": lambda: Variant(post="spec+hist", blend=0.4, detail=9),
    "blend 0.45 + restore": lambda: Variant(blend=0.45),
    # (fraction, blob px, feather): sharper seams, larger blobs, more or less refreshed, with and without the post
    **{
        f"patch refresh {f:.0%}, {cell} px, feather {fe}, {post}": (
            lambda f=f, cell=cell, fe=fe, post=post: Variant(post=post, blend=1e-3, sel=(f, cell, fe), detail=3, pw=0.3)
        )
        for f, cell, fe, post in (
            (0.40, 32, 0.1, "spec+hist"),
            (0.45, 32, 0.03, "spec+hist"),
            (0.45, 64, 0.03, "spec+hist"),
            (0.40, 64, 0.03, "spec+hist"),
            (0.50, 64, 0.03, "spec+hist"),
            (0.45, 64, 0.005, "spec+hist"),
            (0.45, 64, 0.005, "none"),
            (0.45, 64, 0.03, "none"),
        )
    },
}


def main() -> None:
    torch.set_num_threads(1)
    st = Stylizer.load("default", device="cpu", backend="torch")
    if sys.argv[1:] == ["cache"]:
        make_cache(st)
        return
    cache = torch.load(CACHE, weights_only=False)  # written by this script's ``cache`` step
    for label, make in VARIANTS.items():
        evaluate(st, cache, make, label)


if __name__ == "__main__":
    main()
