"""The web page: one slider per style layer, a live preview while dragging, a full render on release.

Layout and event wiring only; what each event does lives in :mod:`adjustable_style.ui.callbacks` (plain,
gradio-free functions). gradio is an optional dependency, imported when a page is built.

Events, queued on one ``"render"`` line (one model, a few CPU cores: running full renders side by side only
makes each slower), except the live preview:

* a slider ``.input`` (fires while dragging) → preview at ``preview_size``, ``trigger_mode="always_last"``
  so a fast drag renders the latest value instead of every intermediate one. One batched event serves all
  sliders on its own ``"preview"`` line: previews queued together (many users at once) run in batches of
  ``PREVIEW_BATCH`` per content/style pair, two batches at a time, so one batch's PNG encoding and delivery
  overlap the next one's forward pass (50 clients at once: p90 5.5 s → 3.7 s on 2 cores, README);
* a slider ``.release`` → full render at ``full_size`` + a PNG for the download button;
* an upload or a click on an example → check the file, then a full render;
* "Variations" → a gallery of seeded random weights; clicking one loads its weights into the sliders;
* "Tune the sliders to this painting" → fits a slider adapter for the current painting (minutes on a CPU, with a
  progress bar, on its own ``"tune"`` line so renders go on meanwhile), then re-renders with it;
* a new photo or painting (upload, example, the first page load), with "prepare the sliders for each new photo and
  painting" ticked (the default) → after the full render with the model's own sliders, fits the sliders to the pair
  at the preview's and the full render's size (:meth:`~adjustable_style.stylizer.Stylizer.prepare`; about 6 s on a
  CPU with the quick fit, as the box says; nothing for a pair prepared before), on the ``"tune"`` line, then
  renders again. The "Prepare" button does the same on demand (with the box unticked, or for another fit).

Example:
    >>> from adjustable_style.stylizer import Stylizer
    >>> app = build_app(Stylizer.load("models/quick"))  # doctest: +SKIP
    >>> app.launch()  # doctest: +SKIP
"""

# No `from __future__ import annotations` here: gradio finds the `gr.SelectData` parameter of an event
# handler by evaluating its annotation, which must therefore be a real class, not a string.

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..checks import InputError
from ..inputs import resolve_device
from ..prepare import DEFAULT_PRESET, estimated_seconds, preset
from ..stylizer import Stylizer
from .callbacks import Studio, example_images, thumbnail

if TYPE_CHECKING:
    import gradio

GRADIO_MISSING = "the web page needs gradio: pip install 'adjustable-style[ui]'"
NEED_STATUS = "Pick a photo and a style, then drag the sliders."
PREVIEW_BATCH = 4  # previews per batched call: small batches finish early; 4 already run ~30% faster per image

_INTRO = """\
# Adjustable style transfer
One slider per VGG19 style layer: each sets how much that layer's style loss counted for this result
(Babaeizadeh & Ghiasi, *Adjustable Real-time Style Transfer*). Lower **fine texture** to drop brush
strokes, lower **coarse structure** to keep the photo's shapes. The preview follows the slider; the full
size renders when you let go.
"""


def _gradio() -> Any:
    try:
        import gradio as gr  # noqa: PLC0415 - optional dependency
    except ImportError:
        raise ImportError(GRADIO_MISSING) from None
    return gr


def _refused(gr: Any, message: str) -> str:
    gr.Warning(message)  # a toast...
    return f"**Refused:** {message}"  # ...and the status line, which stays


