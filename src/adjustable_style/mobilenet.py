"""P for the published base model: Ghiasi et al.'s style predictor, distilled onto MobileNetV2 (Magenta).

A MobileNetV2 1.0 trunk up to the 1280-channel ``Conv_1`` → global average pool → 1×1 conv to the 100-d style
embedding. Batch norm is folded into the conv biases (as in the published graph), activations are ReLU6, the
input is RGB in [0, 1] with no mean/std. Stride-2 convs use TensorFlow's "SAME" padding, which puts the extra
row/column at the bottom/right: torchvision's symmetric padding would not reproduce the published weights.

The weights come from :mod:`adjustable_style.magenta`; this module only defines the network.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# (expansion t, output channels c, repeats n, first stride s): MobileNetV2's table (Sandler et al., 2018).
_BLOCKS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
TRUNK_CHANNELS = 1280


class SameConv(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding computed from the input size (extra pixel bottom/right)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(x.shape[-2:], self.kernel_size, self.stride):
            # (ceil(size / s) − 1)·s + k − size, in integers (symbolic in an exported graph); never < 0 as k ≥ s
            total = ((size + s - 1) // s - 1) * s + k - size
            pads.append((total // 2, total - total // 2))
        (top, bottom), (left, right) = pads
        if torch.compiler.is_exporting() or top or bottom or left or right:
            x = F.pad(x, (left, right, top, bottom))
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class InvertedResidual(nn.Module):
    """1×1 expand (ReLU6) → 3×3 depthwise (ReLU6) → 1×1 project (linear), + x when shapes allow."""

    def __init__(self, c_in: int, c_out: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = c_in * expansion
        self.expand = nn.Conv2d(c_in, hidden, 1) if expansion != 1 else None
        self.depthwise = SameConv(hidden, hidden, 3, stride=stride, groups=hidden)
        self.project = nn.Conv2d(hidden, c_out, 1)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu6(self.expand(x)) if self.expand is not None else x
        h = self.project(F.relu6(self.depthwise(h)))
        return x + h if self.residual else h


class MobileNetV2StylePredictor(nn.Module):
    """P (Ghiasi et al., 2017, distilled by Magenta onto MobileNetV2): style images → embeddings ``e``.

    Args:
        embedding_dim: size of ``e`` (the published model: 100).

    Example:
        >>> p = MobileNetV2StylePredictor()
        >>> tuple(p(torch.rand(2, 3, 96, 128)).shape)
        (2, 100)
    """

    layers: tuple[str, ...] = ()  # reads the image itself, no VGG features

    def __init__(self, embedding_dim: int = 100) -> None:
        super().__init__()
        self.stem = SameConv(3, 32, 3, stride=2)
        blocks: list[nn.Module] = []
        c_in = 32
        for t, c, n, s in _BLOCKS:
            for i in range(n):
                blocks.append(InvertedResidual(c_in, c, s if i == 0 else 1, t))
                c_in = c
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Conv2d(c_in, TRUNK_CHANNELS, 1)
        self.embedding = nn.Conv2d(TRUNK_CHANNELS, embedding_dim, 1)

    def forward(self, style: torch.Tensor) -> torch.Tensor:
        """Style images (B, 3, H, W) in [0, 1] → (B, embedding_dim)."""
        if style.ndim != 4 or style.shape[1] != 3:
            raise ValueError(f"Input must have shape (B, 3, H, W), got {tuple(style.shape)}")
        h = self.blocks(F.relu6(self.stem(style)))  # (B, 320, H/32, W/32)
        h = F.relu6(self.head(h)).mean((2, 3), keepdim=True)  # (B, 1280, 1, 1)
        return self.embedding(h).flatten(1)
