"""Markdown and self-contained HTML reports, and the audit report with its figures."""

from __future__ import annotations

import base64
import math
import re

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from captum_simec.audit import RobustnessAudit
from captum_simec.evaluation import Comparison
from captum_simec.report import Report, add_comparison_sections, write_audit_report
from captum_simec.report.comparison import MAX_COLUMNS, figure_examples, metric_families
from captum_simec.viz import audit_figures
from tests.audit.helpers import tiny_data, tiny_mlp


def table_widths(markdown: str) -> list[int]:
    """The number of columns of every table in a markdown document."""
    return [line.count("|") - 1 for line in markdown.splitlines() if re.match(r"\|---", line)]


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
    assert "min spectral gap" in markdown and "spectral_gap" in markdown
    assert "## Definitions" in markdown and "- **null dimension**:" in markdown
    assert max(table_widths(markdown)) <= 8
    # integer axes: the null dimension histogram's ticks are whole numbers
    ticks = figures["null_dimension"][0].axes[0].get_xticks()
    assert np.all(ticks == np.round(ticks))
    assert "spectral gap" in figures["null_dimension"][0].axes[0].get_title()


def test_definitions_emphasis_and_bold_render_in_both_formats(tmp_path):
    report = Report("r").paragraph("**Winner: A** by far", emphasis=True)
    report.definitions({"kappa": "the share `P_N e_i`"})
    files = report.write(tmp_path)
    markdown, page = files.markdown.read_text(), files.html.read_text()
    assert "> **Winner: A** by far" in markdown and "- **kappa**: the share `P_N e_i`" in markdown
    assert '<p class="takeaway"><strong>Winner: A</strong> by far</p>' in page
    assert "<dl><dt>kappa</dt><dd>the share <code>P_N e_i</code></dd></dl>" in page


def _comparison() -> Comparison:
    generator = torch.Generator().manual_seed(0)
    maps = {name: torch.rand(2, 1, 4, 4, generator=generator) for name in ("A", "B")}
    maps["C"] = maps["A"].clone()
    metrics = [f"{mode}_auc/{b}" for mode in ("deletion", "insertion") for b in "uvwxyz"]
    metrics += ["randomisation_top", "random_logit"]
    scores = {
        name: {m: torch.rand(2, generator=generator, dtype=torch.float64) for m in metrics}
        for name in maps
    }
    return Comparison(
        inputs=torch.rand(2, 1, 4, 4, generator=generator),
        target=torch.tensor([1, 2]),
        maps=maps,
        seconds=dict.fromkeys(maps, 0.1),
        scores=scores,
        predicted=torch.tensor([1, 0]),
        labels=torch.tensor([1, 0]),
    )


def test_comparison_sections_are_narrow_tables_with_the_best_in_bold(tmp_path):
    comparison = _comparison()
    families = metric_families(list(next(iter(comparison.summary().values())))[1:])
    assert all(len(metrics) <= MAX_COLUMNS - 1 for metrics in families.values())
    assert len([t for t in families if t.startswith("Deletion")]) == 2  # 6 baselines: split
    files = add_comparison_sections(Report("r"), comparison).write(tmp_path)
    markdown = files.markdown.read_text()
    assert max(table_widths(markdown)) <= MAX_COLUMNS
    summary, winners = comparison.summary(), comparison.winners()
    best = winners["deletion_auc/u"][0]
    assert f"| {best} | **{summary[best]['deletion_auc/u']:.3g}** |" in markdown
    assert "C and A give bit-for-bit identical maps" in markdown
    assert "true class" in markdown  # the figure's caption says what the titles carry


def test_the_figure_shows_misclassified_examples_first():
    comparison = _comparison()
    comparison.labels = torch.tensor([1, 3])  # example 1 is predicted 0: wrong
    assert figure_examples(comparison, 1) == [1]
    assert figure_examples(comparison, 4) == [0, 1]
