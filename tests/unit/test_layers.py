"""No module imports from a layer above its own (``../shared/DESIGN.md``, "Layers"), and serving
code never imports tooling ("Serving vs tooling").

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
    # Offline classification (vsr classify / eval, Ray): predictors and metrics over the signals.
    ("tasks",),
    ("router", "routing"),
    ("runtime",),
    ("extproc", "api", "settings", "workers"),
    # Tooling and entry points: they may use everything below.
    (
        "integrations",
        "training",
        "setup_tools",
        "simulator",
        "devstack",
        "table_io",
        "commands",
        "cli",
    ),
)
# Tooling that is not in the serving path: training and data generation (the ``train`` extra) and
# setup-time conversion. Only these modules may import them (``vsr train`` does so lazily).
TOOLING = ("training", "setup_tools")
TOOLING_IMPORTERS = {"vsr.commands.train"}
# Third-party packages only tooling may import: the ``train`` extra and what fine-tuning adds.
TOOLING_PACKAGES = (
    "sklearn",
    "scipy",
    "faker",
    "time_machine",
    "torch",
    "tokenizers",
    "safetensors",
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


def all_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every absolute import in the file, including those inside functions."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def imported_modules(path: Path) -> list[tuple[int, str]]:
    return [(line, name) for line, name in all_imports(path) if name.split(".")[0] == "vsr"]


def is_tooling(module: str) -> bool:
    parts = module.split(".")
    return len(parts) > 1 and parts[0] == "vsr" and parts[1] in TOOLING


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


def tooling_violations(package: Path) -> list[str]:
    """Serving modules of ``package`` (a ``vsr`` tree) that import tooling, as ``file:line``."""
    violations = []
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        name = ".".join(parts)
        if is_tooling(name):
            continue
        for line, imported in all_imports(path):
            third_party = imported.split(".")[0] in TOOLING_PACKAGES
            tooling = is_tooling(imported) and name not in TOOLING_IMPORTERS
            if third_party or tooling:
                violations.append(f"{path.relative_to(package.parent)}:{line} imports {imported}")
    return violations


def test_serving_code_never_imports_tooling() -> None:
    """Training, data generation and model conversion stay off the serving path."""
    assert tooling_violations(PACKAGE) == []


def test_the_tooling_rule_catches_a_serving_import(tmp_path: Path) -> None:
    """A lazy import inside a function is still an import; only ``vsr train`` may make one."""
    (tmp_path / "vsr" / "signals").mkdir(parents=True)
    (tmp_path / "vsr" / "commands").mkdir(parents=True)
    (tmp_path / "vsr" / "signals" / "domain.py").write_text(
        "def load():\n    from vsr.training.heads import fit_linear_head\n"
        "    import sklearn.linear_model\n    from vsr.setup_tools import rampart\n"
    )
    (tmp_path / "vsr" / "commands" / "train.py").write_text("def run():\n    import vsr.training\n")
    (tmp_path / "vsr" / "training.py").write_text("import sklearn\n")
    assert tooling_violations(tmp_path / "vsr") == [
        "vsr/signals/domain.py:2 imports vsr.training.heads",
        "vsr/signals/domain.py:3 imports sklearn.linear_model",
        "vsr/signals/domain.py:4 imports vsr.setup_tools",
    ]
