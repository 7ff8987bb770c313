"""Markdown and self-contained HTML reports, and the audit report with its figures."""

from __future__ import annotations

import base64
import math

import pytest
from matplotlib.figure import Figure

from captum_simec.audit import RobustnessAudit
from captum_simec.report import Report, write_audit_report
from captum_simec.viz import audit_figures
from tests.audit.helpers import tiny_data, tiny_mlp


def _figure() -> Figure:
    figure = Figure(figsize=(2, 2))
    figure.subplots().plot([0, 1], [1, 0])
    return figure


def test_report_renders_markdown_and_self_contained_html(tmp_path):
    report = Report("Title <&>")
    report.heading("Section").paragraph("Text with `code`.").bullets(["one", "two"])
    report.table([{"name": "a", "value": 1.234567, "flag": True, "gap": math.inf}])
    report.figure(_figure(), "My Plot!", "A caption.")
    files = report.write(tmp_path)
    markdown = files.markdown.read_text()
    assert markdown.startswith("# Title <&>")
    assert "| name | value | flag | gap |" in markdown and "| a | 1.235 | yes | inf |" in markdown
    assert "![my-plot](figures/my-plot.png)" in markdown and "*A caption.*" in markdown
    page = files.html.read_text()
    assert "Title &lt;&amp;&gt;" in page and "<code>code</code>" in page
    assert "figures/" not in page  # nothing outside the page is referenced
    encoded = page.split('src="data:image/png;base64,')[1].split('"')[0]
    assert base64.b64decode(encoded) == files.figures[0].read_bytes()
    assert files.figures[0].read_bytes().startswith(b"\x89PNG")


def test_report_rejects_bad_figure_names_and_levels():
    report = Report("r").figure(_figure(), "hist")
    with pytest.raises(ValueError, match="already in the report"):
        report.figure(_figure(), "hist")
    with pytest.raises(ValueError, match="no letters or digits"):
        report.figure(_figure(), "???")
    with pytest.raises(ValueError, match="heading level"):
        report.heading("x", level=1)


def test_audit_report_has_the_promised_figures(tmp_path):
    x, y = tiny_data(6)
    audit = RobustnessAudit(
        tiny_mlp(), domain=(0.0, 1.0), simec_steps=2, simexp_steps=40, pgd_steps=4
    )
    result = audit.run(x, y, out=tmp_path)
    figures = audit_figures(result, strip_size=2)
    assert set(figures) == {
        "flip_distance",
        "null_dimension",
        "flip_vs_pgd",
        "most_robust",
        "least_robust",
    }
    files = write_audit_report(result, tmp_path)
    assert {p.stem for p in files.figures} == set(figures)
    markdown = files.markdown.read_text()
    assert "Summary (medians)" in markdown and "| all | 6 |" in markdown
    assert "records.csv" in markdown and (tmp_path / "records.csv").is_file()
