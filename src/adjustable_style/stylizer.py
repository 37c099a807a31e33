"""The inference API every front end uses (CLI, web UI, notebook): load once, then stylize with sliders.

A :class:`Stylizer` holds one exported model on one device. The style embedding ``e`` is computed once per
style image and cached, so moving a slider only re-runs Λ and T. Weights are validated here, at the public
boundary, against the range the model was trained on.

Example:
    >>> st = Stylizer.load("models/quick")  # doctest: +SKIP
    >>> out = st.stylize("examples/photo_cat.jpg", "examples/painting_vangogh_starry_night.jpg",
    ...                  weights={"relu2_2": 0.2, "relu4_4": 1.0})  # doctest: +SKIP
    >>> out.shape  # doctest: +SKIP
    torch.Size([1, 3, 682, 1024])
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import torch

from . import adapt, tiling
from . import onnx_export as ox
from . import prepare as prep_mod
from .adapt import Adapter, AdapterError, FitSettings
from .checks import InputError, check_int, check_number
from .color import preserve_color as _preserve_color
from .conditioning import offset_shift
from .image import MIN_SIDE, resize
from .inputs import ImageCache, ImageLike, as_tensor, resolve_device, style_view
from .layers import LayerSchema, layer_label
from .losses import PerceptualLoss
from .model_files import ExportedModel, load_model, resolve_model
from .prepare import Preparation, PrepareSettings
from .vgg import LowRankVGG19


class Stylizer:
    """Stylize images with an exported adjustable model; one slider per style layer.

    Build it with :meth:`load`. Images may be given as paths, PIL images or tensors (1, 3, H, W) in [0, 1];
    results are float32 CPU tensors (N, 3, H, W) in [0, 1].

    Args:
        exported: a model from :func:`adjustable_style.export.load_model`.
        device: where it runs (already resolved; see :meth:`load`).
        autocast: run T and Λ in bfloat16 autocast (float16 where the GPU lacks bf16; CUDA only, ignored on CPU).
            On CUDA the transformer also runs channels_last.
        cache_size: how many style embeddings to keep.

    Example:
        >>> st = Stylizer.load("models/quick", device="cpu")  # doctest: +SKIP
        >>> cat, monet = "examples/photo_cat.jpg", "examples/painting_monet_water_lilies.jpg"  # doctest: +SKIP
        >>> imgs, alphas = st.variations(cat, monet, n=4)  # doctest: +SKIP
    """

    def __init__(
        self, exported: ExportedModel, device: torch.device | str = "cpu", autocast: bool = False, cache_size: int = 32
    ) -> None:
        self.device = resolve_device(device)
        self.exported = exported
        self.model = exported.model.to(self.device).eval()
        self.schema: LayerSchema = exported.schema
        self.style_layers: tuple[str, ...] = self.schema.style
        self.content_layers: tuple[str, ...] = self.schema.content
        self.style_size = exported.style_size
        train = exported.config.get("train", {})
        self.alpha_range: tuple[float, float] = (
            float(train.get("alpha_low", 0.0)),
            float(train.get("alpha_high", 1.0)),
        )
        self.fixed_content = bool(train.get("fix_single_content", True)) and len(self.content_layers) == 1
        self.autocast = bool(autocast) and self.device.type == "cuda"
        if self.device.type == "cuda":
            self.model.net.to(memory_format=torch.channels_last)  # cuDNN's fast layout for these convs
        self._cache = ImageCache(cache_size)  # style embeddings
        self._graphs: ox.OnnxGraphs | None = None  # set by use_backend("onnxruntime")
        self.backend = "torch"
        # Requests whose activations would exceed this run in tiles (see adjustable_style.tiling); GB.
        self.memory_limit_gb = tiling.DEFAULT_MEMORY_LIMIT_GB
        self._adapters: dict[str, torch.Tensor] = {}  # style digest -> slider offsets D (see adjustable_style.adapt)
        self._digests = ImageCache(4 * cache_size)  # style image -> its digest
        self.adapter_store: Path | None = None  # set by use_adapter_store: adapters looked up per painting there
        self._prepared: dict[tuple[str, str], Preparation] = {}  # (photo, painting) digests -> its fit, E on device
        self.preparation_store: Path | None = None  # set by use_preparation_store
        self._fit_losses: dict[str, PerceptualLoss] = {}  # what preparations are fitted against, per loss network
        self._style_cols = prep_mod.style_columns(self.model)

    @classmethod
    def load(
        cls,
        path_or_name: str | Path = "default",
        device: str = "auto",
        vgg_weights: str | None = None,
        autocast: bool = False,
        backend: str = "torch",
    ) -> Stylizer:
        """Load an export folder, a ``.ckpt`` file or a bundled model by name.

        Args:
            path_or_name: see :func:`adjustable_style.export.resolve_model`.
            device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda:1"``…; resolved once, here.
            vgg_weights: override the VGG19 weight source recorded in the model.
            autocast: bfloat16 autocast on CUDA.
            backend: what runs P and T. ``"torch"``; ``"onnxruntime"`` (CPU; the folder's ONNX graphs from
                ``export --onnx``, else exported once into the user cache, ~20 s); ``"auto"``: onnxruntime when it
                is installed and the graphs already exist (faster on CPUs, see the README's benchmark), else torch.
        """
        dev = resolve_device(device)
        st = cls(load_model(path_or_name, device=dev, vgg_weights=vgg_weights), dev, autocast=autocast)
        st.use_backend(backend, resolve_model(path_or_name))
        return st

    def use_backend(self, backend: str, folder: Path) -> str:
        """Switch what runs P and T (see :meth:`load`); ``folder`` is the model's export folder. Returns the choice."""
        self.backend, self._graphs = ox.open_graphs(backend, self.device, folder, self.model)
        return self.backend

    # ------------------------------------------------------------------------------------------- sliders
    def default_weights(self) -> dict[str, float]:
        """Every style layer at 1.0 (the top of the training range)."""
        return {n: 1.0 for n in self.style_layers}

    def labels(self) -> dict[str, str]:
        """Human labels for the style sliders, e.g. ``{"relu2_2": "fine texture (relu2_2)"}``."""
        stored = self.exported.config.get("labels", {})
        return {n: str(stored.get(n, layer_label(n))) for n in self.style_layers}

    def check_weights(
        self, weights: Mapping[str, float] | None = None, content_weights: Mapping[str, float] | None = None
    ) -> torch.Tensor:
        """Validate slider values and return the α row (1, L); layers not given are 1.0.

        Raises:
            InputError: unknown layer (listing the model's layers), NaN, a value outside the trained range, or a
                content weight other than 1 where it is fixed.
        """
        row = self.schema.to_tensor(dict(weights or {}), content=dict(content_weights or {}), default=1.0, check=False)
        return self.check_alphas(row)

    def check_alphas(self, alphas: torch.Tensor) -> torch.Tensor:
        """Validate an α batch (N, L) in the schema's order (:meth:`LayerSchema.check_alphas` with this model's
        trained range); returns it as float32 on the CPU."""
        return self.schema.check_alphas(alphas, *self.alpha_range, fixed_content=self.fixed_content)

    def random_alphas(self, n: int, seed: int = 0) -> torch.Tensor:
        """Seeded α (n, L): style layers ~ U(trained range), stratified (a Latin hypercube: each layer's range cut
        into n equal parts, one draw in each, so that n variations spread over every slider), the content weight 1
        as in training."""
        check_int("n", n, low=1)
        g = torch.Generator().manual_seed(int(seed))
        lo, hi = self.alpha_range
        return self.schema.sample(n, g, fix_single_content=self.fixed_content, low=lo, high=hi, stratified=True)

    # ------------------------------------------------------------------------------------------- images
    def image(self, image: ImageLike, what: str = "content") -> torch.Tensor:
        """Any accepted image → (1, 3, H, W) float32 on the CPU (:func:`~.inputs.as_tensor`)."""
        return as_tensor(image, what)

    def style_image(self, style: ImageLike) -> torch.Tensor:
        """The style image as P sees it: (1, 3, h, w), shorter side = the training style size."""
        return style_view(as_tensor(style, "style"), self.style_size)

    def embed(self, style: ImageLike) -> torch.Tensor:
        """Style embedding e (1, D) on :attr:`device`; cached (LRU) by file path + mtime + size or by content hash.

        Example:
            >>> e = st.embed("examples/painting_monet_water_lilies.jpg")  # doctest: +SKIP
            >>> e.shape  # doctest: +SKIP
            torch.Size([1, 100])
        """
        return self._cache.get_or_compute(style, lambda: self._embed(self.style_image(style).to(self.device)))

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():  # P stays in float32: its statistics span orders of magnitude
            return self._graphs.embed(x) if self._graphs is not None else self.model.embed(x).float()

    def clear_cache(self) -> None:
        """Forget every cached style embedding."""
        self._cache.clear()

    def embedding(self, content: ImageLike, style: ImageLike, strength: float = 1.0) -> torch.Tensor:
        """The embedding T is conditioned on: e = s·P(style) + (1 − s)·P(content) for style strength s in [0, 1];
        (1, D) on :attr:`device`, from the cache when it can."""
        return self._embedding(content, style, check_number("strength", strength, 0.0, 1.0))

    def _embedding(self, content: ImageLike, style: ImageLike, strength: float) -> torch.Tensor:
        e = self.embed(style)
        if strength < 1.0:
            # Ghiasi et al.'s identity interpolation: towards the content's own style, which T reproduces.
            e = strength * e + (1.0 - strength) * self.embed(content)
        return e

    # --------------------------------------------------------------------------------------- adapters
    def style_digest(self, style: ImageLike) -> str:
        """The painting's identity for adapters: a hash of its pixels as P sees them (see :mod:`~.adapt`)."""
        return adapt.style_digest(self.style_image(style))

    def add_adapter(self, adapter: Adapter) -> None:
        """Use ``adapter``'s slider offsets whenever its painting is the style (see :mod:`adjustable_style.adapt`)."""
        adapt.check_adapter(adapter, self.model)
        self._adapters[adapter.style_digest] = adapter.offsets.to(self.device, torch.float32)

    def add_adapters_from(self, folder: str | Path) -> int:
        """Add every adapter in ``folder`` (``*.safetensors``); returns how many."""
        adapters = adapt.load_adapters(folder, self.model)
        for ad in adapters:
            self.add_adapter(ad)
        return len(adapters)

    def use_adapter_store(self, folder: str | Path | None = None) -> Path:
        """From now on, a painting without an added adapter uses the one fitted for it in ``folder`` (default: this
        model's per-user store, :func:`~adjustable_style.adapt.store_dir`, where ``adjustable-style adapt`` without
        ``-o`` writes), if there is one. Returns the folder.

        Example:
            >>> st.use_adapter_store()  # doctest: +SKIP
            >>> st.has_adapter("painting.jpg")  # True once `adjustable-style adapt painting.jpg` ran  # doctest: +SKIP
        """
        self.adapter_store = Path(folder) if folder is not None else adapt.store_dir(self.model)
        return self.adapter_store

    def store_adapter(self, adapter: Adapter) -> Path:
        """Save ``adapter`` into the adapter store (:meth:`use_adapter_store`; this model's default store if none
        is set), atomically, and use it. Returns the file."""
        folder = self.adapter_store if self.adapter_store is not None else adapt.store_dir(self.model)
        adapt.check_adapter(adapter, self.model)
        path = adapt.save_adapter(adapter, adapt.store_path(folder, adapter.style_digest))
        self.add_adapter(adapter)
        return path

    def remove_adapters(self) -> None:
        """Forget every adapter and stop using the adapter store: the sliders are the model's own again."""
        self._adapters.clear()
        self.adapter_store = None

    def has_adapter(self, style: ImageLike) -> bool:
        """Whether an added adapter, or one in the adapter store in use, was fitted for this painting."""
        return self._offsets(style) is not None

    def _offsets(self, style: ImageLike) -> torch.Tensor | None:
        if not self._adapters and self.adapter_store is None:
            return None
        digest = self._digests.get_or_compute(style, lambda: self.style_digest(style))
        if digest not in self._adapters and self.adapter_store is not None:
            path = adapt.store_path(self.adapter_store, digest)
            if path.is_file():  # fitted for this painting earlier (adjustable-style adapt, the web page's Tune)
                self.add_adapter(adapt.load_adapter(path, self.model))
        return self._adapters.get(digest)

    def _fit(self, styles: Sequence[ImageLike], photos: Sequence[ImageLike], settings: FitSettings, progress):
        loss = self.exported.loss_module()
        embeddings = [self.embed(s) for s in styles]  # embedding and Gram targets once per painting
        targets = [loss.style_targets(self.style_image(s).to(self.device)) for s in styles]
        gain = float(self.exported.config.get("train", {}).get("style_gain", 3.0))  # the recipe's, as in training
        pics = [self.image(p, "photo") for p in photos]
        return adapt.fit_offsets(self.model, loss, embeddings, targets, pics, settings, gain, progress)

    def fit_adapter(
        self,
        style: ImageLike,
        photos: Sequence[ImageLike] | None = None,
        progress: Callable[[int, int, float], None] | None = None,
        **settings,
    ) -> Adapter:
        """Fit one painting's slider offsets (an adapter; see :mod:`adjustable_style.adapt`). Add it with
        :meth:`add_adapter`, keep it with :func:`~adjustable_style.adapt.save_adapter`.

        Args:
            style: the painting.
            photos: content photos to fit on (random crops); default: the three bundled example photos. D does not
                depend on the photo, but a few varied photos make it generalise (fitted on 3, measured on others).
            progress: called as ``progress(step, steps, objective)`` after each step.
            settings: :class:`~adjustable_style.adapt.FitSettings` (steps=60, crop=192, batch=4, lr, seed, design,
                objective).
        """
        adapt.check_model(self.model)
        fit = FitSettings(**settings)
        photo_list = list(photos) if photos is not None else list(adapt.BUNDLED_PHOTOS)
        if not photo_list:
            raise InputError("photos is empty; give at least one content photo (or None for the bundled ones)")
        t0 = time.time()
        d = self._fit([style], photo_list, fit, progress)
        return adapt.new_adapter(
            d, self.style_digest(style), self.model, fit, _name(style), [_name(p) for p in photo_list], time.time() - t0
        )

    def fit_calibration(
        self,
        styles: Sequence[ImageLike],
        photos: Sequence[ImageLike],
        progress: Callable[[int, int, float], None] | None = None,
        **settings,
    ) -> torch.Tensor:
        """One set of slider offsets D for *all* paintings: the adapter fit run over many paintings (each pair of α
        rows with a random one of ``styles``). Painting-independent, so it carries to paintings it never saw; fold it
        into the model with :meth:`fold_offsets`. ``settings``: as in :meth:`fit_adapter` (default 300 steps)."""
        adapt.check_model(self.model)
        fit = FitSettings(**{"steps": 300, **settings})
        if not list(styles) or not list(photos):
            raise InputError("fit_calibration needs at least one painting and one photo")
        return self._fit(list(styles), list(photos), fit, progress)

    def fold_offsets(self, offsets: torch.Tensor) -> None:
        """Fold painting-independent offsets D into the model's weights (:func:`~.adapt.fold_offsets`)."""
        adapt.check_model(self.model)
        if self.backend != "torch":  # the ONNX graphs hold the old weights: folding would not reach the renders
            raise AdapterError(
                f"fold_offsets changes the torch weights; load the model with backend='torch', not {self.backend!r}"
            )
        adapt.fold_offsets(self.model, offsets)

    # ------------------------------------------------------------------------------------ pair preparation
    def use_preparation_store(self, folder: str | Path | None = None) -> Path:
        """From now on keep pair preparations in ``folder`` (default: this model's per-user store,
        :func:`~adjustable_style.prepare.store_dir`) and use the one stored for a pair whenever that photo, at that
        size, is stylized with that painting. Returns the folder."""
        self.preparation_store = Path(folder) if folder is not None else prep_mod.store_dir(self.model)
        return self.preparation_store

    def _pair_key(self, content: torch.Tensor, style: ImageLike) -> tuple[str, str]:
        return prep_mod.image_digest(content), self._digests.get_or_compute(style, lambda: self.style_digest(style))

    def find_preparation(
        self, content: ImageLike, style: ImageLike, max_size: int | None = 1024, preset: str | int | None = None
    ) -> bool:
        """Whether this photo (rendered at ``max_size``) and painting have a preparation, in memory or in the
        store in use; with ``preset`` (as in :meth:`prepare`), one that :meth:`prepare` would use rather than fit
        again."""
        c = resize(self.image(content, "content"), max_size=max_size)
        fit = None if preset is None else prep_mod.preset(preset)
        return self._usable_preparation(c, style, self._pair_key(c, style), fit) is not None

    def prepare(
        self,
        content: ImageLike,
        style: ImageLike,
        max_size: int | None = 1024,
        progress: Callable[[int, int, float], None] | None = None,
        preset: str | int = prep_mod.DEFAULT_PRESET,
        **settings,
    ) -> Preparation:
        """Fit the sliders to this photo and painting (see :mod:`adjustable_style.prepare`) and use the fit whenever
        the pair is stylized at the same size from now on; with a store in use (:meth:`use_preparation_store`) the
        fit is kept there, and a stored one is used without fitting again when it was fitted with at least as many
        steps on crops at least as large (a ``full`` fit serves a ``quick`` request, not the other way round).

        Args:
            content: the photo; ``max_size`` as in :meth:`stylize` (the preparation belongs to that size).
            style: the painting.
            progress: called as ``progress(step, steps, objective)`` after each step.
            preset: ``"quick"`` (~3 s at 256 px on one CPU core), ``"medium"`` (~10 s), ``"full"`` (~20 s), or a
                number of first-stage steps of the full fit (:func:`~adjustable_style.prepare.preset`).
            settings: overrides of the preset's :class:`~adjustable_style.prepare.PrepareSettings` (steps,
                corner_steps, lr, crop, crop_share, seed, bf16, precondition, relative_ends, top_step, loss_net,
                orthogonal_ends, solo_ends, solo_steps, solo_step, corner_crop_share, low_precision_gram,
                pixel_steps, pixel_lr, pixel_side).

        Returns:
            the :class:`~adjustable_style.prepare.Preparation` (``meta["seconds"]`` is "0" when it was found).
        """
        adapt.check_model(self.model)
        try:
            fit = replace(prep_mod.preset(preset), **settings)
        except TypeError as e:  # an unknown setting
            raise InputError(f"prepare: {e}; the settings are those of PrepareSettings") from None
        if max_size is not None:
            check_int("max_size", max_size, low=MIN_SIDE)
        c = resize(self.image(content, "content"), max_size=max_size)
        key = self._pair_key(c, style)
        found = self._usable_preparation(c, style, key, fit)
        if found is not None:
            pixels = None if found.pixels is None else found.pixels.cpu()
            return Preparation(found.ends.float().cpu(), *key, {**found.meta, "seconds": "0"}, pixels)
        t0 = time.time()
        if fit.loss_net not in self._fit_losses:
            self._fit_losses[fit.loss_net] = prep_mod.fit_loss(self.exported.loss_module(), fit)
        loss = self._fit_losses[fit.loss_net]
        with prep_mod.fit_autocast(self.device, fit):  # the painting's Gram matrices stay float32
            targets = loss.style_targets(self.style_image(style).to(self.device))
        photo, embedding = c.to(self.device), self.embed(style)
        ends = prep_mod.fit_ends(self.model, loss, photo, embedding, targets, self.alpha_range, fit, progress)
        pixel_steps = fit.pixel_steps_at(max(c.shape[-2:]))
        pixels = None
        if pixel_steps:
            pixels = prep_mod.fit_pixels(
                self.model,
                loss,
                photo,
                embedding,
                targets,
                self.alpha_range,
                ends,
                replace(fit, pixel_steps=pixel_steps),
            )
        meta = {
            "steps": str(fit.steps),
            "corner_steps": str(fit.corner_steps),
            "lr": str(fit.lr),
            "crop": str(fit.crop_side(max(c.shape[-2:]))),  # the crops' side at this size
            "seed": str(fit.seed),
            "precondition": str(int(fit.precondition)),
            "loss_net": "lowrank" if isinstance(loss.vgg, LowRankVGG19) else "vgg19",
            "solo_ends": ",".join(fit.solo_ends),
            "solo_steps": str(fit.solo_steps),
            "pixel_steps": str(pixel_steps),
            "pixel_lr": str(fit.pixel_lr),
            "size": "x".join(map(str, c.shape[-2:])),
            "style": _name(style),
            "photo": _name(content),
            "seconds": f"{time.time() - t0:.1f}",
        }
        prep = Preparation(ends, *key, meta, pixels)
        self.add_preparation(prep)
        if self.preparation_store is not None:
            prep_mod.save_preparation(prep, prep_mod.store_path(self.preparation_store, key))
        return prep

    def add_preparation(self, prep: Preparation) -> None:
        """Use ``prep`` whenever its photo (at its size) is stylized with its painting."""
        prep_mod.check_preparation(prep, self.model)
        pixels = None if prep.pixels is None else prep.pixels.to(self.device)
        self._prepared[prep.key] = Preparation(
            prep.ends.to(self.device, torch.float32), *prep.key, dict(prep.meta), pixels
        )

    def remove_preparations(self) -> None:
        """Forget every pair preparation and stop using the store."""
        self._prepared.clear()
        self.preparation_store = None

    def _usable_preparation(
        self, content: torch.Tensor, style: ImageLike, key: tuple[str, str], fit: PrepareSettings | None
    ) -> Preparation | None:
        """The preparation of this rendered photo and painting (``key``: their :meth:`_pair_key`), if any, and
        with ``fit`` only if it was fitted with at least as much work (:meth:`PrepareSettings.covered_by`)."""
        found = self._preparation(content, style, key)
        if found is None or (fit is not None and not fit.covered_by(found.meta, max(content.shape[-2:]))):
            return None
        return found

    def _ends(self, content: torch.Tensor, style: ImageLike) -> torch.Tensor | None:
        """The slider ends prepared for this rendered photo and painting, if any."""
        found = self._preparation(content, style)
        return None if found is None else found.ends

    def _pixels(self, content: torch.Tensor, style: ImageLike) -> torch.Tensor | None:
        """The pixel ends prepared for this rendered photo and painting, if any."""
        found = self._preparation(content, style)
        return None if found is None else found.pixels

    def _preparation(
        self, content: torch.Tensor, style: ImageLike, key: tuple[str, str] | None = None
    ) -> Preparation | None:
        """The preparation of this rendered photo and painting (whose :meth:`_pair_key` may be given), from memory
        or the store in use, if any."""
        if not self._prepared and self.preparation_store is None:
            return None
        key = key or self._pair_key(content, style)
        if key not in self._prepared and self.preparation_store is not None:
            path = prep_mod.store_path(self.preparation_store, key)
            if path.is_file():
                with contextlib.suppress(
                    prep_mod.PreparationError
                ):  # an older format: as if absent; prepare rewrites it
                    self.add_preparation(prep_mod.load_preparation(path, self.model))
        return self._prepared.get(key)

    # --------------------------------------------------------------------------------------- stylizing
    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast:
            return torch.autocast("cuda", dtype=torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
        return contextlib.nullcontext()

    def stylize(
        self,
        content: ImageLike,
        style: ImageLike,
        weights: Mapping[str, float] | None = None,
        content_weights: Mapping[str, float] | None = None,
        strength: float = 1.0,
        preserve_color: bool = False,
        max_size: int | None = 1024,
    ) -> torch.Tensor:
        """Stylize one content image with one style at the given slider values.

        Args:
            content: the photo.
            style: the painting or texture.
            weights: style-layer weights in the trained range (usually [0, 1]); missing layers are 1.
            content_weights: content-layer weights (fixed at 1 for single-content-layer models).
            strength: style strength s in [0, 1]: e = s·P(style) + (1 − s)·P(content).
            preserve_color: keep the content's chrominance (luminance-only transfer).
            max_size: shrink the content so its longer side is at most this; None keeps it.

        Returns:
            (1, 3, H, W) float32 on the CPU, in [0, 1], H×W the (resized) content size.

        Example:
            >>> cat, wave = "examples/photo_cat.jpg", "examples/painting_hokusai_great_wave.jpg"  # doctest: +SKIP
            >>> st.stylize(cat, wave, {"relu4_4": 0.3})  # doctest: +SKIP
        """
        alpha = self.check_weights(weights, content_weights)
        return self._render(content, style, alpha, strength, preserve_color, max_size)

    def stylize_alphas(
        self,
        content: ImageLike,
        style: ImageLike,
        alphas: torch.Tensor,
        strength: float = 1.0,
        preserve_color: bool = False,
        max_size: int | None = 1024,
        batch_size: int = 8,
    ) -> torch.Tensor:
        """Stylize one content/style pair at N weight vectors, batched.

        Args:
            alphas: (N, L) in the schema's order (``schema.keys``: content layers, then style layers).
            batch_size: rows per forward pass.
            others: as in :meth:`stylize`.

        Returns:
            (N, 3, H, W) float32 on the CPU, in [0, 1].
        """
        return self._render(content, style, self.check_alphas(alphas), strength, preserve_color, max_size, batch_size)

    def _render(
        self,
        content: ImageLike,
        style: ImageLike,
        a: torch.Tensor,
        strength: float = 1.0,
        preserve_color: bool = False,
        max_size: int | None = 1024,
        batch_size: int = 8,
    ) -> torch.Tensor:
        """:meth:`stylize_alphas` for α its caller checked."""
        s = check_number("strength", strength, 0.0, 1.0)
        if max_size is not None:
            check_int("max_size", max_size, low=MIN_SIDE)
        check_int("batch_size", batch_size, low=1)
        c = resize(self.image(content, "content"), max_size=max_size).to(self.device)  # (1, 3, H, W)
        if self.device.type == "cuda":
            c = c.contiguous(memory_format=torch.channels_last)
        e = self._embedding(content, style, s)  # (1, D)
        # A pair preparation (fitted for this photo at this size, the painting's own embedding) supersedes an adapter.
        prep = self._preparation(c, style) if s == 1.0 else None
        ends, pixels = (None, None) if prep is None else (prep.ends, prep.pixels)
        offsets = self._offsets(style) if ends is None else None
        outs = []
        for chunk in a.split(batch_size):
            b = chunk.shape[0]
            y = self._run(c.expand(b, -1, -1, -1), e, chunk, offsets, ends)
            if pixels is not None:
                y = (y + prep_mod.pixel_shift(chunk, pixels, self._style_cols, self.alpha_range)).clamp(0, 1)
            if preserve_color:
                y = _preserve_color(c.expand(b, -1, -1, -1), y)
            outs.append(y.cpu())
        return torch.cat(outs)

    def run(
        self, content: torch.Tensor, embedding: torch.Tensor, alphas: torch.Tensor, style: ImageLike | None = None
    ) -> torch.Tensor:
        """Λ and T on tensors the caller prepared (video frames, say): content (B, 3, H, W) in [0, 1], an embedding
        (1 or B, D) from :meth:`embedding`, α (B, L) in the schema's order; ``style``: the painting, so that its
        adapter (if one was added) applies. Within :attr:`memory_limit_gb` (fewer rows per pass, or overlapping
        tiles with whole-image statistics); returns float32 (B, 3, H, W) on :attr:`device`."""
        a = self.check_alphas(alphas)
        if a.shape[0] != content.shape[0]:
            raise InputError(f"alphas has {a.shape[0]} rows for {content.shape[0]} content images")
        return self._run(content, embedding, a, self._offsets(style) if style is not None else None)

    def _run(
        self,
        content: torch.Tensor,
        embedding: torch.Tensor,
        a: torch.Tensor,
        offsets: torch.Tensor | None = None,
        ends: torch.Tensor | None = None,
    ) -> torch.Tensor:
        b = content.shape[0]
        x, e = content.to(self.device), embedding.to(self.device).expand(b, -1)
        rows, tile = tiling.plan(self.model.net, *x.shape[-2:], b, b, self.memory_limit_gb)
        outs = []
        with torch.inference_mode(), self._autocast():
            for i in range(0, b, rows):
                outs.append(
                    self._net(x[i : i + rows], e[i : i + rows], a[i : i + rows].to(self.device), tile, offsets, ends)
                )
        return torch.cat(outs)

    def _net(
        self, content: torch.Tensor, embedding: torch.Tensor, alpha: torch.Tensor, tile: int | None, offsets, ends
    ) -> torch.Tensor:
        """The model on the chosen backend (ONNX graphs: untiled): float32 (B, 3, H, W)."""
        shift = self._shift(alpha, offsets, ends)
        if tile is None and self._graphs is not None and (shift is None or self._graphs.shift_channels is not None):
            return self._graphs.stylize(content, embedding, alpha, shift)
        gamma, beta = self.model.cin_params(alpha, embedding)
        if shift is not None:
            dg, db = shift.to(gamma).split([gamma.shape[1], beta.shape[1]], 1)
            gamma, beta = gamma + dg, beta + db
        if tile is not None:
            return tiling.stylize_tiled(self.model.net, content, gamma, beta, tile=tile).float()
        return self.model.net(content, gamma, beta).float()

    def _shift(self, alpha: torch.Tensor, offsets: torch.Tensor | None, ends: torch.Tensor | None):
        """The γ, β shift (B, 2·C) of an adapter's offsets D or a preparation's ends E at α; None for neither."""
        if ends is not None:
            return prep_mod.end_shift(alpha, ends, self._style_cols, self.alpha_range)
        if offsets is not None:
            return offset_shift(alpha, offsets, getattr(self.model.conditioning, "half_gains", None))
        return None

    def cin_shift(
        self, content: ImageLike, style: ImageLike, alphas: torch.Tensor, max_size: int | None = 1024
    ) -> torch.Tensor:
        """What the ONNX graph's ``shift`` input gets for this pair at α (N, L): the painting's adapter or the
        pair's preparation (at ``max_size``) evaluated at α, zeros (N, 2·C) when it has neither. Lets an ONNX
        runtime elsewhere reproduce :meth:`stylize_alphas` exactly."""
        a = self.check_alphas(alphas).to(self.device)
        c = resize(self.image(content, "content"), max_size=max_size)
        ends = self._ends(c, style)
        shift = self._shift(a, self._offsets(style) if ends is None else None, ends)
        return (shift if shift is not None else torch.zeros(a.shape[0], 2 * self.model.net.cin_channels)).float().cpu()

    def pixel_residual(
        self, content: ImageLike, style: ImageLike, alphas: torch.Tensor, max_size: int | None = 1024
    ) -> torch.Tensor:
        """What a render of this pair at α (N, L) adds to the network's output after it (then clamped to [0, 1]):
        the pair's pixel ends (at ``max_size``) evaluated at α, zeros (N, 3, H, W) without them. With
        :meth:`cin_shift`, lets an ONNX runtime elsewhere reproduce :meth:`stylize_alphas` exactly."""
        a = self.check_alphas(alphas).to(self.device)
        c = resize(self.image(content, "content"), max_size=max_size)
        pixels = self._pixels(c, style)
        if pixels is None:
            return torch.zeros(a.shape[0], *c.shape[1:])
        return prep_mod.pixel_shift(a, pixels, self._style_cols, self.alpha_range).float().cpu()

    @property
    def has_base(self) -> bool:
        """Whether the model is built on a base network whose own output (Δ = 0) :meth:`stylize_base` gives."""
        return self.model.has_base

    def stylize_base(self, content: ImageLike, style: ImageLike, max_size: int | None = 1024) -> torch.Tensor:
        """The base network's own output (Magenta's, for the bundled default), ignoring the sliders: (1, 3, H, W)."""
        if not self.has_base:
            raise InputError("this model has no base network (it was trained from scratch)")
        if max_size is not None:
            check_int("max_size", max_size, low=MIN_SIDE)
        c = resize(self.image(content, "content"), max_size=max_size).to(self.device)
        e = self.embed(style)
        alpha = torch.ones(1, self.schema.n_layers, device=self.device)  # unused: the base ignores α
        with torch.inference_mode(), self._autocast():
            return self.model(c, e, alpha, delta=False).float().cpu()

    def variations(
        self, content: ImageLike, style: ImageLike, n: int = 8, seed: int = 0, **kw
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` stylizations at seeded random weights: images (n, 3, H, W) and their α (n, L).

        Keyword arguments go to :meth:`stylize_alphas` (strength, preserve_color, max_size, batch_size).
        """
        alphas = self.random_alphas(n, seed)  # in the trained range by construction
        return self._render(content, style, alphas, **kw), alphas

    def sweep(
        self,
        content: ImageLike,
        style: ImageLike,
        layer: str,
        steps: int = 6,
        weights: Mapping[str, float] | None = None,
        low: float = 0.0,
        high: float = 1.0,
        **kw,
    ) -> tuple[torch.Tensor, list[float]]:
        """One slider's effect: ``layer`` from ``low`` to ``high`` in ``steps``, the others at ``weights``.

        ``layer="all"`` moves every style slider together (the overall amount of style; ``weights`` is unused).

        Returns:
            images (steps, 3, H, W) and the layer's values.
        """
        if layer != "all" and layer not in self.style_layers:
            raise InputError(
                f"unknown style layer {layer!r}; this model's style layers are {', '.join(self.style_layers)} (or all)"
            )
        check_int("steps", steps, low=2)
        lo, hi = self.alpha_range
        why = " (the range the model was trained on)"
        low, high = check_number("sweep low", low, lo, hi, why), check_number("sweep high", high, lo, hi, why)
        if low > high:
            raise InputError(f"sweep low ({low:g}) must not exceed high ({high:g})")
        base = self.check_weights(weights)
        values = [low + (high - low) * i / (steps - 1) for i in range(steps)]
        alphas = base.repeat(steps, 1)
        swept = self.style_layers if layer == "all" else (layer,)
        for name in swept:
            alphas[:, self.schema.keys.index(f"style/{name}")] = torch.tensor(values)
        return self._render(content, style, alphas, **kw), values


def _name(image: ImageLike) -> str:
    return Path(image).name if isinstance(image, (str, os.PathLike)) else "(image)"
