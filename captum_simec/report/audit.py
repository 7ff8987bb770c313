"""The robustness-audit report: summaries, figures and records of an `AuditResult`.

`write_audit_report` writes a :class:`~captum_simec.report.document.Report` of settings,
overall and per-class summaries, the audit's figures (`captum_simec.viz.audit`) and the first
records; `add_audit_sections` appends the same sections to another report (the demo's).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from captum_simec.report.document import Report, ReportFiles, format_value
from captum_simec.viz.audit import audit_figures

if TYPE_CHECKING:
    from captum_simec.audit import AuditResult

__all__ = ["add_audit_sections", "write_audit_report"]


_SUMMARY_COLUMNS = ("flip_l2", "flip_linf", "pgd_l2_eps", "pgd_linf_eps", "ratio_l2", "ratio_linf")


NOT_COMPUTED = "not computed"


def _computed(value: float) -> float | str:
    """A rate, or "not computed" for the NaN of a stage that did not run."""
    return NOT_COMPUTED if math.isnan(value) else value


def _summary_rows(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    groups = [("all", summary["overall"])]
    groups += [(f"{summary['by']} {c}", s) for c, s in summary["per_class"].items()]
    rows = []
    for name, group in groups:
        row: dict[str, Any] = {
            "group": name,
            "examples": group["examples"],
            "accuracy": group["accuracy"],
            "flip rate": _computed(group["flip_rate"]),
        }
        skipped = {
            "flip": math.isnan(group["flip_rate"]),
            "pgd": math.isnan(group["pgd_l2_flip_rate"]),
        }
        skipped["ratio"] = skipped["flip"] or skipped["pgd"]
        for column in _SUMMARY_COLUMNS:
            stage = column.split("_")[0]
            row[f"median {column}"] = NOT_COMPUTED if skipped[stage] else group[column]["median"]
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
    flips = (
        f"SiMExp flipped the prediction of {format_value(overall['flip_rate'] * 100, 3)} % of "
        f"them within its budget; median flip distance "
        f"{format_value(overall['flip_l2']['median'])} (L2), "
        f"{format_value(overall['flip_linf']['median'])} (L-inf)"
        if not math.isnan(overall["flip_rate"])
        else f"SiMExp flips: {NOT_COMPUTED} (the walk did not run)"
    )
    attacks = (
        f"median smallest PGD radius {format_value(overall['pgd_l2_eps']['median'])} (L2), "
        f"{format_value(overall['pgd_linf_eps']['median'])} (L-inf); median ratio flip / PGD "
        f"{format_value(overall['ratio_l2']['median'])} (L2), "
        f"{format_value(overall['ratio_linf']['median'])} (L-inf)"
        if not math.isnan(overall["pgd_l2_flip_rate"])
        else f"PGD radii: {NOT_COMPUTED} (the attack did not run)"
    )
    report.paragraph(f"{len(result)} examples. {flips}; {attacks}.")
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
