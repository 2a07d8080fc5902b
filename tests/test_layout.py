"""The map of the code (README, "Map of the code") kept true: stages import only the stages below
them and the shared rooms, no import circles, no drkit import hidden inside a function."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).parents[1] / "src"
PKG = SRC / "drkit"

# layer of each room: a module may import its own stage and the layers below, never above
LAYERS = {
    "drkit.errors": 0, "drkit._version": 0, "drkit._compat": 0, "drkit._progress": 0, "drkit.metrics": 0,
    "drkit.data": 1,
    "drkit.augment": 2, "drkit.models": 2,
    "drkit.inference": 3,
    "drkit.reinforcement": 4,
    "drkit.training": 5,
    "drkit.evaluate": 6,
    "drkit.teach": 7, "drkit.synth": 7,
    "drkit.demo": 8,
    "drkit.cli": 9,
    "drkit": 10,  # the public API re-exports everything
}
# imports that stay inside a function, each for a reason the code comments on
LAZY = {
    ("drkit.synth", "drkit.synth.loop"),  # run_synth needs gymnasium (the synth extra)
}


def _modules() -> dict[str, Path]:
    out = {}
    for p in PKG.rglob("*.py"):
        parts = list(p.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _imports(name: str) -> list[tuple[str, bool]]:
    """(imported drkit module, inside a function?) for every drkit import of ``name``."""
    path = MODULES[name]
    base = name if _is_package(name) else name.rpartition(".")[0]
    out: list[tuple[str, bool]] = []

    def visit(node: ast.AST, in_fn: bool) -> None:
        for ch in ast.iter_child_nodes(node):
            if isinstance(ch, ast.ImportFrom):
                if ch.level:
                    parts = base.split(".")
                    parts = parts[: len(parts) - (ch.level - 1)]
                    mod = ".".join(parts + ([ch.module] if ch.module else []))
                else:
                    mod = ch.module or ""
                if mod == "drkit" or mod.startswith("drkit."):
                    for a in ch.names:
                        sub = f"{mod}.{a.name}"
                        out.append((sub if sub in MODULES else mod, in_fn))
            elif isinstance(ch, ast.Import):
                out.extend((a.name, in_fn) for a in ch.names if a.name.startswith("drkit"))
            visit(ch, in_fn or isinstance(ch, (ast.FunctionDef, ast.AsyncFunctionDef)))

    visit(ast.parse(path.read_text()), False)
    return out


def _room(name: str) -> str:
    while name not in LAYERS:
        name = name.rpartition(".")[0]
    return name


def test_every_module_has_a_room():
    assert len(MODULES) > 40
    for name in MODULES:
        assert _room(name) in LAYERS, name


def test_no_upward_import_between_stages():
    upward = []
    for name in MODULES:
        room = _room(name)
        for dep, _ in _imports(name):
            dep_room = _room(dep)
            if dep_room != room and LAYERS[dep_room] >= LAYERS[room]:
                upward.append(f"{name} -> {dep}")
    assert not upward, "imports that run up (or across) the stages: " + ", ".join(upward)


def test_no_drkit_import_inside_a_function():
    hidden = [f"{name} -> {dep}" for name in MODULES for dep, in_fn in _imports(name)
              if in_fn and (name, dep) not in LAZY]
    assert not hidden, "move these imports to the top of the module: " + ", ".join(hidden)


def test_no_import_circles():
    graph = {name: {dep for dep, in_fn in _imports(name) if not in_fn and dep != name} for name in MODULES}
    state: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def walk(n: str) -> None:
        state[n] = 1
        stack.append(n)
        for d in sorted(graph.get(n, ())):
            if state.get(d) == 1:
                circles.append(stack[stack.index(d):] + [d])
            elif d not in state:
                walk(d)
        stack.pop()
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            walk(n)
    assert not circles, "import circles: " + "; ".join(" -> ".join(c) for c in circles)


def _one_letter_apart(a: str, b: str) -> bool:
    if len(a) > len(b):
        a, b = b, a
    return len(b) == len(a) + 1 and any(b[:i] + b[i + 1:] == a for i in range(len(b)))


def test_no_two_module_names_differ_by_a_letter():
    leaves = sorted({n.rpartition(".")[2] for n in MODULES})
    close = [(a, b) for i, a in enumerate(leaves) for b in leaves[i + 1:] if _one_letter_apart(a, b)]
    assert not close, f"module names a reader cannot tell apart: {close}"
    assert _one_letter_apart("reinforce", "reinforced")  # the rule itself (drkit 0.1 had both)


def test_the_checker_sees_an_upward_import(tmp_path, monkeypatch):
    """The rule can fail: a data module importing the train stage is caught."""
    fake = dict(MODULES)
    bad = tmp_path / "data.py"
    bad.write_text("from .training.loop import TrainConfig\n")
    fake["drkit.data"] = bad
    monkeypatch.setattr(f"{__name__}.MODULES", fake)
    with pytest.raises(AssertionError, match="drkit.data -> drkit.training.loop"):
        test_no_upward_import_between_stages()
