"""Colour preservation: keep the content image's colours, take only the stylized luminance.

Gatys et al., "Preserving Color in Neural Artistic Style Transfer" (2016), luminance-only transfer: the
output's Y channel (YCbCr) is combined with the content's Cb and Cr.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from kornia.color import rgb_to_ycbcr, ycbcr_to_rgb


def preserve_color(content: torch.Tensor, stylized: torch.Tensor) -> torch.Tensor:
    """Stylized luminance with the content's chrominance.

    Args:
        content: (B, 3, H, W) in [0, 1]; resized to ``stylized``'s size if it differs.
        stylized: (B, 3, H, W) in [0, 1].

    Returns:
        (B, 3, H, W) in [0, 1].

    Example:
        >>> c, s = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)
        >>> tuple(preserve_color(c, s).shape)
        (1, 3, 8, 8)
    """
    if content.ndim != 4 or stylized.ndim != 4 or content.shape[1] != 3 or stylized.shape[1] != 3:
        raise ValueError(f"expected (B, 3, H, W) images, got {tuple(content.shape)} and {tuple(stylized.shape)}")
    if content.shape[-2:] != stylized.shape[-2:]:
        content = F.interpolate(content, size=stylized.shape[-2:], mode="bilinear", antialias=True, align_corners=False)
    y = rgb_to_ycbcr(stylized)[:, :1]
    cbcr = rgb_to_ycbcr(content.to(stylized.dtype))[:, 1:]
    return ycbcr_to_rgb(torch.cat([y, cbcr], dim=1)).clamp(0, 1)
