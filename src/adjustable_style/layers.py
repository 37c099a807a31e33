"""The single source of loss-layer names and order.

Every other module (configs, log keys, CLI flags, UI labels) spells VGG19 layers the way this module does:
``relu1_1`` … ``relu5_4``. A :class:`LayerSchema` fixes which layers carry a content loss and which a style
loss, and the order of the per-layer weight vector α used everywhere: content layers first, then style
layers, each in the order given.

Example:
    >>> schema = LayerSchema(content=("relu3_4",), style=("relu2_2", "relu3_4", "relu4_4"))
    >>> schema.keys
    ('content/relu3_4', 'style/relu2_2', 'style/relu3_4', 'style/relu4_4')
    >>> schema.to_tensor({"relu2_2": 0.5}, content={"relu3_4": 1.0}, default=1.0).tolist()
    [[1.0, 0.5, 1.0, 1.0]]
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch

from .checks import InputError

# VGG19's ReLU outputs in network order, named block-wise as in Gatys et al. and pystiche.
VGG19_BLOCKS: tuple[int, ...] = (2, 2, 4, 4, 4)
VGG19_LAYERS: tuple[str, ...] = tuple(
    f"relu{block}_{i}" for block, n in enumerate(VGG19_BLOCKS, start=1) for i in range(1, n + 1)
)
_CHANNELS = {1: 64, 2: 128, 3: 256, 4: 512, 5: 512}

# The paper's defaults: content on the last layer of conv3, style on the last layers of conv2, conv3, conv4.
DEFAULT_CONTENT_LAYERS: tuple[str, ...] = ("relu3_4",)
DEFAULT_STYLE_LAYERS: tuple[str, ...] = ("relu2_2", "relu3_4", "relu4_4")

# Words for the UI and contact sheets: what a style layer's slider changes, by the scale it sees.
_SCALE_WORDS = {
    1: "finest texture",
    2: "fine texture",
    3: "mid-scale texture",
    4: "coarse structure",
    5: "large shapes",
}


def layer_channels(name: str) -> int:
    """Number of channels VGG19 produces at ``name`` (``relu3_4`` → 256)."""
    check_layer(name)
    return _CHANNELS[int(name[4])]


def layer_label(name: str) -> str:
    """A human label for a style layer, e.g. ``"fine texture (relu2_2)"``."""
    check_layer(name)
    return f"{_SCALE_WORDS[int(name[4])]} ({name})"


def check_layer(name: str) -> str:
    """Return ``name`` if it is a VGG19 layer, else raise :class:`InputError` listing the valid names."""
    if name not in VGG19_LAYERS:
        raise InputError(f"unknown layer {name!r}; valid layers are {', '.join(VGG19_LAYERS)}")
    return name


def sort_layers(names: Iterable[str]) -> tuple[str, ...]:
    """Validate ``names`` and return them unique, in network order."""
    unique = {check_layer(n) for n in names}
    return tuple(n for n in VGG19_LAYERS if n in unique)


def check_weight(name: str, value: float) -> float:
    """Return ``value`` as float if it is a finite, non-negative weight; else raise :class:`InputError`."""
    value = _number(name, value)
    if math.isnan(value) or math.isinf(value) or value < 0:
        raise InputError(f"weight for {name} must be a finite number >= 0, got {value}")
    return value


def _number(name: str, value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InputError(f"weight for {name} must be a number, got {value!r}") from None


def parse_weights(text: str) -> dict[str, float]:
    """Parse ``"relu2_2=1,relu3_4=0.5"`` into ``{"relu2_2": 1.0, "relu3_4": 0.5}``.

    Raises:
        InputError: on a malformed entry, an unknown layer, a repeated layer, or a negative/NaN weight.

    Example:
        >>> parse_weights("relu2_2=1, relu4_4=0.25")
        {'relu2_2': 1.0, 'relu4_4': 0.25}
    """
    out: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, sep, value = part.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value:
            raise InputError(f"malformed weight {part!r}; write LAYER=VALUE, e.g. relu2_2=0.5")
        check_layer(name)
        if name in out:
            raise InputError(f"layer {name} is given twice in {text!r}")
        out[name] = check_weight(name, value)
    if not out:
        raise InputError(f"no weights in {text!r}; write LAYER=VALUE[,LAYER=VALUE...], e.g. relu2_2=0.5")
    return out


@dataclass(frozen=True)
class LayerSchema:
    """Which VGG19 layers carry content and style losses, and the order of the α vector.

    Args:
        content: content-loss layers, e.g. ``("relu3_4",)``.
        style: style-loss layers, e.g. ``("relu2_2", "relu3_4", "relu4_4")``.
    """

    content: tuple[str, ...] = DEFAULT_CONTENT_LAYERS
    style: tuple[str, ...] = DEFAULT_STYLE_LAYERS

    def __post_init__(self) -> None:
        for kind in ("content", "style"):
            names = tuple(getattr(self, kind))
            for n in names:
                check_layer(n)
            if len(set(names)) != len(names):
                raise ValueError(f"{kind} layers repeat a name: {names}")
            object.__setattr__(self, kind, names)
        if not self.style:
            raise ValueError("at least one style layer is needed")

    @property
    def keys(self) -> tuple[str, ...]:
        """Names of the α entries in order: ``content/<layer>`` then ``style/<layer>``."""
        return tuple(f"content/{n}" for n in self.content) + tuple(f"style/{n}" for n in self.style)

    @property
    def n_layers(self) -> int:
        return len(self.content) + len(self.style)

    @property
    def all_layers(self) -> tuple[str, ...]:
        """The VGG19 layers any loss needs, in network order."""
        return sort_layers(self.content + self.style)

    @property
    def deepest(self) -> str:
        return self.all_layers[-1]

    @property
    def content_slice(self) -> slice:
        return slice(0, len(self.content))

    @property
    def style_slice(self) -> slice:
        return slice(len(self.content), self.n_layers)

    def to_dict(self) -> dict[str, list[str]]:
        return {"content": list(self.content), "style": list(self.style)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Sequence[str]]) -> LayerSchema:
        return cls(content=tuple(d["content"]), style=tuple(d["style"]))

    def to_tensor(
        self,
        style: Mapping[str, float] | None = None,
        content: Mapping[str, float] | None = None,
        default: float | None = 1.0,
        device: torch.device | str | None = None,
        check: bool = True,
    ) -> torch.Tensor:
        """Turn per-layer weight dicts into one α row of shape (1, n_layers).

        Args:
            style: weights by style layer name (``{"relu2_2": 0.2}``).
            content: weights by content layer name.
            default: value for layers not given; ``None`` makes a missing layer an error.
            device: device of the returned tensor.
            check: refuse negative, infinite and NaN weights; False only converts them to numbers (for a caller
                that checks the row against its own range with :meth:`check_alphas`).

        Raises:
            InputError: naming the layer, for unknown or missing layers, values that are not numbers and (with
                ``check``) negative/NaN weights.
        """
        row = []
        for kind, names, given in (("content", self.content, content or {}), ("style", self.style, style or {})):
            for name in given:
                if name not in names:
                    raise InputError(
                        f"{name!r} is not a {kind} layer of this model; "
                        f"its {kind} layers are {', '.join(names) or 'none'}"
                    )
            for name in names:
                if name in given:
                    row.append(check_weight(name, given[name]) if check else _number(name, given[name]))
                elif default is None:
                    raise InputError(f"missing {kind} weight for {name}; give one for each of {', '.join(names)}")
                else:
                    row.append(float(default))
        return torch.tensor([row], dtype=torch.float32, device=device)

    def check_alphas(
        self, alphas: object, low: float = 0.0, high: float = 1.0, fixed_content: bool = False
    ) -> torch.Tensor:
        """Check an α batch (N, L) in :attr:`keys` order, all rows at once; returns it as float32 on the CPU.

        Args:
            alphas: the weights, (N, L) with N >= 1.
            low, high: the range every weight must lie in (the range the model was trained on).
            fixed_content: content weights must be exactly 1 (a model trained with one content layer).

        Raises:
            InputError: for the wrong shape, and naming the first offending layer for NaN, a weight outside
                [low, high] or a content weight other than 1.

        Example:
            >>> LayerSchema().check_alphas(torch.tensor([[1.0, 0.2, 0.5, 1.0]])).shape
            torch.Size([1, 4])
        """
        n = self.n_layers
        if not isinstance(alphas, torch.Tensor) or alphas.ndim != 2 or alphas.shape[1] != n or alphas.shape[0] < 1:
            shape = tuple(alphas.shape) if isinstance(alphas, torch.Tensor) else type(alphas).__name__
            raise InputError(f"alphas must have shape (N, {n}) in the order {', '.join(self.keys)}, got {shape}")
        a = alphas.detach().to("cpu", torch.float32)
        names = [f"content weight for {c}" for c in self.content] + [f"weight for {s}" for s in self.style]
        nan = torch.isnan(a)
        if bool(nan.any()):
            col = int(nan.nonzero()[0, 1])
            raise InputError(f"{names[col]} must be a number in [{low:g}, {high:g}], got nan")
        outside = (a < low) | (a > high)
        if bool(outside.any()):
            row, col = (int(i) for i in outside.nonzero()[0])
            raise InputError(
                f"{names[col]} must be in [{low:g}, {high:g}] (the range the model was trained on), got {a[row, col]:g}"
            )
        if fixed_content and bool((a[:, self.content_slice] != 1).any()):
            col = int((a[:, self.content_slice] != 1).nonzero()[0, 1])
            raise InputError(
                f"content weight for {self.content[col]} is fixed at 1 in this model (trained with one content "
                "layer); lower the style weights instead"
            )
        return a

    def to_dicts(self, alpha: torch.Tensor) -> tuple[dict[str, float], dict[str, float]]:
        """Inverse of :meth:`to_tensor` for one row: ``(style_dict, content_dict)``."""
        values = alpha.reshape(-1).tolist()
        if len(values) != self.n_layers:
            raise InputError(f"expected {self.n_layers} weights, got {len(values)}")
        content = dict(zip(self.content, values[self.content_slice]))
        style = dict(zip(self.style, values[self.style_slice]))
        return style, content

    def sample(
        self,
        batch: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        fix_single_content: bool = True,
        low: float = 0.0,
        high: float = 1.0,
        stratified: bool = False,
    ) -> torch.Tensor:
        """Draw α ~ U(low, high), independently per sample and per layer: shape (batch, n_layers).

        With ``fix_single_content`` and one content layer, its α is 1 (the paper: α_c is fixed when there
        is a single content layer, since only the ratios of weights matter). With ``stratified``, a Latin hypercube:
        each layer's range is cut into ``batch`` equal strata and every stratum gets one sample (in a random order per
        layer, uniform within it), so that a few draws spread over the range instead of bunching by chance; each
        sample is still U(low, high).
        """
        on = device if generator is None else generator.device
        alpha = torch.rand(batch, self.n_layers, generator=generator, device=on)
        if stratified:
            strata = torch.stack(
                [torch.randperm(batch, generator=generator, device=on) for _ in range(self.n_layers)], 1
            )
            alpha = (strata + alpha) / batch
        alpha = low + (high - low) * alpha
        if fix_single_content and len(self.content) == 1:
            alpha[:, 0] = 1.0
        return alpha.to(device) if device is not None else alpha
