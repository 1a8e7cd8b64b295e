"""The package's import graph has no circle (issue 22): every ``import`` and ``from … import``
of a quanta module, at module level or inside a function, read statically from the sources."""

from __future__ import annotations

import ast
from pathlib import Path

import quanta

ROOT = Path(quanta.__file__).parent


def _graph() -> dict[str, set[str]]:
    files = {}
    for f in [*ROOT.rglob("*.py"), *ROOT.rglob("*.pyx")]:
        name = ".".join(f.relative_to(ROOT.parent).with_suffix("").parts).removesuffix(".__init__")
        files[name] = f
    graph: dict[str, set[str]] = {m: set() for m in files}
    for m, f in files.items():
        if f.suffix != ".py":
            continue
        for node in ast.walk(ast.parse(f.read_text())):
            ours = isinstance(node, ast.ImportFrom) and (node.module or "").startswith("quanta")
            if ours and node.level == 0:
                for a in node.names:
                    full = f"{node.module}.{a.name}"
                    graph[m].add(full if full in files else node.module)
            elif isinstance(node, ast.Import):
                graph[m].update(a.name for a in node.names if a.name.startswith("quanta"))
    return {m: {d for d in deps if d in files and d != m} for m, deps in graph.items()}


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        x = stack.pop()
                        on.discard(x)
                        comp.append(x)
                        if x == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
            elif w not in index:
                index[w] = low[w] = len(index)
                stack.append(w)
                on.add(w)
                work.append((w, iter(sorted(graph[w]))))
            elif w in on:
                low[v] = min(low[v], index[w])
    return out


def test_the_finder_sees_a_circle():
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_circle():
    assert _circles(_graph()) == []


def _private_imports() -> list[str]:
    """``from quanta.x import _name`` where ``_name`` is not a module (a private helper used
    from another file: it belongs in a public place)."""
    modules = {".".join(f.relative_to(ROOT.parent).with_suffix("").parts).split(".cpython")[0]
               for f in [*ROOT.rglob("*.py"), *ROOT.rglob("*.pyx"), *ROOT.rglob("*.so")]}
    out = []
    for f in ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("quanta"):
                out += [f"{f.relative_to(ROOT.parent)}: {node.module}.{a.name}" for a in node.names
                        if a.name.startswith("_") and f"{node.module}.{a.name}" not in modules]
    return out


def test_no_private_name_is_imported_across_files():
    # issue 22: e.g. gguf_load._hf_name was imported by the exporter and the contract
    assert _private_imports() == []
