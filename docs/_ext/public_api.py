"""Writes the API reference from `__all__`, and fails the build if a public name is missing.

The public modules are `captum_simec` and every module or subpackage directly under it whose
name has no leading underscore and that declares `__all__` (a new one is picked up without
editing the docs). Each public object is documented once, under the public module it is
defined in (`captum_simec.explore.Box`, not `captum_simec.explore.constraints.Box`); the
modules that re-export it (`captum_simec.Box`) link to it. The pages go to `docs/api/`
(generated, not committed) when the builder starts; once every page is read, each name of
every `__all__` must have its entry, and each class and function a docstring of its own, or
the build fails.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.errors import ExtensionError
from sphinx.util import logging

PACKAGE = "captum_simec"
FOLDER = "api"
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PublicName:
    module: str  # the public module whose __all__ lists it
    name: str
    home: str  # the public module where it is documented

    @property
    def target(self) -> str:
        return f"{self.home}.{self.name}"


def public_modules() -> list[ModuleType]:
    """The package and its public modules and subpackages that declare `__all__`."""
    package = importlib.import_module(PACKAGE)
    modules = [package]
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda info: info.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{PACKAGE}.{info.name}")
        if hasattr(module, "__all__"):
            modules.append(module)
    return modules


def _home(obj: Any, listed_in: list[str]) -> str:
    """The public module to document `obj` in: the one it is defined in, else where listed."""
    defined_in = getattr(obj, "__module__", None) if _documentable(obj) else None
    if isinstance(defined_in, str):
        candidates = [m for m in listed_in if defined_in == m or defined_in.startswith(m + ".")]
        if candidates:
            return max(candidates, key=len)
    below_top = [module for module in listed_in if module != PACKAGE]
    return (below_top or listed_in)[0]


def _documentable(obj: Any) -> bool:
    return inspect.isclass(obj) or inspect.isfunction(obj)


def public_names(modules: list[ModuleType]) -> list[PublicName]:
    """Every (module, name) pair of every `__all__`, with the module that documents it."""
    listed: dict[int, list[str]] = {}
    for module in modules:
        for name in module.__all__:
            listed.setdefault(id(getattr(module, name)), []).append(module.__name__)
    names = []
    for module in modules:
        for name in module.__all__:
            obj = getattr(module, name)
            home = _home(obj, listed[id(obj)])
            names.append(PublicName(module.__name__, name, home))
    return names


def _directive(module: ModuleType, name: str) -> str:
    obj = getattr(module, name)
    target = f"{module.__name__}.{name}"
    if inspect.isclass(obj):
        kind = "autoexception" if issubclass(obj, BaseException) else "autoclass"
        return f".. {kind}:: {target}\n   :members:\n   :show-inheritance:\n"
    if inspect.isfunction(obj):
        return f".. autofunction:: {target}\n"
    return f".. autodata:: {target}\n"


def _group(module: ModuleType, name: str) -> str:
    obj = getattr(module, name)
    if inspect.isclass(obj):
        return "Exceptions and warnings" if issubclass(obj, BaseException) else "Classes"
    return "Functions" if inspect.isfunction(obj) else "Constants"


GROUPS = ("Classes", "Functions", "Exceptions and warnings", "Constants")


def module_page(module: ModuleType, names: list[PublicName]) -> str:
    """The reST page of one public module: its docstring, its own objects, its re-exports."""
    title = module.__name__
    lines = [title, "=" * len(title), "", f".. automodule:: {title}", ""]
    own = [entry for entry in names if entry.module == title and entry.home == title]
    for group in GROUPS:
        members = [entry for entry in own if _group(module, entry.name) == group]
        if members:
            lines += [group, "-" * len(group), ""]
            lines += [_directive(module, entry.name) for entry in members]
    elsewhere = [entry for entry in names if entry.module == title and entry.home != title]
    if elsewhere:
        heading = "Re-exported names"
        lines += [heading, "-" * len(heading), "", "Documented where they are defined:", ""]
        lines += [".. list-table::", "   :header-rows: 1", "   :widths: 35 65", ""]
        lines += ["   * - name", "     - summary"]
        for entry in elsewhere:
            summary = _summary(getattr(module, entry.name))
            lines += [f"   * - :py:obj:`{title}.{entry.name} <{entry.target}>`"]
            lines += [f"     - {summary}" if summary else "     -"]
        lines.append("")
    return "\n".join(lines)


def _summary(obj: Any) -> str:
    """The first paragraph of a class's or function's docstring, on one line."""
    doc = inspect.getdoc(obj) if _documentable(obj) else None
    return " ".join(doc.split("\n\n")[0].split()) if doc else ""


def index_page(modules: list[ModuleType]) -> str:
    lines = [
        "API reference",
        "=============",
        "",
        f"Every name in the `__all__` of ``{PACKAGE}`` and of its public modules, documented",
        "once, where it is defined; the modules that re-export a name link to it.",
        "",
        ".. toctree::",
        "   :maxdepth: 1",
        "",
    ]
    lines += [f"   {module.__name__}" for module in modules]
    return "\n".join(lines) + "\n"


def _write(path: Path, text: str) -> None:
    if not path.is_file() or path.read_text() != text:  # unchanged pages are not re-read
        path.write_text(text)


def write_pages(app: Sphinx) -> None:
    modules = public_modules()
    names = public_names(modules)
    folder = Path(app.srcdir) / FOLDER
    folder.mkdir(exist_ok=True)
    wanted = {f"{module.__name__}.rst" for module in modules} | {"index.rst"}
    for stale in folder.glob("*.rst"):
        if stale.name not in wanted:
            stale.unlink()
    _write(folder / "index.rst", index_page(modules))
    for module in modules:
        _write(folder / f"{module.__name__}.rst", module_page(module, names))


def _has_own_docstring(obj: Any) -> bool:
    doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else obj.__doc__
    if not doc or not doc.strip():
        return False
    generated = f"{obj.__name__}("  # dataclasses and named tuples make up "Name(fields)"
    return not (inspect.isclass(obj) and doc.startswith(generated) and doc.rstrip().endswith(")"))


def check_coverage(app: Sphinx, env: BuildEnvironment) -> None:
    """Every public name has its entry in the reference; classes and functions a docstring."""
    names = public_names(public_modules())
    documented = env.get_domain("py").objects
    missing = sorted({entry.target for entry in names if entry.target not in documented})
    undocumented = sorted(
        {
            entry.target
            for entry in names
            if _documentable(obj := getattr(importlib.import_module(entry.module), entry.name))
            and not _has_own_docstring(obj)
        }
    )
    if missing or undocumented:
        raise ExtensionError(
            f"public names missing from the API reference: {missing or 'none'}; "
            f"without a docstring: {undocumented or 'none'}"
        )
    logger.info(f"API reference: all {len(names)} public names of {PACKAGE} are documented")


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("builder-inited", write_pages)
    app.connect("env-check-consistency", check_coverage)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
