"""`adjustable-style video`: stylize a clip with slider keyframes (logic in ``adjustable_style.video``)."""

from __future__ import annotations

import argparse

from ..flicker import DEFAULT_BLEND, DEFAULT_STEADY_INPUT, FlickerStabiliser
from ..flow import FLOW_HINT
from ..video import parse_keyframes, stylize_video
from ..video_files import check_output as check_video_output
from ..video_files import probe
from .common import (
    WEIGHTS_HELP,
    check_adapter_for,
    existing,
    load_stylizer,
    model_args,
    say,
    size_value,
    strength_arg,
    warn_if_style_ignored,
    weights_arg,
)

KEYFRAMES_HELP = (
    "slider keyframes, e.g. '0s:relu2_2=0,relu4_4=1; 4s:relu2_2=1,relu4_4=0' (times in seconds, 4s, "
    "or frame numbers, 96f); α moves linearly between them; layers a keyframe leaves out take --style-weights"
)


def cmd_video(args: argparse.Namespace) -> int:
    weights = weights_arg(args.style_weights)
    keyframes = parse_keyframes(args.keyframes) if args.keyframes is not None else None
    strength, max_size = strength_arg(args.strength), size_value(args.size)
    video, style = existing(args.input, "video"), existing(args.style, "style")
    out = check_video_output(args.output, video)
    stabiliser = None
    if not args.no_stabilise:
        options = {k: v for k, v in (("blend", args.blend), ("steady_input", args.steady_input)) if v is not None}
        stabiliser = FlickerStabiliser(motion=args.motion, **options)  # checks --blend, --steady-input, --motion
        if stabiliser.motion == "affine" and args.motion == "auto":
            say(args, f"note: {FLOW_HINT} (stabilising with the global camera motion instead)")
    probe(video)  # a file that is not a video fails here, before the model loads
    warn_if_style_ignored(args)
    st = load_stylizer(args)
    check_adapter_for(st, args, style)
    r = stylize_video(
        st,
        video,
        style,
        out,
        weights=weights,
        keyframes=keyframes,
        strength=strength,
        max_size=max_size,
        preserve_color=args.preserve_color,
        stabilise=stabiliser,
        progress=not args.quiet,
    )
    say(
        args,
        f"wrote {r.path}: {r.frames} frames of {r.size[1]}x{r.size[0]} at {float(r.fps):.3g} fps "
        f"({r.frames_per_second:.2f} frames/s)",
    )
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "video",
        help="stylize a video, sliders keyframed over time (needs the [video] extra)",
        description="Stylize every frame of INPUT with STYLE and write OUT (.mp4, .mov or .mkv, H.264) with the same "
        "frame rate and frame count and the audio copied. Flicker is reduced by blending in the previous input and "
        "output, warped by the optical flow of the input, where the flow is trusted; scene cuts reset it "
        "(--no-stabilise: per-frame).",
    )
    p.add_argument("input", help="video file")
    p.add_argument("style", help="style image")
    p.add_argument("-o", "--output", required=True, help="output video (.mp4, .mov, .mkv); written only when complete")
    p.add_argument("--style-weights", default=None, metavar="L=W,...", help=WEIGHTS_HELP)
    p.add_argument("--keyframes", default=None, metavar="T:L=W,...;...", help=KEYFRAMES_HELP)
    p.add_argument("--no-stabilise", action="store_true", help="stylize each frame on its own (more flicker)")
    p.add_argument(
        "--blend",
        type=float,
        default=None,
        help="weight of the motion-compensated previous frame in [0, 1): "
        f"higher is steadier but softens fine texture (default {DEFAULT_BLEND:g})",
    )
    p.add_argument(
        "--steady-input",
        type=float,
        default=None,
        help="weight of the motion-compensated previous input in what the model sees, in [0, 1): averages out "
        f"sensor noise before stylizing (default {DEFAULT_STEADY_INPUT:g}; 0: each frame as it is)",
    )
    p.add_argument(
        "--motion",
        choices=("auto", "flow", "affine"),
        default="auto",
        help="motion model for stabilising: dense optical flow (needs OpenCV), the global camera motion, or "
        "auto: flow when OpenCV is installed (default %(default)s)",
    )
    model_args(p, 854)
    p.set_defaults(func=cmd_video)
