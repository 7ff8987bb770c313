"""Numbers as people read them, in figure titles and report tables."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["format_value"]


def format_value(value: Any, digits: int = 4) -> str:
    """A table cell: floats to `digits` significant digits, ``inf``, ``n/a`` for NaN/None."""
    if value is None:
        return "n/a"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, float | np.floating):
        value = float(value)
        if math.isnan(value):
            return "n/a"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.{digits}g}"
    return str(value)
