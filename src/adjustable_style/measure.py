"""Measuring what the sliders do: the model's own training loss, per layer, on images (and clips) it rendered.

The losses are raw (unweighted, not normalised), so images made at different weights compare directly: raising a
layer's weight should lower that layer's loss. The content is resized to the outputs' size; the style image is
sized as for embedding (shorter side = the model's training style size).

Example:
    >>> st = Stylizer.load("default", device="cpu")  # doctest: +SKIP
    >>> cat, monet = "examples/photo_cat.jpg", "examples/painting_monet_water_lilies.jpg"  # doctest: +SKIP
    >>> imgs, values = st.sweep(cat, monet, "relu2_2")  # doctest: +SKIP
    >>> layer_losses(st, imgs, cat, monet).shape  # doctest: +SKIP
    torch.Size([6, 4])
"""

from __future__ import annotations

import torch

from .image import resize
from .losses import Targets
from .stylizer import ImageLike, Stylizer


def layer_losses(
    st: Stylizer, outputs: torch.Tensor, content: ImageLike, style: ImageLike, batch_size: int = 8
) -> torch.Tensor:
    """Raw per-layer losses of stylized images: (N, L) in ``st.schema.keys`` order, float32 on the CPU.

    Args:
        st: the Stylizer whose model made the outputs (its loss network, schema and style size are used).
        outputs: (N, 3, H, W) in [0, 1], e.g. from :meth:`Stylizer.sweep`.
        content, style: the images the outputs were made from.
        batch_size: rows per VGG pass.
    """
    if not isinstance(outputs, torch.Tensor) or outputs.ndim != 4 or outputs.shape[1] != 3:
        raise ValueError(f"outputs must have shape (N, 3, H, W), got {tuple(getattr(outputs, 'shape', ()))}")
    loss = st.exported.loss_module()
    h, w = outputs.shape[-2:]
    c = resize(st.image(content, "content"), (int(h), int(w))).to(st.device)
    s = st.style_image(style).to(st.device)
    rows = []
    with torch.inference_mode():
        style_t = loss.style_targets(s)
        content_t = loss.content_targets(c)
        for chunk in outputs.split(batch_size):
            b = chunk.shape[0]
            # One content/style pair for the whole batch: content features expand, Grams broadcast.
            t = Targets({k: v.expand(b, *v.shape[1:]) for k, v in content_t.items()}, style_t)
            rows.append(loss.raw_losses(chunk.to(st.device, torch.float32), t).cpu())
    return torch.cat(rows)


def slider_strength(st: Stylizer, content: ImageLike, style: ImageLike, size: int = 256) -> dict[str, float]:
    """Each style slider's own-layer loss ratio on one photo: that layer's loss at α = 1 over at α = 0, the other
    sliders at 0.5 (lower = a stronger slider; 1 = no effect). Uses whatever adapter ``st`` holds for ``style``."""
    rows = []
    for n in st.style_layers:
        for v in (0.0, 1.0):
            rows.append(st.schema.to_tensor({m: (v if m == n else 0.5) for m in st.style_layers}))
    imgs = st.stylize_alphas(content, style, torch.cat(rows), max_size=size)
    raw = layer_losses(st, imgs, content, style)
    keys = list(st.schema.keys)
    return {
        n: float(raw[2 * i + 1, keys.index(f"style/{n}")] / raw[2 * i, keys.index(f"style/{n}")])
        for i, n in enumerate(st.style_layers)
    }


class ClipLoss:
    """Raw per-layer losses of stylized clips, each frame against its own input frame; the targets are computed
    once, so several stylizations of one clip (per-frame, stabilised…) compare directly.

    Args:
        st: the Stylizer whose model made the outputs.
        frames: the input clip (N, 3, H, W) in [0, 1].
        style: the painting.
    """

    def __init__(self, st: Stylizer, frames: torch.Tensor, style: ImageLike) -> None:
        self.loss = st.exported.loss_module()
        with torch.inference_mode():
            self.content = [self.loss.content_targets(f) for f in frames.split(4)]
            self.style = self.loss.style_targets(st.style_image(style))

    def __call__(self, outputs: torch.Tensor) -> torch.Tensor:
        """Mean over the frames of ``outputs`` (N, 3, H, W): (L,) in ``schema.keys`` order."""
        with torch.inference_mode():
            rows = [self.loss.raw_losses(o, Targets(c, self.style)) for o, c in zip(outputs.split(4), self.content)]
        return torch.cat(rows).mean(0)
