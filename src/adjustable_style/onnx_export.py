"""ONNX: the model as two graphs that any ONNX runtime runs, with the sliders as an input.

* ``embed.onnx``: ``style`` (B, 3, H, W) float32 RGB in [0, 1] → ``embedding`` (B, D). Resize the style so its
  shorter side is the model's ``train.style_size`` first (what :class:`~adjustable_style.stylizer.Stylizer` does).
* ``stylize.onnx``: ``content`` (B, 3, H, W) in [0, 1], ``embedding`` (B, D), ``alpha`` (B, L), ``shift``
  (B, 2·C) → ``image`` (B, 3, H, W) in [0, 1]. ``alpha`` holds one weight per loss layer in ``config.json``'s
  ``onnx.alpha`` order (content layers, then style layers): the sliders. ``shift`` is added to the γ, β that Λ
  gives (γ the first C columns): zeros for the model's own sliders; a slider adapter's or a pair preparation's
  offsets at those α otherwise (:meth:`Stylizer.cin_shift <adjustable_style.stylizer.Stylizer.cin_shift>`).

Batch, height and width are dynamic. The folder is also a complete export (``model.safetensors`` +
``config.json``), so one folder loads with either backend; ``config.json`` gains an ``onnx`` section that
describes the inputs. :class:`OnnxGraphs` runs the pair with onnxruntime (the ``onnx`` extra).

Example:
    >>> export_onnx("default", "models/default_onnx")  # doctest: +SKIP
    PosixPath('models/default_onnx')
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import logging
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import atomic
from .checkpoint import ModelFormatError
from .checks import InputError
from .export import WEIGHTS_FILE, write_export
from .model_files import cache_root, load_model

BACKENDS = ("torch", "onnxruntime", "auto")
GRAPH_VERSION = "v2"  # the graphs' inputs: v2 added ``shift``; caches of other versions are not used
EMBED_FILE, STYLIZE_FILE = "embed.onnx", "stylize.onnx"
ONNX_FILES = (EMBED_FILE, STYLIZE_FILE)
OPSET = 18
ORT_MISSING = (
    "the onnxruntime backend needs onnxruntime: pip install 'adjustable-style[onnx]' (or use the torch backend)"
)
EXPORT_MISSING = "ONNX export needs onnx and onnxscript: pip install 'adjustable-style[onnx]'"


class _EmbedGraph(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, style: torch.Tensor) -> torch.Tensor:
        return self.model.embed(style)


class _StylizeGraph(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, content: torch.Tensor, embedding: torch.Tensor, alpha: torch.Tensor, shift: torch.Tensor
    ) -> torch.Tensor:
        gamma, beta = self.model.cin_params(alpha, embedding)
        dg, db = shift.split([gamma.shape[1], beta.shape[1]], 1)
        return self.model.net(content, gamma + dg, beta + db)


def onnx_section(keys: list[str] | tuple[str, ...], embedding_dim: int, cin_channels: int) -> dict[str, Any]:
    """What ``config.json`` says about the graphs: files, inputs with shapes, and the α order (the sliders)."""
    return {
        "opset": OPSET,
        "embed": {
            "file": EMBED_FILE,
            "inputs": {"style": ["batch", 3, "height", "width"]},
            "outputs": {"embedding": ["batch", embedding_dim]},
        },
        "stylize": {
            "file": STYLIZE_FILE,
            "inputs": {
                "content": ["batch", 3, "height", "width"],
                "embedding": ["batch", embedding_dim],
                "alpha": ["batch", len(keys)],
                "shift": ["batch", 2 * cin_channels],
            },
            "outputs": {"image": ["batch", 3, "height", "width"]},
        },
        "alpha": list(keys),
        "range": "images are float32 RGB in [0, 1], channels first",
    }


@contextlib.contextmanager
def _quiet_exporter():
    """torch.onnx's dynamo exporter prints progress lines and warns about torch internals; none is the user's."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "torch.fx")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def write_graphs(model: nn.Module, folder: Path) -> list[str]:
    """Export ``model`` (an :class:`~adjustable_style.model.AdjustableStyleModel`, float32, eval) into
    ``folder/embed.onnx`` and ``folder/stylize.onnx``; returns the file names."""
    if importlib.util.find_spec("onnxscript") is None:  # torch.onnx's exporter needs it
        raise ModelFormatError(EXPORT_MISSING)
    model = model.float().eval().cpu()
    n_alpha, dim = model.schema.n_layers, model.config.embedding_dim
    c, e, a = torch.rand(1, 3, 72, 88), torch.rand(1, dim), torch.rand(1, n_alpha)
    shift = torch.zeros(1, 2 * model.net.cin_channels)
    batch_hw = {0: "batch", 2: "height", 3: "width"}
    with _quiet_exporter():
        torch.onnx.export(
            _StylizeGraph(model),
            (c, e, a, shift),
            str(folder / STYLIZE_FILE),
            input_names=["content", "embedding", "alpha", "shift"],
            output_names=["image"],
            opset_version=OPSET,
            dynamo=True,
            external_data=False,
            dynamic_shapes={
                "content": batch_hw,
                "embedding": {0: "batch"},
                "alpha": {0: "batch"},
                "shift": {0: "batch"},
            },
        )
        torch.onnx.export(
            _EmbedGraph(model),
            (torch.rand(1, 3, 96, 120),),
            str(folder / EMBED_FILE),
            input_names=["style"],
            output_names=["embedding"],
            opset_version=OPSET,
            dynamo=True,
            external_data=False,
            dynamic_shapes={"style": batch_hw},
        )
    return list(ONNX_FILES)


