"""Reports as markdown plus a self-contained HTML page.

A :class:`Report` is a list of blocks (headings, paragraphs, bullet lists, definitions,
tables, figures) rendered twice from the same content: ``report.md`` refers to the figures as
PNG files in ``figures/``, ``report.html`` embeds the same PNGs as base64 data URIs, so the
page can be mailed or archived alone. Nothing beyond matplotlib and the standard library is used.
"""

from __future__ import annotations

import base64
import html
import io
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from captum_simec.viz.labels import format_value

__all__ = ["Report", "ReportFiles"]

_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
.table { max-width: 100%; overflow-x: auto; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f2f2f2; }
td:first-child, th:first-child { text-align: left; }
figure { margin: 1em 0; }
figure img { max-width: 100%; }
figcaption { font-size: 0.9em; color: #555; }
dt { font-weight: 600; margin-top: 0.4em; }
dd { margin-left: 1.5em; }
.takeaway { background: #f4f8fc; border-left: 4px solid #3b75af; padding: 0.2em 1em; }
code { background: #f5f5f5; padding: 0 0.2em; }
"""


@dataclass
class ReportFiles:
    """Paths written by :meth:`Report.write`."""

    markdown: Path
    html: Path
    figures: list[Path]


def _slug(name: str) -> str:
    slug = re.sub(r"[^a-zA-Z0-9_-]+", "-", name).strip("-").lower()
    if not slug:
        raise ValueError(f"figure name {name!r} has no letters or digits; name it, e.g. 'hist'.")
    return slug


def _inline(text: str) -> str:
    """HTML for one line of text: escaped, with `code` spans and **bold** outside them."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else _bold(p) for i, p in enumerate(parts))


def _bold(text: str) -> str:
    return re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)


class Report:
    """A document of headings, paragraphs, lists, tables and figures, rendered to MD and HTML.

    Args:
        title: the document title (first heading).
    """

    def __init__(self, title: str) -> None:
        self.title = title
        self._blocks: list[tuple[str, Any]] = []
        self._figures: dict[str, bytes] = {}

    def heading(self, text: str, level: int = 2) -> Report:
        """A section heading (level 2 to 4; the title is level 1)."""
        if level not in (2, 3, 4):
            raise ValueError(f"heading level must be 2, 3 or 4, got {level}.")
        self._blocks.append(("heading", (level, text)))
        return self

    def paragraph(self, text: str, emphasis: bool = False) -> Report:
        """A paragraph of plain text (backticks mark code, ``**`` bold).

        Args:
            text: the paragraph.
            emphasis: set it apart (a box in HTML, a quote in markdown), e.g. for a takeaway.
        """
        self._blocks.append(("emphasis" if emphasis else "paragraph", text))
        return self

    def definitions(self, terms: Mapping[str, str]) -> Report:
        """A list of terms and their definitions (HTML ``<dl>``; bold terms in markdown)."""
        self._blocks.append(("definitions", dict(terms)))
        return self

    def bullets(self, items: Sequence[str]) -> Report:
        """A bullet list."""
        self._blocks.append(("bullets", list(items)))
        return self

    def table(
        self,
        rows: Sequence[Mapping[str, Any]],
        columns: Sequence[str] | None = None,
        digits: int = 4,
    ) -> Report:
        """A table with one row per mapping (columns: the given ones, or the first row's keys)."""
        if columns is None:
            columns = list(rows[0]) if rows else []
        cells = [[format_value(row.get(c), digits) for c in columns] for row in rows]
        self._blocks.append(("table", (list(columns), cells)))
        return self

    def figure(self, figure: Figure, name: str, caption: str = "", dpi: int = 110) -> Report:
        """A matplotlib figure, rendered to PNG now (saved as ``figures/<name>.png``)."""
        name = _slug(name)
        if name in self._figures:
            raise ValueError(f"a figure named {name!r} is already in the report; rename it.")
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=dpi)
        self._figures[name] = buffer.getvalue()
        self._blocks.append(("figure", (name, caption)))
        return self

    def markdown(self) -> str:
        """The report as GitHub markdown (figures as ``figures/<name>.png`` links)."""
        lines = [f"# {self.title}", ""]
        for kind, payload in self._blocks:
            lines += _MARKDOWN[kind](payload) + [""]
        return "\n".join(lines)

    def html(self) -> str:
        """The report as one self-contained HTML page (figures embedded as base64 PNG)."""
        body = [f"<h1>{_inline(self.title)}</h1>"]
        for kind, payload in self._blocks:
            if kind == "figure":
                body.append(self._html_figure(*payload))
            else:
                body.append(_HTML[kind](payload))
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head>"
            "<body>\n" + "\n".join(body) + "\n</body></html>\n"
        )

    def _html_figure(self, name: str, caption: str) -> str:
        data = base64.b64encode(self._figures[name]).decode("ascii")
        alt = html.escape(caption or name, quote=True)
        return (
            f'<figure><img alt="{alt}" src="data:image/png;base64,{data}">'
            f"<figcaption>{_inline(caption)}</figcaption></figure>"
        )

    def write(self, out: str | os.PathLike) -> ReportFiles:
        """Writes ``report.md``, ``report.html`` and ``figures/*.png`` into `out`."""
        out = Path(out)
        (out / "figures").mkdir(parents=True, exist_ok=True)
        figures = []
        for name, png in self._figures.items():
            path = out / "figures" / f"{name}.png"
            path.write_bytes(png)
            figures.append(path)
        markdown, page = out / "report.md", out / "report.html"
        markdown.write_text(self.markdown())
        page.write_text(self.html())
        return ReportFiles(markdown=markdown, html=page, figures=figures)


def _markdown_table(payload: tuple[list[str], list[list[str]]]) -> list[str]:
    columns, cells = payload
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return lines + ["| " + " | ".join(row) + " |" for row in cells]


def _markdown_figure(payload: tuple[str, str]) -> list[str]:
    name, caption = payload
    return [f"![{name}](figures/{name}.png)"] + (["", f"*{caption}*"] if caption else [])


def _html_table(payload: tuple[list[str], list[list[str]]]) -> str:
    columns, cells = payload
    head = "".join(f"<th>{_inline(c)}</th>" for c in columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{_inline(v)}</td>" for v in row) + "</tr>" for row in cells
    )
    return (
        f'<div class="table"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{rows}</tbody></table></div>"
    )


def _html_definitions(terms: dict[str, str]) -> str:
    items = "".join(
        f"<dt>{_inline(term)}</dt><dd>{_inline(text)}</dd>" for term, text in terms.items()
    )
    return f"<dl>{items}</dl>"


#: block kind -> its markdown lines.
_MARKDOWN = {
    "heading": lambda payload: ["#" * payload[0] + " " + payload[1]],
    "paragraph": lambda text: [text],
    "emphasis": lambda text: [f"> {text}"],
    "bullets": lambda items: [f"- {item}" for item in items],
    "definitions": lambda terms: [f"- **{term}**: {text}" for term, text in terms.items()],
    "table": _markdown_table,
    "figure": _markdown_figure,
}
#: block kind -> its HTML (figures need the report's PNGs: `Report._html_figure`).
_HTML = {
    "heading": lambda payload: f"<h{payload[0]}>{_inline(payload[1])}</h{payload[0]}>",
    "paragraph": lambda text: f"<p>{_inline(text)}</p>",
    "emphasis": lambda text: f'<p class="takeaway">{_inline(text)}</p>',
    "bullets": lambda items: "<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + "</ul>",
    "definitions": _html_definitions,
    "table": _html_table,
}
