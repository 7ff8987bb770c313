"""Turns plain-text habits of the docstrings into valid reST before napoleon reads them.

- Shapes written as `(batch, *input_shape)` outside backticks: the star would open reST
  emphasis, so it is escaped.
- Google-style parameters grouped on one entry that wraps before its colon
  (``additional_forward_args, seed, generator,`` then ``progress, rtol: as in `simec`.``):
  the wrapped names are joined back onto the entry's first line.
- Grouped entries of an ``Attributes:`` section (``low, high: the interval.``), which
  napoleon would read as a type and a name, become one entry per name.
- A constant without a docstring of its own (`__version__`, `SCORES`) shows its value only,
  not the docstring of its type (`str`, `tuple`) that autodoc falls back to.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from sphinx.application import Sphinx

UNPACKING_STAR = re.compile(r"(?<=[(\s,])\*(?=[A-Za-z_]\w*[),])")
CODE_SPAN = re.compile(r"(``.*?``|`[^`]*`)")
NAMES_CONTINUED = re.compile(r"^(\s+)(\w+(?:,\s*\w+)*),\s*$")
GROUPED_FIELD = re.compile(r"^(\s+)(\w+(?:,\s*\w+)+)(\s*\([^)]*\))?:(.*)$")


def escape_unpacking_stars(line: str) -> str:
    parts = CODE_SPAN.split(line)
    parts[::2] = [UNPACKING_STAR.sub(r"\\*", part) for part in parts[::2]]
    return "".join(parts)


def join_wrapped_parameter_names(lines: list[str]) -> list[str]:
    joined: list[str] = []
    for line in lines:
        previous = NAMES_CONTINUED.match(joined[-1]) if joined else None
        indent = len(line) - len(line.lstrip())
        if previous and indent > len(previous.group(1)) and ":" in line:
            joined[-1] = f"{joined[-1].rstrip()} {line.strip()}"
        else:
            joined.append(line)
    return joined


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def split_grouped_attributes(lines: list[str]) -> list[str]:
    split: list[str] = []
    section, index = None, 0
    while index < len(lines):
        line = lines[index]
        if line.strip() and not line[0].isspace():
            section = line.strip()
        grouped = GROUPED_FIELD.match(line) if section == "Attributes:" else None
        end = index + 1
        if not grouped:
            split.append(line)
            index = end
            continue
        indent, names, kind, description = grouped.groups()
        while end < len(lines) and lines[end].strip() and _indent(lines[end]) > len(indent):
            end += 1  # the entry's continuation lines
        for name in names.split(","):
            split.append(f"{indent}{name.strip()}{kind or ''}:{description}")
            split.extend(lines[index + 1 : end])
        index = end
    return split


def is_type_docstring(what: str, obj: Any, lines: list[str]) -> bool:
    inherited = inspect.getdoc(type(obj)) if what in ("data", "attribute") else None
    return bool(inherited) and "\n".join(lines).strip() == inherited.strip()


def fix_docstring(
    app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    if is_type_docstring(what, obj, lines):
        lines[:] = []
        return
    fields = split_grouped_attributes(join_wrapped_parameter_names(lines))
    lines[:] = [escape_unpacking_stars(line) for line in fields]


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("autodoc-process-docstring", fix_docstring, priority=100)  # before napoleon
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
