"""No module imports from a layer above its own (``../shared/DESIGN.md``, "Layers").

Read from the source with ``ast`` (nothing is imported), so a violation fails here even when the
offending import sits inside a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "python" / "vsr"

# Lowest first. A module may import from its own layer and the layers below it.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("wire", "errors", "observability"),
    ("config", "pii", "ngrams"),
    ("models", "model_files", "_core"),
    ("inference",),
    ("signals", "cache"),
    ("router", "routing"),
    ("runtime",),
    ("extproc", "api", "settings"),
    # Tooling and entry points: they may use everything below.
    ("integrations", "training", "simulator", "devstack", "table_io", "commands", "cli"),
)
# The package's public face re-exports from every layer.
EXEMPT = {"__init__", "__main__"}


def layer_of(module: str) -> int:
    top = module.split(".")[1] if module.startswith("vsr.") else module
    for index, names in enumerate(LAYERS):
        if top in names:
            return index
    raise AssertionError(f"vsr.{top} is in no layer: add it to LAYERS in {__file__}")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return [(line, name) for line, name in found if name == "vsr" or name.startswith("vsr.")]


def test_no_module_imports_from_a_layer_above() -> None:
    violations = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        if name.split(".")[-1] in EXEMPT and name.count(".") == 1:
            continue
        own = layer_of(name)
        for line, imported in imported_modules(path):
            if imported == "vsr":
                continue
            if layer_of(imported) > own:
                violations.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {imported}")
    assert violations == []
