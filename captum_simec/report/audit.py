"""The robustness-audit report: summaries, figures and records of an `AuditResult`.

`write_audit_report` writes a :class:`~captum_simec.report.document.Report` of settings,
overall and per-class summaries, the audit's figures (`captum_simec.viz.audit`), the first
records and the definitions of the columns (`AUDIT_TERMS`); `add_audit_sections` appends the
same sections, without the definitions, to another report (the demo's).
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

__all__ = ["AUDIT_TERMS", "add_audit_sections", "write_audit_report"]

#: what the audit's columns mean.
AUDIT_TERMS = {
    "rank r": "rank of the pullback metric g = J^T G J at the example (the audit's output "
    "metric G, I on all outputs by default): how many input directions move the output.",
    "null dimension": "n - r, the dimension of the example's equivalence class: directions "
    "along which the output stays the same (784 - 9 = 775 for a 10-class log-softmax head).",
    "spectral gap": "s_r / s_{r+1}, the smallest kept singular value of the factor A = C J over "
    "the largest discarded one; a large gap means the rank (and the null dimension) is well "
    "determined, near 1 a close call.",
    "kappa (robustness)": "kappa_i = ||P_N e_i||^2 in [0, 1]: the share of a move of feature "
    "i that the equivalence class absorbs; 1 - kappa is the leverage (high: important).",
    "flip distance": "length (L2 / L-inf displacement) of the SiMExp walk down the predicted "
    "class's margin until the prediction changes: an upper bound on the smallest change that "
    "flips the decision.",
    "flip rate": "share of examples whose SiMExp walk flipped the prediction within its step "
    "budget.",
    "PGD radius (pgd_l2_eps, pgd_linf_eps)": "smallest radius at which PGD flips the "
    "prediction (bisection over the radius): another upper bound on the same quantity.",
    "ratio": "flip distance / PGD radius; near 1 the geometric walk found an attack-sized flip.",
    "extent": "how far a SiMEC walk inside the class travelled (L2 displacement).",
    "drift": "||C (f(x_k) - f(x_0))||: how far the output moved from its start, in the output "
    "metric; zero along an equivalence class up to the step's second-order error.",
}

#: a spectral gap above which the report calls the rank well determined.
WELL_DETERMINED = 10.0
_L2_COLUMNS = ("flip_l2", "pgd_l2_eps", "ratio_l2")
_LINF_COLUMNS = ("flip_linf", "pgd_linf_eps", "ratio_linf")


def _groups(result: AuditResult, summary: Mapping[str, Any]) -> list[tuple[str, Any, list]]:
    """(name, summary, records) for all examples and for each class of `summary["by"]`."""
    by = summary["by"]
    groups = [("all", summary["overall"], result.records)]
    for c, group in summary["per_class"].items():
        groups.append((f"{by} {c}", group, [r for r in result.records if r[by] == c]))
    return groups


def _smallest_gap(records: list[dict[str, Any]]) -> float:
    gaps = [r["spectral_gap"] for r in records if not math.isnan(r["spectral_gap"])]
    return min(gaps) if gaps else math.nan


NOT_COMPUTED = "not computed"


def _computed(value: float) -> float | str:
    """A rate, or "not computed" for the NaN of a stage that did not run."""
    return NOT_COMPUTED if math.isnan(value) else value


def _medians(group: Mapping[str, Any], columns: tuple[str, ...]) -> dict[str, Any]:
    """Medians of `columns`, "not computed" for those of a stage that did not run."""
    skipped = {"flip": math.isnan(group["flip_rate"]), "pgd": math.isnan(group["pgd_l2_flip_rate"])}
    skipped["ratio"] = skipped["flip"] or skipped["pgd"]
    return {
        column: NOT_COMPUTED if skipped[column.split("_")[0]] else group[column]["median"]
        for column in columns
    }


def _summary_tables(result: AuditResult, summary: Mapping[str, Any]) -> tuple[list, list]:
    """Two narrow tables of medians per group: the L2 flip / PGD columns, then L-inf and the
    geometry (null dimension and the smallest spectral gap)."""
    l2, linf = [], []
    for name, group, records in _groups(result, summary):
        row: dict[str, Any] = {
            "group": name,
            "examples": group["examples"],
            "accuracy": group["accuracy"],
            "flip rate": _computed(group["flip_rate"]),
        }
        row.update(_medians(group, _L2_COLUMNS))
        l2.append(row)
        row = {"group": name, **_medians(group, _LINF_COLUMNS)}
        row["null_dim"] = group["null_dim"]["median"]
        row["min spectral gap"] = _smallest_gap(records)
        linf.append(row)
    return l2, linf


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
    ranks = sorted({int(r["rank"]) for r in result.records})
    gap = _smallest_gap(result.records)
    report.paragraph(
        f"Geometry: median null dimension {format_value(overall['null_dim']['median'])} (rank "
        f"{', '.join(map(str, ranks))}); smallest spectral gap s_r / s_(r+1) "
        f"{format_value(gap, 3)} over the examples: the rank is "
        f"{'well determined' if gap > WELL_DETERMINED else 'a close call for some examples'}."
    )
    report.heading("Summary (medians)", 3)
    l2, linf = _summary_tables(result, summary)
    report.table(l2)
    report.table(linf)
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
        "null_dim",
        "spectral_gap",
        "flip_l2",
        "pgd_l2_eps",
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
    report.heading("Definitions")
    report.definitions(AUDIT_TERMS)
    return report.write(out)