def build_app(
    stylizer: Stylizer,
    max_upload_mb: float = 20,
    preview_size: int = 256,
    full_size: int = 1024,
    n_variations: int = 6,
    adapter_dir: str | Path | None = None,
    adapt_steps: int = 60,
    prepare_fit: str | int = DEFAULT_PRESET,
    auto_prepare: bool = True,
) -> "gradio.Blocks":
    """Build the page (not started) over one loaded :class:`~adjustable_style.stylizer.Stylizer`.

    Args:
        stylizer: the model; its schema decides which sliders appear.
        max_upload_mb: larger uploads are refused with a message.
        preview_size: longer side of the live preview and the variations, px (small = fast).
        full_size: longer side of the render on release and of the download, px.
        n_variations: images drawn by the "Variations" button.
        adapter_dir: where the "Tune" button saves the adapters it fits (None: memory only).
        adapt_steps: optimisation steps of one tuning (``adjustable-style adapt --steps``).
        prepare_fit: the fit of the "Prepare" button and of automatic preparation: ``"quick"`` (about 6 s on a CPU
            for the preview's and the full render's size), ``"medium"`` (about 40 s), ``"full"`` (about 90 s) or a
            number of the full fit's steps; the page says about how long
            (:func:`~adjustable_style.prepare.estimated_seconds`).
        auto_prepare: whether the "prepare the sliders for each new photo and painting" box starts ticked (a model
            without a base network has neither the box nor the button).

    Returns:
        A ``gradio.Blocks`` with its queue configured; start it with :func:`serve` or ``.launch()``.

    Raises:
        ImportError: gradio is not installed (one line saying how to install it).
    """
    gr = _gradio()
    studio = Studio(
        stylizer,
        max_upload_mb,
        preview_size,
        full_size,
        n_variations,
        adapter_dir=adapter_dir,
        adapt_steps=adapt_steps,
        prepare_fit=prepare_fit,
    )
    sliders = len(stylizer.style_layers)
    seconds = sum(estimated_seconds(preset(prepare_fit), n, sliders) for n in studio.prepare_sizes)
    if seconds < 100:  # whole seconds below 20 s, tens above
        prepare_time = f"about {round(seconds, 0 if seconds < 20 else -1):.0f} s"
    else:
        prepare_time = f"about {seconds / 60:.0f} min"
    photos, paintings = example_images()
    # Start on the pair that ships inside the package (small, so the first render is quick).
    photos.sort(key=lambda p: p.name != "photo_cat.jpg")
    paintings.sort(key=lambda p: p.name != "painting_hokusai_great_wave.jpg")
    lo, hi = stylizer.alpha_range

    with gr.Blocks(title="adjustable-style", analytics_enabled=False, delete_cache=(3600, 3600)) as app:
        gr.Markdown(_INTRO)
        content = gr.State(str(photos[0]) if photos else None)
        style = gr.State(str(paintings[0]) if paintings else None)
        table = gr.State([])  # slider values of the variations shown

        with gr.Row():
            with gr.Column(scale=1, min_width=220):
                content_view = gr.Image(
                    thumbnail(photos[0]) if photos else None,
                    label="Content photo",
                    interactive=False,
                    height=200,
                    elem_id="content-view",
                )
                content_file = gr.File(label="Upload a photo", type="filepath", height=120, elem_id="content-upload")
                content_examples = gr.Gallery(
                    [(thumbnail(p, 160), p.stem) for p in photos],
                    label="Example photos (click one)",
                    columns=4,
                    height=130,
                    allow_preview=False,
                    object_fit="cover",
                    elem_id="content-examples",
                )
            with gr.Column(scale=1, min_width=220):
                style_view = gr.Image(
                    thumbnail(paintings[0]) if paintings else None,
                    label="Style image",
                    interactive=False,
                    height=200,
                    elem_id="style-view",
                )
                style_file = gr.File(
                    label="Upload a painting or texture", type="filepath", height=120, elem_id="style-upload"
                )
                style_examples = gr.Gallery(
                    [(thumbnail(p, 160), p.stem) for p in paintings],
                    label="Example paintings (click one)",
                    columns=5,
                    height=130,
                    allow_preview=False,
                    object_fit="cover",
                    elem_id="style-examples",
                )
            with gr.Column(scale=2, min_width=320):
                result = gr.Image(
                    label="Result", type="pil", format="png", interactive=False, height=420, elem_id="result"
                )
                status = gr.Markdown(NEED_STATUS, elem_id="status")
                download = gr.DownloadButton("Download PNG", elem_id="download")

        with gr.Row():
            with gr.Column(scale=1):
                sliders = [
                    gr.Slider(lo, hi, value=value, step=0.01, label=label, elem_id=f"w-{name}")
                    for name, label, value in studio.sliders()
                ]
                strength = gr.Slider(0.0, 1.0, value=1.0, step=0.01, label="style strength", elem_id="strength")
                preserve = gr.Checkbox(False, label="preserve the photo's colours", elem_id="preserve-color")
                tune = gr.Button(
                    "Tune the sliders to this painting (minutes on a CPU)",
                    variant="secondary",
                    elem_id="tune-button",
                    visible=stylizer.has_base,
                )
                prepare = gr.Button(
                    f"Prepare the sliders for this photo and painting ({prepare_time} on a CPU)",
                    variant="secondary",
                    elem_id="prepare-button",
                    visible=stylizer.has_base,
                )
                auto = gr.Checkbox(
                    auto_prepare and stylizer.has_base,
                    label=f"prepare the sliders for each new photo and painting ({prepare_time} the first time)",
                    elem_id="auto-prepare",
                    visible=stylizer.has_base,
                )
            with gr.Column(scale=1):
                with gr.Row():
                    seed = gr.Number(0, label="seed", precision=0, minimum=0, elem_id="seed")
                    vary = gr.Button(f"Variations ({n_variations})", variant="secondary", elem_id="variations-button")
                gallery = gr.Gallery(
                    label="Variations (click one to load its weights)",
                    columns=3,
                    height=300,
                    allow_preview=False,
                    elem_id="variations",
                )

        settings = [content, style, strength, preserve, *sliders]
        render = {"concurrency_id": "render", "concurrency_limit": 1}
        full_outputs = [result, download, status]
        accepted = gr.State(False)  # did the last upload pass the checks (then render it)

        def preview(*columns: list) -> tuple:  # batched: one list per input, one entry per request
            images, messages = studio.preview_batch(*columns)
            return [img if img is not None else gr.update() for img in images], messages

        def accept(what: str):
            def handler(path: str | None, current: str | None) -> tuple:
                new, thumb, message = studio.accept(path, what)
                if new is None:  # keep the previous image; clear the refused file from the upload box
                    return current, gr.update(), None, _refused(gr, message), False
                return new, thumb, gr.update(), "Rendering…", True

            return handler

        def full_if_accepted(ok: bool, *args: Any) -> tuple:
            return studio.full(*args) if ok else (gr.update(), gr.update(), gr.update())

        yes = gr.State(True)
        fitted = gr.State(False)  # did prepare_new fit the pair (then render again with the fit)
        tune_line = {"concurrency_id": "tune", "concurrency_limit": 1, "show_progress": "minimal"}

        def prepare_sliders(
            content_path: str | None,
            style_path: str | None,
            progress: gr.Progress = gr.Progress(),  # noqa: B008 - gradio's idiom
        ) -> str:
            return studio.prepare(
                content_path, style_path, lambda i, n, obj: progress((i, n), desc="preparing the sliders")
            )

        def prepare_new(
            ok: bool,
            on: bool,
            content_path: str | None,
            style_path: str | None,
            progress: gr.Progress = gr.Progress(),  # noqa: B008 - gradio's idiom
        ) -> tuple:
            """Prepare a new pair when the box is ticked; nothing for a pair prepared before."""
            if not (ok and on and stylizer.has_base) or studio.prepared(content_path, style_path):
                return gr.update(), False
            message = prepare_sliders(content_path, style_path, progress)
            return message, studio.prepared(content_path, style_path)

        def pick(paths: list[Path]):
            def handler(evt: gr.SelectData) -> tuple:
                i = evt.index if isinstance(evt.index, int) else None
                if i is None or not 0 <= i < len(paths):  # the index comes from the browser: trust nothing
                    return gr.update(), gr.update()
                return str(paths[i]), thumbnail(paths[i])

            return handler

        def pick_variation(values: list, evt: gr.SelectData) -> list:
            row = studio.variation_values(values, evt.index if isinstance(evt.index, int) else None)
            return [gr.update()] * len(sliders) if row is None else row

        for path_state, view, box, examples, paths, what in (
            (content, content_view, content_file, content_examples, photos, "content image"),
            (style, style_view, style_file, style_examples, paintings, "style image"),
        ):
            box.upload(accept(what), [box, path_state], [path_state, view, box, status, accepted], **render).then(
                full_if_accepted, [accepted, *settings], full_outputs, **render
            ).then(prepare_new, [accepted, auto, content, style], [status, fitted], **tune_line).then(
                full_if_accepted, [fitted, *settings], full_outputs, **render
            )
            examples.select(pick(paths), None, [path_state, view], **render).then(
                studio.full, settings, full_outputs, **render
            ).then(prepare_new, [yes, auto, content, style], [status, fitted], **tune_line).then(
                full_if_accepted, [fitted, *settings], full_outputs, **render
            )

        # One event for every slider's live preview, batched: moves that queue up together (several users, or
        # several sliders) render in one forward pass per content/style pair instead of one after another;
        # two in flight, so encoding and sending one batch overlaps computing the next.
        gr.on(
            [s.input for s in [*sliders, strength]],
            preview,
            settings,
            [result, status],
            trigger_mode="always_last",
            show_progress="hidden",
            batch=True,
            max_batch_size=PREVIEW_BATCH,
            concurrency_id="preview",
            concurrency_limit=2,
        )
        for slider in [*sliders, strength]:
            slider.release(studio.full, settings, full_outputs, show_progress="minimal", **render)
        preserve.input(studio.full, settings, full_outputs, **render)
        vary.click(studio.variations, [content, style, strength, preserve, seed], [gallery, table, status], **render)
        gallery.select(pick_variation, [table], sliders, **render).then(studio.full, settings, full_outputs, **render)

        def tune_sliders(style_path: str | None, progress: gr.Progress = gr.Progress()) -> str:  # noqa: B008 - gradio's idiom
            return studio.tune(style_path, lambda i, n, obj: progress((i, n), desc="tuning the sliders"))

        tune.click(tune_sliders, [style], [status], concurrency_id="tune", concurrency_limit=1).then(
            studio.full, settings, full_outputs, **render
        )

        prepare.click(prepare_sliders, [content, style], [status], concurrency_id="tune", concurrency_limit=1).then(
            studio.full, settings, full_outputs, **render
        )
        app.load(studio.full, settings, full_outputs, **render).then(
            prepare_new, [yes, auto, content, style], [status, fitted], **tune_line
        ).then(full_if_accepted, [fitted, *settings], full_outputs, **render)
        auto.input(prepare_new, [yes, auto, content, style], [status, fitted], **tune_line).then(
            full_if_accepted, [fitted, *settings], full_outputs, **render
        )

    app.queue(default_concurrency_limit=1)
    return app


