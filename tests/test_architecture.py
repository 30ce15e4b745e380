"""Imports point one way (docs/architecture.md): transport -> service -> store, every
layer may use the shared base, and no part imports the one that assembles it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pns_sio"

# Layer of each module, by its path under pns_sio/ (a directory stands for its modules).
LAYERS: dict[str, str] = {
    # shared base: names, settings, codecs, metrics; imports nothing above it
    "errors": "base",
    "wire": "base",
    "jsoncodec": "base",
    "settings": "base",
    "settings_doc": "base",
    "quiet_log": "base",
    "limits": "base",
    "metrics": "base",
    "tasks": "base",
    "deadlines": "base",
    "store": "store",
    # what services and the transport check payloads with; reads the store's types
    "schemas": "service",
    "counts": "service",
    "delivery": "service",
    "notifier": "service",
    "signals": "service",
    "retention": "service",
    "auth": "service",
    "sio": "transport",
    "realtime": "transport",
    "http_api": "transport",
    "ops": "transport",
    "origins": "transport",
    "openapi": "transport",
    "static_files": "transport",
    "demo": "transport",
    "node": "assembly",
    "app": "assembly",
    # entry points and the application-side library
    "cli": "entry",
    "notify_cli": "entry",
    "publisher": "entry",
    "__main__": "entry",
    "__init__": "entry",
}
MAY_IMPORT: dict[str, set[str]] = {
    "base": {"base"},
    "store": {"base", "store"},
    "service": {"base", "store", "service"},
    "transport": {"base", "store", "service", "transport"},
    "assembly": {"base", "store", "service", "transport", "assembly"},
    "entry": {"base", "store", "service", "transport", "assembly", "entry"},
}


def _layer(module: str) -> str:
    """``pns_sio.store.sqlite`` -> ``store``; ``pns_sio.app`` -> ``assembly``."""
    parts = module.split(".")[1:] or ["__init__"]
    return LAYERS[parts[0]]


def _module_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """The pns_sio modules ``path`` imports (relative imports resolved)."""
    module = _module_of(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("pns_sio")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("pns_sio"):
                found.add(target)
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_one_way(path: Path) -> None:
    module = _module_of(path)
    layer = _layer(module)
    wrong = {
        target
        for target in _imports(path)
        if target != "pns_sio" and _layer(target) not in MAY_IMPORT[layer]
    }
    assert not wrong, f"{module} ({layer}) imports {sorted(wrong)}: see docs/architecture.md"


def test_only_the_entry_points_import_the_composition_root() -> None:
    importers = {_module_of(p) for p in MODULES if "pns_sio.app" in _imports(p)}
    # pns_sio/__init__.py re-exports create_app for applications.
    assert importers <= {"pns_sio", "pns_sio.cli"}, importers


def test_every_module_has_a_layer() -> None:
    for path in MODULES:
        _layer(_module_of(path))  # KeyError names a module docs/architecture.md misses
