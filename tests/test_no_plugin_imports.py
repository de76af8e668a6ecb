"""The core imports no plugin: plugins hang off the core, never the reverse (issue 12)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import quotaflow

SRC = Path(quotaflow.__file__).parent
PLUGINS = Path(__file__).parent.parent / "plugins"


def plugin_packages() -> set[str]:
    """The top-level packages of the plugins this repo ships (``quotaflow_*``)."""
    found = {path.name for path in PLUGINS.glob("*/quotaflow_*") if path.is_dir()}
    assert "quotaflow_theoddsapi" in found
    return found


def imported(tree: ast.AST) -> set[str]:
    """Every module an ``import`` or ``from ... import`` names, absolute ones only, plus
    ``importlib.import_module("...")`` / ``__import__("...")`` with a literal name."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (
                (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                or (isinstance(node.func, ast.Name) and node.func.id == "__import__")
            )
        ):
            names.add(node.args[0].value)
    return names


def is_plugin(module: str, packages: set[str]) -> bool:
    top = module.split(".")[0]
    return top in packages or top.startswith("quotaflow_")


@pytest.mark.parametrize(
    "path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC.parent))
)
def test_core_module_imports_no_plugin(path: Path) -> None:
    packages = plugin_packages()
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = sorted(name for name in imported(tree) if is_plugin(name, packages))
    assert found == [], f"{path.name} imports plugin package(s) {found}"


def test_the_scan_sees_every_kind_of_import() -> None:
    """The scanner itself: each way of importing a plugin is caught."""
    source = (
        "import quotaflow_theoddsapi\n"
        "from quotaflow_espn.x import y\n"
        "import importlib\n"
        "importlib.import_module('quotaflow_apisports')\n"
        "def f():\n"
        "    from quotaflow_ratelimit_headers import PLUGIN\n"
        "from . import _demo\n"
    )
    found = {name for name in imported(ast.parse(source)) if is_plugin(name, plugin_packages())}
    assert found == {
        "quotaflow_theoddsapi",
        "quotaflow_espn.x",
        "quotaflow_apisports",
        "quotaflow_ratelimit_headers",
    }
