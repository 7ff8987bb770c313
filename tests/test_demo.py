"""``captum-simec demo --quick`` end to end."""

from __future__ import annotations

import csv
import math

from captum_simec.cli import main
from captum_simec.demo import run_demo


def test_quick_demo_writes_everything(tmp_path, capsys):
    result = run_demo(tmp_path, quick=True, progress=False)
    printed = capsys.readouterr().out
    assert "test accuracy" in printed and "examples/s" in printed and "report:" in printed
    assert result.accuracy > 0.8
    assert result.seconds["total"] < 60
    for name in ("report.md", "report.html", "records.csv", "records.json", "summary.json"):
        assert (tmp_path / name).is_file(), name
    assert len(list((tmp_path / "figures").glob("*.png"))) >= 8
    with (tmp_path / "records.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == len(result.audit)
    assert result.numbers["median_null_dim"] == 775  # 784 pixels, rank 9 (log-softmax head)
    assert math.isfinite(result.numbers["median_ratio_l2"])
    page = (tmp_path / "report.html").read_text()
    assert "IntegratedGradients" in page and "Robustness audit" in page


def test_demo_command_rejects_a_bad_seed(tmp_path, capsys):
    assert main(["demo", "--quick", "--seed", "-1", "--out", str(tmp_path)]) == 2
    assert "`seed` must be a non-negative integer" in capsys.readouterr().err
