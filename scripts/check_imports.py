"""Import graph of our packages, checked against the layer order: `python scripts/check_imports.py` (`make lint`).

Reads the AST of every module under rag/, embeddings/, api/ (and training/ when present), including imports inside
functions, and maps each module to its package in ``LAYERS``. Prints one line per package (layer, modules, lines,
the packages it imports) and exits 1 when

* a module imports a package of a higher layer (an upward import: data flows core -> ... -> api, never back),
* modules or packages import each other (a cycle, lazy imports included),
* or a module sits in no declared package.

An import of ours that names no module (here and in eval/, bench/, scripts/, tests/) is reported as a warning:
mypy fails on those in rag/, embeddings/ and api/; elsewhere it may be a module still being written.

Packages of the same layer may import each other one way (rag.cli -> rag.pipeline), never both ways.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOPS = ("rag", "embeddings", "api", "training")
CLIENTS = ("eval", "bench", "scripts", "tests")
# (package, layer): a package may import its own layer's packages (no cycles) and lower layers only.
LAYERS: list[tuple[str, int]] = [
    ("rag", 0),  # rag/__init__.py: the version string, nothing else
    ("rag.core", 0),
    ("embeddings", 1),
    ("rag.ingest", 2),
    ("rag.index", 3),
    ("rag.search", 4),
    ("rag.answer", 5),
    ("rag.output", 6),
    ("rag.pipeline", 6),
    ("rag.cli", 6),
    ("rag.conversations", 6),  # stored conversations (SQLite): the API writes them, `rag report` reads them
    ("api", 7),
    ("training", 7),
]
RANK = dict(LAYERS)


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_of(module: str) -> str | None:
    """The longest declared package that is ``module`` or contains it."""
    best = None
    for pkg, _ in LAYERS:
        if (module == pkg or module.startswith(pkg + ".")) and (best is None or len(pkg) > len(best)):
            best = pkg
    return best


def collect(root: Path) -> dict[str, Path]:
    mods: dict[str, Path] = {}
    for top in TOPS:
        for path in sorted((root / top).rglob("*.py")) if (root / top).is_dir() else []:
            if ".venv" not in path.parts:
                mods[module_name(path, root)] = path
    return mods


def imports(module: str, path: Path, mods: dict[str, Path]) -> tuple[list[tuple[str, int]], list[str]]:
    """(module of ours, line) for every import in the file, and the imports of ours that name no module."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    is_pkg = path.name == "__init__.py"
    out: list[tuple[str, int]] = []
    missing: list[str] = []

    def resolve(name: str, line: int) -> None:
        if name.split(".")[0] not in TOPS:
            return
        if name not in mods:
            missing.append(f"{path.relative_to(ROOT)}:{line}: import of {name!r}: no such module of ours")
        elif name != module and (name, line) not in out:
            out.append((name, line))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                resolve(a.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's own package upwards
                pkg = module.split(".") if is_pkg else module.split(".")[:-1]
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join(pkg + ([base] if base else []))
            for a in node.names:  # `from pkg import module` imports the module, else a name of pkg
                full = f"{base}.{a.name}"
                resolve(full if full in mods else base, node.lineno)
    return out, missing


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        found.append(sorted(comp))
    return found


def main() -> int:
    ap = argparse.ArgumentParser(prog="python scripts/check_imports.py", description=__doc__.split("\n")[0])
    ap.add_argument("--modules", action="store_true", help="also print the module-level edges")
    args = ap.parse_args()
    mods = collect(ROOT)
    errors: list[str] = []
    warnings: list[str] = []
    for client in CLIENTS:  # not layered (they may import anything of ours), but their imports must resolve
        for path in sorted((ROOT / client).rglob("*.py")) if (ROOT / client).is_dir() else []:
            warnings += imports(module_name(path, ROOT), path, mods)[1]
    mod_graph: dict[str, set[str]] = {m: set() for m in mods}
    pkg_graph: dict[str, set[str]] = defaultdict(set)
    lines: dict[str, int] = defaultdict(int)
    count: dict[str, int] = defaultdict(int)
    for m, path in mods.items():
        src = package_of(m)
        if src is None:
            errors.append(f"{path.relative_to(ROOT)}: module {m} is in no declared package: add it to LAYERS")
            continue
        lines[src] += len(path.read_text(encoding="utf-8").splitlines())
        count[src] += 1
        found, miss = imports(m, path, mods)
        warnings += miss
        for dst_mod, line in found:
            mod_graph[m].add(dst_mod)
            dst = package_of(dst_mod)
            if dst is None or dst == src:
                continue
            pkg_graph[src].add(dst)
            if RANK[dst] > RANK[src]:
                errors.append(f"{path.relative_to(ROOT)}:{line}: upward import {m} -> {dst_mod} "
                              f"({src}, layer {RANK[src]} -> {dst}, layer {RANK[dst]})")
    for comp in cycles(mod_graph):
        errors.append("module cycle: " + " <-> ".join(comp))
    for comp in cycles({p: set(d) for p, d in pkg_graph.items()}):
        errors.append("package cycle: " + " <-> ".join(comp))

    print("layer  package        modules  lines  imports")
    for pkg, rank in sorted(LAYERS, key=lambda x: (x[1], x[0])):
        if count[pkg]:
            deps = ", ".join(sorted(pkg_graph[pkg], key=lambda p: (RANK[p], p))) or "-"
            print(f"{rank:>5}  {pkg:<14} {count[pkg]:>7} {lines[pkg]:>6}  {deps}")
    print(f"total  {'':<14} {sum(count.values()):>7} {sum(lines.values()):>6}")
    if args.modules:
        for m in sorted(mod_graph):
            if mod_graph[m]:
                print(f"{m} -> {', '.join(sorted(mod_graph[m]))}")
    if warnings:
        print(f"\n{len(warnings)} unresolved import(s) (a stale path, or a module not written yet):", *warnings,
              sep="\n  ", file=sys.stderr)
    if errors:
        print(f"\n{len(errors)} import problem(s):", *errors, sep="\n  ", file=sys.stderr)
        return 1
    print("ok: no upward imports, no cycles")
    return 0


if __name__ == "__main__":
    sys.exit(main())
