"""``captum-simec demo --quick`` end to end."""

from __future__ import annotations

import csv
import math

import pytest

from captum_simec.cli import main
from captum_simec.demo import run_demo
from captum_simec.report.comparison import MAX_COLUMNS
from tests.test_report import table_widths


def test_quick_demo_writes_everything(tmp_path, capsys):
    result = run_demo(tmp_path, quick=True, progress=False)
    printed = capsys.readouterr().out
    assert "test accuracy" in printed and "examples/s" in printed and "report:" in printed
    assert result.accuracy > 0.7  # 0.755 on every CPU (float64-trained, 5 quick epochs)
    for name in ("report.md", "report.html", "records.csv", "records.json", "summary.json"):
        assert (tmp_path / name).is_file(), name
    assert len(list((tmp_path / "figures").glob("*.png"))) >= 8
    with (tmp_path / "records.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == len(result.audit)
    # 784 pixels, rank 9 (log-softmax head); the same on every CPU: the demo's network is
    # created and trained in float64 (fit_digits_cnn)
    assert result.numbers["median_null_dim"] == 775
    assert math.isfinite(result.numbers["median_ratio_l2"])
    page = (tmp_path / "report.html").read_text()
    assert "IntegratedGradients" in page and "Robustness audit" in page
    markdown = (tmp_path / "report.md").read_text()
    sections = [line for line in markdown.splitlines() if line.startswith("## ")]
    assert sections[0] == "## Takeaway" and sections[-1] == "## Definitions"
    takeaway = markdown.split("## Takeaway")[1].split("## ")[0]
    assert "**Measured winner:" in takeaway and "SiMEC boundary" in takeaway
    assert "spectral gap" in takeaway
    definitions = markdown.split("## Definitions")[1]
    for term in ("removal baselines", "randomisation_top", "random_logit", "kappa", "drift"):
        assert f"- **{term}" in definitions, term
    assert "null dimension" in definitions
    comparison = markdown.split("## SiMEC attributions")[1].split("## Walks")[0]
    assert max(table_widths(comparison)) <= MAX_COLUMNS
    assert max(table_widths(markdown)) <= 8  # no table overflows the page
    assert "Saliency and SiMEC relevance give bit-for-bit identical maps" in comparison


def test_demo_command_rejects_a_bad_seed(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:  # an argument error, caught by argparse
        main(["demo", "--quick", "--seed", "-1", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "argument --seed: -1 must be >= 0" in capsys.readouterr().err
