"""A plain `pip install captum_simec` runs everything the package imports (`captum-simec demo`
included): every third-party module imported anywhere in the package, at module level or
inside a function, belongs to a distribution declared in the project's dependencies."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _imported_top_level_modules() -> set[str]:
    names = set()
    for path in (ROOT / "captum_simec").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"captum_simec", "__future__"}


def _declared() -> set[str]:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {_normalise(re.split(r"[<>=!~; \[]", spec)[0]) for spec in project["dependencies"]}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_imported_distribution_is_a_declared_dependency():
    providers = importlib.metadata.packages_distributions()
    imported = _imported_top_level_modules()
    assert {"torch", "captum", "sklearn"} <= imported
    needed = {_normalise(dist) for module in imported for dist in providers.get(module, [module])}
    missing = needed - _declared()
    assert not missing, f"imported but not declared in [project] dependencies: {missing}"
    assert "scikit-learn" in _declared()  # the demo trains on scikit-learn's digits
