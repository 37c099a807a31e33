"""The notebooks are committed with their outputs, and run top to bottom (nbclient, kernel python3) with a tiny
model and tiny step counts."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = ("sliders.ipynb", "train_and_evaluate.ipynb")


@pytest.fixture()
def run_notebook(monkeypatch: pytest.MonkeyPatch):
    # jupyter_core warns (DeprecationWarning) about its path migration unless this is set; the kernel inherits it.
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel", reason="the notebooks run on the python3 kernel from ipykernel")
    pytest.importorskip("ipywidgets")
    pytest.importorskip("matplotlib")

    def run(name: str, env: dict[str, str], timeout: int = 180):
        for k, v in env.items():
            monkeypatch.setenv(k, v)  # the kernel process inherits the environment
        monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        client = nbclient.NotebookClient(
            nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
        )
        t0 = time.perf_counter()
        client.execute()
        return nb, time.perf_counter() - t0

    return run


def _outputs(nb, kind: str) -> list:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if kind in o.get("data", {})]


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_committed_with_its_outputs(name: str) -> None:
    """The repository holds each notebook as `python scripts/execute_notebooks.py` left it: every code cell ran,
    in order, without an error, and the figures are there for a reader who does not run it."""
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    assert nb.nbformat == 4 and nb.metadata.kernelspec.name == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), f"{name}: not run top to bottom"
    assert not [o for c in code for o in c.outputs if o.output_type == "error"], f"{name}: a cell failed"
    assert _outputs(nb, "image/png"), f"{name}: no figure saved"
    assert (NOTEBOOKS / name).stat().st_size < 2_000_000


def test_sliders_notebook(run_notebook, tiny_model_dir: Path) -> None:
    nb, _ = run_notebook(
        "sliders.ipynb",
        {
            "ADJUSTABLE_STYLE_MODEL": str(tiny_model_dir),
            "ADJUSTABLE_STYLE_NB_SIZE": "96",
            "ADJUSTABLE_STYLE_NB_STEPS": "2",
        },
    )
    assert _outputs(nb, "application/vnd.jupyter.widget-view+json"), "no slider widgets displayed"
    assert len(_outputs(nb, "image/png")) >= 2, "expected the sweep plot and the strip"
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "fine texture (relu2_2)" in text


def test_train_and_evaluate_notebook(run_notebook, shared_data: Path, tmp_path: Path) -> None:
    nb, _ = run_notebook(
        "train_and_evaluate.ipynb",
        {
            "ADJUSTABLE_STYLE_NB_TRAIN_STEPS": "2",
            "ADJUSTABLE_STYLE_NB_CROP": "64",
            "ADJUSTABLE_STYLE_NB_OUT": str(tmp_path),
            "ADJUSTABLE_STYLE_DATA": str(shared_data),
        },
    )
    assert (tmp_path / "model" / "config.json").is_file() and (tmp_path / "model" / "model.safetensors").is_file()
    assert len(list(tmp_path.glob("runs/*/*/metrics.csv"))) == 1
    assert len(_outputs(nb, "image/png")) >= 2, "expected the loss plot and the contact sheet"
