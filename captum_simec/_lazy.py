"""Package exports that load their module on first use (PEP 562).

`import captum_simec.geometry` runs `captum_simec/__init__.py` first; if that imported every
layer, the geometry would pay for the audit, Captum's attribution classes and `captum.robust`.
A package lists its exports per module instead, and `lazy_exports` gives it the module-level
`__getattr__` and `__dir__` that import a name's module when the name is first used
(`from captum_simec import simec`, `captum_simec.simec`, `dir(captum_simec)`).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, modules: Mapping[str, Sequence[str]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The `__getattr__` and `__dir__` of `package`, which exports `modules[module]` names.

    A name is imported from its module on first access and then cached in the package's
    namespace, so later accesses cost nothing.
    """
    exports = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name]), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__
