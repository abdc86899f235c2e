"""The import architecture of frptx, checked in CI.

1. The layer contract in pyproject.toml ([tool.importlinter]), via import-linter: each layer
   imports only the layers below it (protocols know nothing of frptx.client/server, ...).
2. No import cycle anywhere among frptx's non-test modules, runtime or type-only: every
   strongly connected component of the module graph has one module.
Exits non-zero, naming the cycle, when either fails.
"""
from __future__ import annotations

import subprocess
import sys

import grimp


def cycles(package: str = "frptx") -> list[list[str]]:
    graph = grimp.build_graph(package)
    modules = sorted(m for m in graph.modules if not m.startswith(f"{package}.test"))
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.find_modules_directly_imported_by(v)):
            if not w.startswith(package) or w.startswith(f"{package}.test"):
                continue
            if w not in index:
                visit(w)
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

    sys.setrecursionlimit(10_000)
    for module in modules:
        if module not in index:
            visit(module)
    return found


def main() -> int:
    status = subprocess.run(["lint-imports", "--no-cache"]).returncode
    found = cycles()
    for component in found:
        print("import cycle:", " <-> ".join(component))
    if not found:
        print("no import cycles among frptx's modules")
    return 1 if (status or found) else 0


if __name__ == "__main__":
    raise SystemExit(main())
