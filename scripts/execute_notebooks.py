"""Run the notebooks top to bottom and save them with their outputs (what the repository commits).

    python scripts/execute_notebooks.py                    # both notebooks, default settings (~3 min on 2 cores)
    python scripts/execute_notebooks.py sliders.ipynb      # one of them

Each notebook runs in notebooks/ on the python3 kernel (ipykernel), with the settings it reads from the
environment left at their defaults; the file is replaced only when the whole notebook ran without an error.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbclient
import nbformat

from adjustable_style.atomic import write_file

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def execute(path: Path, timeout: int) -> float:
    """Execute ``path`` in place (atomically); returns the seconds it took."""
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    t0 = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - t0
    nb.metadata.pop("widgets", None)  # live widget state: meaningless without a kernel, and large
    write_file(path, lambda p: nbformat.write(nb, str(p)))
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebook file names in notebooks/ (default: all)")
    parser.add_argument("--timeout", type=int, default=1200, help="seconds per cell (default %(default)s)")
    args = parser.parse_args(argv)
    os.environ.setdefault("JUPYTER_PLATFORM_DIRS", "1")
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    paths = [NOTEBOOKS / n for n in args.names] if args.names else sorted(NOTEBOOKS.glob("*.ipynb"))
    for path in paths:
        if not path.is_file():
            print(f"execute_notebooks: error: no notebook '{path}'", file=sys.stderr)
            return 1
        print(f"{path.name}: {execute(path, args.timeout):.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