def export_onnx(model: str | Path, out_dir: str | Path, dtype: str | None = None) -> Path:
    """Write an export folder for ``model`` (bundled name, export folder or ``.ckpt``) that also holds
    ``embed.onnx`` and ``stylize.onnx`` (float32 graphs), written atomically like every export.

    Args:
        model: what to export (see :func:`~adjustable_style.export.resolve_model`).
        out_dir: the folder to write (new, empty, or an earlier export).
        dtype: of ``model.safetensors``; default: the source's (float16 for a checkpoint). The graphs are float32.
    """
    exported = load_model(model)  # read once: its float32 weights feed both the graphs and model.safetensors
    config = exported.config
    section = onnx_section(exported.schema.keys, exported.model.config.embedding_dim, exported.model.net.cin_channels)
    return write_export(
        {**config, "onnx": section},
        exported.model.state_dict(),
        out_dir,
        dtype=dtype or str(config.get("dtype", "float16")),
        extra=lambda tmp: write_graphs(exported.model, tmp),
    )


def model_digest(folder: Path) -> str:
    """Identity of an export folder's weights and config, for the ONNX cache."""
    h = hashlib.sha256()
    for name in ("config.json", WEIGHTS_FILE):
        with open(folder / name, "rb") as f:
            for block in iter(lambda f=f: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:24]


def cache_dir() -> Path:
    return cache_root() / "onnx" / GRAPH_VERSION


def find_graphs(folder: Path) -> Path | None:
    """The folder holding ``folder``'s ONNX graphs: itself (an ``export --onnx`` folder) or the cache; None if
    neither."""
    if all((folder / f).is_file() for f in ONNX_FILES):
        return folder
    try:
        cached = cache_dir() / model_digest(folder)
    except OSError:
        return None
    return cached if all((cached / f).is_file() for f in ONNX_FILES) else None


def cached_graphs(folder: Path, model: nn.Module) -> Path:
    """``folder``'s graphs, exported into the per-user cache once (``$ADJUSTABLE_STYLE_CACHE``, else
    ``~/.cache/adjustable-style``), atomically: a killed export leaves nothing that looks complete."""
    found = find_graphs(folder)
    if found is not None:
        return found
    # Another process may finish the same export meanwhile: its graphs are identical, so replacing them is harmless.
    return atomic.write_directory(cache_dir() / model_digest(folder), lambda tmp: write_graphs(model, tmp))