def serve(
    model: str | Path = "default",
    host: str = "127.0.0.1",
    port: int = 7860,
    device: str = "auto",
    share: bool = False,
    max_upload_mb: float = 20,
    block: bool = True,
    quiet: bool = False,
    backend: str = "auto",
    adapters: str | None = None,
    prepare_fit: str | int = DEFAULT_PRESET,
    auto_prepare: bool = True,
) -> "gradio.Blocks":
    """Load a model and serve the page (on loopback unless ``host`` says otherwise).

    Args:
        model: an export folder, a ``.ckpt`` or a bundled model name (``"default"``).
        host: interface to bind; ``"0.0.0.0"`` exposes the page to the network.
        port: TCP port.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``…
        share: ask gradio for a public ``*.gradio.live`` link (needs internet; anyone with it can use the page).
        max_upload_mb: larger uploads are refused (by gradio at upload time, and again by the page).
        block: wait until interrupted (the CLI); False returns at once with the server running in a thread.
        quiet: no startup banner.
        backend: what runs the network (see :meth:`Stylizer.load`); ``"auto"`` here means onnxruntime on the CPU
            whenever onnxruntime and onnxscript are installed (exporting the graphs once into the user cache,
            ~25 s at the first start): a server lives long enough for that to pay off (README: benchmark).
        adapters: a folder of slider adapters (``adjustable-style adapt``): an uploaded painting that one was fitted
            for gets its stronger sliders (matched by pixels, not by file name); the page's "Tune" button saves
            the adapters it fits there too (the folder is created if missing). None: the per-user adapter store
            (:meth:`Stylizer.use_adapter_store`), where ``adjustable-style adapt`` without ``-o`` and Tune save.
        prepare_fit: the fit of the "Prepare" button and of automatic preparation
            (:func:`~adjustable_style.prepare.preset`): ``"quick"``, ``"medium"`` or ``"full"`` (closer to the exact
            optimum, about 4 and 8 times as long).
        auto_prepare: prepare each new photo and painting (the page's box starts ticked).

    Returns:
        The running app (``app.local_url`` is its address; ``app.close()`` stops it).
    """
    _gradio()  # fail with the install hint before spending time on the model
    if backend == "auto" and all(importlib.util.find_spec(m) for m in ("onnxruntime", "onnxscript")):
        backend = "onnxruntime" if resolve_device(device).type == "cpu" else "torch"
    if adapters is not None and Path(adapters).exists() and not Path(adapters).is_dir():
        raise InputError(f"--adapters '{adapters}' is a file; give a folder (the page saves new adapters into it)")
    st = Stylizer.load(model, device=device, backend=backend)
    if adapters is not None and any(Path(adapters).glob("*.safetensors")):
        st.add_adapters_from(adapters)
    elif adapters is None and st.has_base:
        st.use_adapter_store()  # paintings tuned before (adjustable-style adapt, Tune) get their adapters
    if st.has_base:
        st.use_preparation_store()  # pairs prepared before (stylize --prepare, the Prepare button)
    app = build_app(
        st, max_upload_mb=max_upload_mb, adapter_dir=adapters, prepare_fit=prepare_fit, auto_prepare=auto_prepare
    )
    app.launch(
        server_name=host,
        server_port=port,
        share=share,
        max_file_size=f"{max_upload_mb:g}mb",
        prevent_thread_lock=not block,
        quiet=quiet,
        ssr_mode=False,
        show_error=True,
    )
    return app
