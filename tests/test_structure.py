"""The layout DESIGN.md fixes, checked on the source: who may import whom, and no import loops."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from tests.cli import REPO

PACKAGES = ("common", "shards", "generate", "train", "evaluate", "experiments")
# What each package may import of the project (DESIGN.md, "Layout").
ALLOWED = {
    "common": set(),
    "shards": {"common"},
    "generate": {"common", "shards"},
    "train": {"common", "shards"},
    "evaluate": {"common", "shards", "train"},
    "experiments": set(PACKAGES),
}
THIRD_PARTY = {
    "common": {"click", "torch", "yaml"},
    "shards": {"click", "numpy", "PIL", "torch", "torchvision", "tqdm", "webdataset", "fsspec"},
}


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(path: Path, name: str) -> set[str]:
    """Absolute names of every module ``path`` imports, at any depth (lazy imports count too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def project_imports() -> dict[str, set[str]]:
    known = modules()
    return {name: {target for target in imports(path, name) if target in known and target != name}
            for name, path in known.items()}


def test_packages_import_only_what_the_layout_allows():
    wrong = []
    for name, targets in project_imports().items():
        package = name.split(".")[0]
        for target in targets:
            if target.split(".")[0] not in ALLOWED[package] | {package}:
                wrong.append(f"{name} imports {target}")
    assert wrong == []


def test_the_helper_floor_and_the_format_use_only_their_libraries():
    wrong = []
    for name, path in modules().items():
        package = name.split(".")[0]
        if package not in THIRD_PARTY:
            continue
        for target in imports(path, name):
            top = target.split(".")[0]
            if top not in sys.stdlib_module_names and top not in PACKAGES and top not in THIRD_PARTY[package]:
                wrong.append(f"{name} imports {target}")
    assert wrong == []


def test_no_import_loop():
    graph = project_imports()
    # A package's __init__ importing its own submodules is how packages work, not a loop.
    edges = {name: {target for target in targets if not name.startswith(f"{target}.")}
             for name, targets in graph.items()}
    loops, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for target in sorted(edges.get(node, ())):
            if state.get(target) == "open":
                loops.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in state:
                visit(target, [*path, target])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert loops == []


def test_no_test_writes_sets_by_its_own_protocol():
    """Tests write sets through SetWriter only: no shard writer, manifest builder or record of their own."""
    private = {"shards.writer", "shards.writer.ShardWriter", "shards.manifest.complete_manifest"}
    wrong = [f"{path.relative_to(REPO)} imports {target}"
             for path in (REPO / "tests").rglob("*.py")
             for target in imports(path, "") if target in private]
    assert wrong == []
