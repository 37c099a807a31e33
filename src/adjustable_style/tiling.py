"""Large images in bounded memory: T run in overlapping tiles with the instance-norm statistics of the whole image.

Instance norm makes every pixel depend on its layer's mean and variance over the *whole* image, so stylizing
tiles independently gives each tile its own colours (visible seams). Here every normalisation layer (the
conditional ones and the encoder's plain ones) uses whole-image statistics, gathered layer by layer: pass k runs
the tiles up to layer k — earlier layers already normalised with their whole-image statistics — and accumulates
the sum and sum of squares of layer k's input over each tile's core (not its halo). A last pass stylizes each
tile with all statistics fixed and keeps its core. With a halo wider than T's receptive radius (~54 px for the
5-block network) the stitched result equals the untiled one up to float rounding; the price is compute (each
pass re-runs the tiles up to its layer: about 6× one forward pass for 13 normalisation layers), for memory that
no longer grows with the image.

Example:
    >>> net = StyleTransferNet()  # doctest: +SKIP
    >>> y = stylize_tiled(net, x, gamma, beta, tile=512)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from .checks import InputError
from .model import ConditionalInstanceNorm, StyleTransferNet

HALO = 64  # px at full resolution; > the receptive radius of T (54 px), a multiple of 4
_NORMS = (ConditionalInstanceNorm, nn.InstanceNorm2d)


class _Stop(Exception):
    """Ends a statistics pass once the layer being measured has been reached."""


def norm_layers(net: StyleTransferNet) -> list[nn.Module]:
    """The normalisation layers of T in execution order (module registration order for this network)."""
    return [m for m in net.modules() if isinstance(m, _NORMS)]


def _apply(m: nn.Module, x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor, args: tuple) -> torch.Tensor:
    z = (x - mean.to(x.dtype)) * torch.rsqrt(var.to(x.dtype) + m.eps)
    if isinstance(m, ConditionalInstanceNorm):
        gamma, beta = args[1], args[2]
        return z * gamma[:, :, None, None].to(z.dtype) + beta[:, :, None, None].to(z.dtype)
    if m.affine:
        return z * m.weight[None, :, None, None] + m.bias[None, :, None, None]
    return z


@contextlib.contextmanager
def _hooks(layers: list[nn.Module], fn) -> Iterator[None]:
    handles = [m.register_forward_hook(lambda mod, args, out, i=i: fn(i, mod, args, out)) for i, m in enumerate(layers)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _tiles(h: int, w: int, tile: int, halo: int) -> list[tuple[tuple[int, int, int, int], tuple[int, int, int, int]]]:
    """(core y0, y1, x0, x1), (input y0, y1, x0, x1) per tile; all multiples of 4 when h, w, tile, halo are."""
    out = []
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
            out.append(((y0, y1, x0, x1), (max(0, y0 - halo), min(h, y1 + halo), max(0, x0 - halo), min(w, x1 + halo))))
    return out


@torch.no_grad()
def whole_image_statistics(
    net: StyleTransferNet, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, tile: int, halo: int = HALO
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(mean, var) of every normalisation layer's input over the whole image, each (B, C, 1, 1), as the untiled
    forward pass would compute them; ``x`` (B, 3, H, W) with H, W multiples of 4."""
    layers = norm_layers(net)
    stats: list[tuple[torch.Tensor, torch.Tensor]] = []
    h, w = x.shape[-2:]
    for k in range(len(layers)):
        acc = {"s": 0.0, "q": 0.0, "n": 0}
        core_in: dict[str, tuple[int, ...]] = {}

        def hook(
            i: int, m: nn.Module, args: tuple, out: torch.Tensor, k: int = k, acc: dict = acc, core_in: dict = core_in
        ) -> torch.Tensor:
            a = args[0]
            if i < k:
                return _apply(m, a, *stats[i], args)
            (cy0, cy1, cx0, cx1), (iy0, _, ix0, _), size = core_in["core"], core_in["input"], core_in["size"]
            f = size // a.shape[-2]  # 1, 2 or 4: this layer's resolution relative to the tile
            core = a[..., (cy0 - iy0) // f : (cy1 - iy0) // f, (cx0 - ix0) // f : (cx1 - ix0) // f].double()
            acc["s"] = acc["s"] + core.sum((2, 3), keepdim=True)
            acc["q"] = acc["q"] + (core * core).sum((2, 3), keepdim=True)
            acc["n"] += core.shape[-1] * core.shape[-2]
            raise _Stop

        with _hooks(layers, hook):
            for core, inp in _tiles(h, w, tile, halo):
                core_in.update(core=core, input=inp, size=inp[1] - inp[0])
                try:
                    net(x[..., inp[0] : inp[1], inp[2] : inp[3]], gamma, beta)
                except _Stop:
                    pass
        mean = acc["s"] / acc["n"]
        var = (acc["q"] / acc["n"] - mean * mean).clamp_min(0.0)  # biased, as instance norm
        stats.append((mean.float(), var.float()))
    return stats


@torch.no_grad()
def stylize_tiled(
    net: StyleTransferNet, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, tile: int = 1024, halo: int = HALO
) -> torch.Tensor:
    """T(x) computed in ``tile``-sized pieces with whole-image statistics; same shape and values as ``net(x, γ, β)``
    up to float rounding. ``x`` (B, 3, H, W) in [0, 1]; any H, W."""
    if tile < 16 or tile % 4 or halo % 4:
        raise ValueError(f"tile must be a multiple of 4 and >= 16 and halo a multiple of 4, got {tile} and {halo}")
    h, w = x.shape[-2:]
    ph, pw = (-h) % 4, (-w) % 4
    if ph or pw:  # as net.forward pads: reflect to a multiple of 4, once, for the whole image
        x = F.pad(x, (0, pw, 0, ph), mode="reflect")
    stats = whole_image_statistics(net, x, gamma, beta, tile, halo)
    layers = norm_layers(net)
    out = x.new_empty(x.shape[0], 3, *x.shape[-2:])
    with _hooks(layers, lambda i, m, args, o: _apply(m, args[0], *stats[i], args)):
        for (cy0, cy1, cx0, cx1), (iy0, iy1, ix0, ix1) in _tiles(*x.shape[-2:], tile, halo):
            y = net(x[..., iy0:iy1, ix0:ix1], gamma, beta)
            out[..., cy0:cy1, cx0:cx1] = y[..., cy0 - iy0 : cy1 - iy0, cx0 - ix0 : cx1 - ix0]
    return out[..., :h, :w]


def activation_bytes(net: StyleTransferNet, batch: int, h: int, w: int) -> int:
    """Rough peak memory of one untiled forward pass of ``net`` in float32 (measured: ~8 full-resolution tensors
    of the first layer's width are alive at the peak, plus the image in and out)."""
    c1 = net.encoder[0].conv.out_channels
    return batch * h * w * 4 * (8 * c1 + 6)


DEFAULT_MEMORY_LIMIT_GB = 5.0  # untiled 4096² on the bundled default: ~4.5 GB peak RSS (README)


class MemoryLimitError(InputError):
    """A request that cannot fit the memory limit even in tiles (one line: the need, the limit, what to change)."""


def plan(net: StyleTransferNet, h: int, w: int, rows: int, batch_size: int, limit_gb: float) -> tuple[int, int | None]:
    """How to run ``rows`` stylizations of an h×w image within ``limit_gb``: (rows per forward pass, tile side or
    None for untiled). Raises :class:`MemoryLimitError` when even the tiled output would not fit."""
    limit = limit_gb * 1e9
    per_row = activation_bytes(net, 1, h, w)
    if per_row <= limit:
        return max(1, min(batch_size, rows, int(limit // per_row))), None
    output = 3 * 4 * h * w * 3  # the stitched float output, its padded input and the copy to the CPU
    if output > limit / 2:
        raise MemoryLimitError(
            f"a {w}x{h} image needs about {output * 2 / 1e9:.1f} GB even in tiles, more than the memory limit of "
            f"{limit_gb:g} GB; raise the limit (--memory-limit) or shrink the image (--max-size)"
        )
    side = 1024
    while side > 128 and activation_bytes(net, 1, side + 2 * HALO, side + 2 * HALO) > (limit - output) / 2:
        side //= 2
    return 1, side
