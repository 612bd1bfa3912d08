"""The import rules, checked on the source: one-way layers, no cycles, no exceptions.

    nexus.core  <-  models  <-  nexus.<domain>, nexus.runtime  <-  activities  <-  workflows  <-  api, workers
                                                                                             <-  nexus.cli/stack/client

A module may import its own layer or the layers below it, with three narrower rules: workflows import only
contracts (nexus.core, models, `nexus.<domain>.contracts`), activities and each other; `api` never imports
activities, workflows or workers (it starts workflows by name through domain services); domain packages never
import each other in a circle.
"""

from __future__ import annotations

import ast
import itertools
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("nexus", "models", "activities", "workflows", "api", "workers")
ENTRYPOINTS = ("nexus.cli", "nexus.stack", "nexus.client")
DOMAINS = ("identity", "media", "search", "chat", "memory", "llm", "storage", "ops")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


def resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The project module an import refers to (the longest known prefix), or None for third-party code."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """Every project module `path` imports, at any depth (function-level and TYPE_CHECKING imports count)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            target = resolve(name, modules)
            if target:
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {m: imports_of(p, modules) - {m} for m, p in modules.items()}


def layer(module: str) -> int:
    if module.startswith(ENTRYPOINTS):
        return 6
    top = module.split(".")[0]
    if top == "nexus":
        return 0 if module.startswith("nexus.core") or module == "nexus" else 2
    return {"models": 1, "activities": 3, "workflows": 4, "api": 5, "workers": 5}[top]


def package(module: str) -> str:
    """The unit whose cycles matter: nexus.<domain> (or nexus.runtime), else the top-level package."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "nexus" and len(parts) > 1 else parts[0]


def test_layers_point_one_way() -> None:
    bad = [
        f"{src} -> {dst}"
        for src, targets in graph().items()
        for dst in targets
        if layer(dst) > layer(src) and not (src.startswith(ENTRYPOINTS) and dst.startswith(ENTRYPOINTS))
    ]
    assert not bad, "imports that point up a layer:\n" + "\n".join(sorted(bad))


def test_workflows_import_only_contracts_and_activities() -> None:
    def allowed(dst: str) -> bool:
        return (
            dst.startswith(("nexus.core", "models", "activities", "workflows"))
            or dst == "nexus"
            or (dst.startswith("nexus.") and dst.endswith(".contracts"))
        )

    bad = [f"{s} -> {d}" for s, ts in graph().items() if s.startswith("workflows") for d in ts if not allowed(d)]
    assert not bad, "workflows may import contracts and activity references only:\n" + "\n".join(sorted(bad))


def test_api_and_workers_stay_apart() -> None:
    bad = [
        f"{s} -> {d}"
        for s, ts in graph().items()
        for d in ts
        if (s.startswith("api") and d.startswith(("activities", "workflows", "workers")))
        or (s.startswith("workers") and d.startswith("api"))
    ]
    assert not bad, "\n".join(sorted(bad))


def test_no_import_cycles_between_modules() -> None:
    cycles = _cycles(graph())
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_no_cycles_between_domain_packages() -> None:
    packages: dict[str, set[str]] = defaultdict(set)
    for src, targets in graph().items():
        for dst in targets:
            if package(src) != package(dst):
                packages[package(src)].add(package(dst))
    cycles = _cycles(packages)
    assert not cycles, "package cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_every_domain_package_has_the_same_shape() -> None:
    """Each domain has `service.py`, its public verbs; a newcomer knows where to look first."""
    missing = [d for d in DOMAINS if not (ROOT / "nexus" / d / "service.py").exists()]
    assert not missing, f"domain packages without service.py: {missing}"
    strays = [p.name for p in (ROOT / "nexus").glob("*.py") if p.stem not in ("__init__", "runtime", *_entry_stems())]
    assert not strays, f"modules loose in nexus/ (put them in a domain package or nexus/core): {strays}"


def _entry_stems() -> list[str]:
    return [e.split(".")[1] for e in ENTRYPOINTS]


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan), each as a readable path."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = itertools.count()

    def visit(v: str) -> None:
        index[v] = low[v] = next(counter)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
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

    for v in list(edges):
        if v not in index:
            visit(v)
    return found


def test_the_checker_sees_a_cycle_and_an_upward_edge() -> None:
    """The rules above must be able to fail."""
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert layer("nexus.media.service") < layer("workflows.media") < layer("api.routes.media")
    assert layer("nexus.core.db") < layer("models") < layer("nexus.search.service") < layer("nexus.cli")
