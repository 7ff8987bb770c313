"""Reports: a markdown + self-contained HTML document, and the robustness-audit report.

- `document`: `Report` (headings, paragraphs, lists, tables, figures) and `ReportFiles`;
- `audit`: `write_audit_report` and `add_audit_sections` for an `AuditResult`;
- `comparison`: `add_comparison_sections` for a `Comparison` (narrow tables, maps, notes).
"""

from captum_simec.report.audit import add_audit_sections, write_audit_report
from captum_simec.report.comparison import COMPARISON_TERMS, add_comparison_sections
from captum_simec.report.document import Report, ReportFiles
from captum_simec.viz.labels import format_value

__all__ = [
    "COMPARISON_TERMS",
    "Report",
    "ReportFiles",
    "add_audit_sections",
    "add_comparison_sections",
    "format_value",
    "write_audit_report",
]
