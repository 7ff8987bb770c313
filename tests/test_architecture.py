"""The layers of docs/architecture.md: what each part of the package imports at module level."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "captum_simec"
BASE = {"_compat", "_validation", "_runtime", "_lazy", "_outputs"}
METHOD = {"geometry", "explore", "attr", "evaluation", "audit"}
#: per part of the package (a subpackage or a top-level module), what else it may import.
ALLOWED = {
    "geometry": BASE,
    "explore": BASE | {"geometry"},
    "attr": BASE | {"geometry", "explore"},
    "audit": BASE | {"geometry", "explore", "attr"},
    # compare_attributions' boundary IG starts IG from audit's minimal PGD point
    "evaluation": BASE | {"geometry", "explore", "attr", "audit"},
    "text": BASE | {"geometry", "explore", "attr"},
    "viz": BASE,
    "report": BASE | {"viz"},
    "zoo": BASE,
    "cli_inputs": BASE,
    "cli": BASE | METHOD | {"viz", "report", "cli_inputs"},
    "demo": BASE | METHOD | {"viz", "report", "zoo"},
    **{name: BASE for name in BASE},
}


def part(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def module_level_imports(path: Path) -> set[str]:
    """The parts of captum_simec a module imports outside functions and TYPE_CHECKING."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for child in ast.walk(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                break
            names = []
            if isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                names = [child.module]
            elif isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            for name in names:
                if name.startswith("captum_simec."):
                    found.add(name.split(".")[1])
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_each_module_imports_only_the_layers_below_it(path):
    own = part(path)
    assert own in ALLOWED, f"{own} has no place in docs/architecture.md's layers"
    extra = module_level_imports(path) - ALLOWED[own] - {own}
    assert not extra, f"{path.relative_to(PACKAGE)} imports {sorted(extra)} at module level"


def test_the_rules_see_imports_at_module_level_only(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from captum_simec.audit import RobustnessAudit\n"
        "import captum_simec.viz.walks\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from captum_simec.report import Report\n"
        "class Result:\n"
        "    def plot(self):\n"
        "        from captum_simec.zoo import MLP\n"
    )
    assert module_level_imports(probe) == {"audit", "viz"}
