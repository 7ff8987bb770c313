"""Reports as markdown plus a self-contained HTML page, and the robustness-audit report.

A :class:`Report` is a list of blocks (headings, paragraphs, bullet lists, tables, figures)
rendered twice from the same content: ``report.md`` refers to the figures as PNG files in
``figures/``, ``report.html`` embeds the same PNGs as base64 data URIs, so the page can be
mailed or archived alone. Nothing beyond matplotlib and the standard library is used.

:func:`write_audit_report` turns a :class:`~captum_simec.audit.robustness.AuditResult` into
such a report: settings, overall and per-class summaries, histograms of the flip distance and
the null dimension, the SiMExp flip distance against the PGD radius (with the line y = x), and
strips of the most and least robust examples with their robustness maps.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from captum_simec.audit.robustness import AuditResult
from captum_simec.viz import plot_attributions

__all__ = [
    "Report",
    "ReportFiles",
    "add_audit_sections",
    "audit_figures",
    "format_value",
    "write_audit_report",
]

_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f2f2f2; }
td:first-child, th:first-child { text-align: left; }
figure { margin: 1em 0; }
figure img { max-width: 100%; }
figcaption { font-size: 0.9em; color: #555; }
code { background: #f5f5f5; padding: 0 0.2em; }
"""


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
    """HTML for one line of text: escaped, with `code` spans."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


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

    def paragraph(self, text: str) -> Report:
        """A paragraph of plain text (backticks mark code)."""
        self._blocks.append(("paragraph", text))
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
            if kind == "heading":
                level, text = payload
                lines += ["#" * level + " " + text, ""]
            elif kind == "paragraph":
                lines += [payload, ""]
            elif kind == "bullets":
                lines += [f"- {item}" for item in payload] + [""]
            elif kind == "table":
                columns, cells = payload
                lines.append("| " + " | ".join(columns) + " |")
                lines.append("|" + "---|" * len(columns))
                lines += ["| " + " | ".join(row) + " |" for row in cells]
                lines.append("")
            else:
                name, caption = payload
                lines += [f"![{name}](figures/{name}.png)", ""]
                if caption:
                    lines += [f"*{caption}*", ""]
        return "\n".join(lines)

    def html(self) -> str:
        """The report as one self-contained HTML page (figures embedded as base64 PNG)."""
        body = [f"<h1>{_inline(self.title)}</h1>"]
        for kind, payload in self._blocks:
            if kind == "heading":
                level, text = payload
                body.append(f"<h{level}>{_inline(text)}</h{level}>")
            elif kind == "paragraph":
                body.append(f"<p>{_inline(payload)}</p>")
            elif kind == "bullets":
                items = "".join(f"<li>{_inline(item)}</li>" for item in payload)
                body.append(f"<ul>{items}</ul>")
            elif kind == "table":
                columns, cells = payload
                head = "".join(f"<th>{_inline(c)}</th>" for c in columns)
                rows = "".join(
                    "<tr>" + "".join(f"<td>{_inline(v)}</td>" for v in row) + "</tr>"
                    for row in cells
                )
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
            else:
                name, caption = payload
                data = base64.b64encode(self._figures[name]).decode("ascii")
                alt = html.escape(caption or name, quote=True)
                body.append(
                    f'<figure><img alt="{alt}" src="data:image/png;base64,{data}">'
                    f"<figcaption>{_inline(caption)}</figcaption></figure>"
                )
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head>"
            "<body>\n" + "\n".join(body) + "\n</body></html>\n"
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


# ----------------------------------------------------------------------------- audit report


def _finite(values: np.ndarray) -> np.ndarray:
    return values[np.isfinite(values)]


def _flip_histogram(result: AuditResult) -> Figure:
    fig = Figure(figsize=(9.0, 3.2), layout="constrained")
    axes = fig.subplots(1, 2)
    missing = int((~result.column("flip_found")).sum())
    for ax, norm in zip(axes, ("l2", "linf"), strict=True):
        values = _finite(result.column(f"flip_{norm}"))
        if values.size:
            ax.hist(values, bins=min(30, max(5, values.size // 2)), color="tab:blue")
        label = "L2" if norm == "l2" else "L-inf"
        ax.set_xlabel(f"SiMExp flip distance ({label} displacement)")
        ax.set_ylabel("examples")
    fig.suptitle(f"{len(result)} examples, {missing} without a flip within the budget", fontsize=10)
    return fig


def _null_dim_histogram(result: AuditResult) -> Figure:
    fig = Figure(figsize=(5.0, 3.2), layout="constrained")
    ax = fig.subplots()
    values = result.column("null_dim")
    low, high = int(values.min()), int(values.max())
    ax.hist(values, bins=np.arange(low - 0.5, high + 1.5), color="tab:green", rwidth=0.9)
    ax.set_xlabel("null dimension n - r (dimension of the equivalence class)")
    ax.set_ylabel("examples")
    return fig


def _flip_vs_attack(result: AuditResult) -> Figure:
    fig = Figure(figsize=(9.0, 4.0), layout="constrained")
    axes = fig.subplots(1, 2)
    classes = result.column("prediction")
    for ax, norm in zip(axes, ("l2", "linf"), strict=True):
        walk, attack = result.column(f"flip_{norm}"), result.column(f"pgd_{norm}_eps")
        both = np.isfinite(walk) & np.isfinite(attack)
        label = "L2" if norm == "l2" else "L-inf"
        if both.any():
            points = ax.scatter(
                attack[both], walk[both], c=classes[both], cmap="tab10", vmin=-0.5, vmax=9.5, s=18
            )
            top = float(max(walk[both].max(), attack[both].max())) * 1.05
            ax.plot([0, top], [0, top], color="black", linewidth=0.8, label="y = x")
            ax.set_xlim(0, top)
            ax.set_ylim(0, top)
            ax.legend(loc="upper left", fontsize=8)
            if norm == "linf":
                fig.colorbar(points, ax=ax, label="predicted class")
        ax.set_xlabel(f"smallest flipping PGD radius ({label})")
        ax.set_ylabel(f"SiMExp flip distance ({label})")
        ax.set_title(f"{int(both.sum())} of {len(result)} with both finite", fontsize=9)
    return fig


def _strip(result: AuditResult, rows: np.ndarray, title: str) -> Figure:
    """Inputs, leverage `1 - kappa` and `|flip displacement|` of the records at `rows`."""
    maps = result.maps
    where = {int(index): k for k, index in enumerate(maps["index"].tolist())}
    picked = torch.tensor([where[int(result.records[r]["index"])] for r in rows])
    titles = []
    for r in rows:
        record = result.records[r]
        titles.append(
            f"#{record['index']} pred {record['prediction']}\n"
            f"flip L2 {format_value(record['flip_l2'], 3)}"
        )
    fig = plot_attributions(
        {
            "leverage 1 - kappa": 1.0 - maps["robustness"][picked],
            "|flip displacement|": maps["flip"][picked].abs(),
        },
        maps["input"][picked],
        examples=list(range(len(rows))),
        example_titles=titles,
    )
    fig.suptitle(title, fontsize=10)
    return fig


def audit_figures(result: AuditResult, strip_size: int = 4) -> dict[str, tuple[Figure, str]]:
    """The audit's figures: name -> (figure, caption).

    Always: ``flip_distance`` and ``null_dimension`` histograms; with attack radii: the
    ``flip_vs_pgd`` scatter; with kept maps: ``most_robust`` and ``least_robust`` strips
    (ranked by the L2 flip distance, no flip counting as the most robust).
    """
    if len(result) == 0:
        raise ValueError("the audit result has no records; audit at least one example.")
    figures = {
        "flip_distance": (
            _flip_histogram(result),
            "SiMExp flip distance per example (flipped examples only).",
        ),
        "null_dimension": (
            _null_dim_histogram(result),
            "Null dimension of the pullback metric per example.",
        ),
    }
    if np.isfinite(result.column("pgd_l2_eps")).any():
        figures["flip_vs_pgd"] = (
            _flip_vs_attack(result),
            "SiMExp flip distance against the smallest flipping PGD radius, per example "
            "(points above y = x: the walk's flip is longer than the attack's).",
        )
    if result.maps:
        order = np.argsort(result.column("flip_l2"), kind="stable")
        k = min(strip_size, len(order))
        caption = (
            "Top: input; middle: leverage 1 - kappa (dark: the class absorbs moves of that "
            "pixel); bottom: |SiMExp flip displacement|."
        )
        figures["most_robust"] = (
            _strip(result, order[::-1][:k], "most robust (largest flip distance)"),
            "Most robust examples. " + caption,
        )
        figures["least_robust"] = (
            _strip(result, order[:k], "least robust (smallest flip distance)"),
            "Least robust examples. " + caption,
        )
    return figures


_SUMMARY_COLUMNS = ("flip_l2", "flip_linf", "pgd_l2_eps", "pgd_linf_eps", "ratio_l2", "ratio_linf")


def _summary_rows(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    groups = [("all", summary["overall"])]
    groups += [(f"{summary['by']} {c}", s) for c, s in summary["per_class"].items()]
    rows = []
    for name, group in groups:
        row: dict[str, Any] = {
            "group": name,
            "examples": group["examples"],
            "accuracy": group["accuracy"],
            "flip rate": group["flip_rate"],
        }
        for column in _SUMMARY_COLUMNS:
            row[f"median {column}"] = group[column]["median"]
        row["median null_dim"] = group["null_dim"]["median"]
        rows.append(row)
    return rows


def _shorten(text: str, width: int = 80) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def add_audit_sections(report: Report, result: AuditResult, strip_size: int = 4) -> Report:
    """Appends the audit's summary, figures and record table to `report`."""
    summary = result.summary()
    overall = summary["overall"]
    report.heading("Robustness audit")
    report.paragraph(
        f"{len(result)} examples. SiMExp flipped the prediction of "
        f"{format_value(overall['flip_rate'] * 100, 3)} % of them within its budget; median "
        f"flip distance {format_value(overall['flip_l2']['median'])} (L2), "
        f"{format_value(overall['flip_linf']['median'])} (L-inf); median smallest PGD radius "
        f"{format_value(overall['pgd_l2_eps']['median'])} (L2), "
        f"{format_value(overall['pgd_linf_eps']['median'])} (L-inf); median ratio flip / PGD "
        f"{format_value(overall['ratio_l2']['median'])} (L2), "
        f"{format_value(overall['ratio_linf']['median'])} (L-inf)."
    )
    report.paragraph(
        "Both the walk's flip distance and the attack radius bound the smallest perturbation "
        "that changes the decision from above; a ratio near 1 means the geometric walk found "
        "an attack-sized flip."
    )
    report.heading("Summary (medians)", 3)
    report.table(_summary_rows(summary))
    for name, (figure, caption) in audit_figures(result, strip_size).items():
        report.figure(figure, name, caption)
    if result.settings:
        report.heading("Settings", 3)
        report.table(
            [{"setting": k, "value": _shorten(str(v))} for k, v in result.settings.items()]
        )
    if result.timings:
        report.heading("Timings", 3)
        report.table([{"stage": k, "value": v} for k, v in result.timings.items()])
    report.heading("Per-example records (first 50)", 3)
    columns = [
        "index",
        "label",
        "prediction",
        "confidence",
        "null_dim",
        "extent_l2",
        "flip_class",
        "flip_l2",
        "flip_linf",
        "pgd_l2_eps",
        "pgd_linf_eps",
        "ratio_l2",
    ]
    report.table(result.records[:50], columns)
    report.paragraph("All records: `records.csv` and `records.json` beside this report.")
    return report


def write_audit_report(
    result: AuditResult,
    out: str | os.PathLike,
    title: str = "Robustness audit",
    strip_size: int = 4,
) -> ReportFiles:
    """Writes ``report.md``, ``report.html`` and ``figures/`` for an audit into `out`.

    The tables the report links to are written by :meth:`AuditResult.save` (which
    ``RobustnessAudit.run(out=...)`` calls).
    """
    report = Report(title)
    add_audit_sections(report, result, strip_size)
    return report.write(out)