def open_graphs(backend: str, device: torch.device, folder: Path, model: nn.Module) -> tuple[str, OnnxGraphs | None]:
    """What runs P and T for ``backend`` (one of :data:`BACKENDS`; ``folder`` is the model's export folder): the
    choice, and the graphs in onnxruntime sessions (None for torch). ``"auto"``: onnxruntime on the CPU when it is
    installed and the graphs already exist, else torch."""
    if backend not in BACKENDS:
        raise InputError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "auto":
        usable = device.type == "cpu" and folder.is_dir() and importlib.util.find_spec("onnxruntime") is not None
        backend = "onnxruntime" if usable and find_graphs(folder) is not None else "torch"
    if backend == "torch":
        return backend, None
    if device.type != "cpu":
        raise InputError("the onnxruntime backend runs on the CPU; use the torch backend on GPUs")
    if not folder.is_dir():
        raise InputError(
            f"the onnxruntime backend needs an export folder; export '{folder}' first (adjustable-style export)"
        )
    return backend, OnnxGraphs(cached_graphs(folder, model))


class OnnxGraphs:
    """The two graphs in onnxruntime sessions; tensors in and out (CPU float32).

    Args:
        folder: where ``embed.onnx`` and ``stylize.onnx`` are.
        threads: onnxruntime intra-op threads (None: torch's current ``get_num_threads()``, so both backends
            run under the same setting).
    """

    def __init__(self, folder: str | Path, threads: int | None = None) -> None:
        try:
            import onnxruntime as ort  # noqa: PLC0415 - optional dependency
        except ImportError:
            raise ModelFormatError(ORT_MISSING) from None
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or torch.get_num_threads()
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        folder = Path(folder)
        self.folder = folder
        try:
            self._embed = ort.InferenceSession(str(folder / EMBED_FILE), opts, providers=["CPUExecutionProvider"])
            self._stylize = ort.InferenceSession(str(folder / STYLIZE_FILE), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own untyped errors for bad files
            raise ModelFormatError(
                f"cannot load the ONNX graphs in '{folder}': {str(e).splitlines()[0][:200]}"
            ) from None
        inputs = {i.name: i.shape for i in self._stylize.get_inputs()}
        # graphs exported before ``shift`` existed run the model's own sliders only (the Stylizer uses torch then)
        self.shift_channels: int | None = int(inputs["shift"][1]) if "shift" in inputs else None

    def embed(self, style: torch.Tensor) -> torch.Tensor:
        (e,) = self._embed.run(None, {"style": _np(style)})
        return torch.from_numpy(e)

    def stylize(
        self, content: torch.Tensor, embedding: torch.Tensor, alpha: torch.Tensor, shift: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The image for these inputs; ``shift`` (B, 2·C) None: zeros (graphs without a ``shift`` input accept
        only that)."""
        feed = {"content": _np(content), "embedding": _np(embedding), "alpha": _np(alpha)}
        if self.shift_channels is not None:
            feed["shift"] = _np(shift if shift is not None else torch.zeros(alpha.shape[0], self.shift_channels))
        elif shift is not None:
            raise ModelFormatError(f"the ONNX graphs in '{self.folder}' have no shift input; export them again")
        (y,) = self._stylize.run(None, feed)
        return torch.from_numpy(y)


def _np(x: torch.Tensor) -> Any:
    return x.detach().to("cpu", torch.float32).contiguous().numpy()


def max_difference(model: nn.Module, graphs: OnnxGraphs, inputs: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """Largest absolute difference between torch and onnxruntime on real ``content``/``style`` images (and
    ``alpha``, and optionally ``shift``): ``{"embedding": ..., "image": ...}``."""
    shift = inputs.get("shift")
    b = inputs["content"].shape[0]
    with torch.inference_mode():
        e = model.embed(inputs["style"])
        gamma, beta = model.cin_params(inputs["alpha"], e.expand(b, -1))
        if shift is not None:
            dg, db = shift.split([gamma.shape[1], beta.shape[1]], 1)
            gamma, beta = gamma + dg, beta + db
        y = model.net(inputs["content"], gamma, beta)
    e_ort = graphs.embed(inputs["style"])
    y_ort = graphs.stylize(inputs["content"], e.expand(b, -1), inputs["alpha"], shift)
    return {"embedding": float((e - e_ort).abs().max()), "image": float((y - y_ort).abs().max())}
