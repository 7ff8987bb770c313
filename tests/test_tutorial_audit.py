"""Executes tutorials/robustness_audit.py as a script and checks what it prints and writes."""

from __future__ import annotations

import pytest

from tests.tutorials import run_tutorial


@pytest.mark.slow
def test_robustness_audit_tutorial_runs(tmp_path):
    printed = run_tutorial("robustness_audit.py", tmp_path)
    assert "first call audited 16, the resumed call 8" in printed
    assert "class   n   acc  flip  walk L2  PGD L2  ratio" in printed
    ratio = float(printed.split("median flip / PGD ratio: L2 ")[1].split(",")[0])
    assert 0.8 < ratio < 1.3  # the walk's L2 flip is about attack-sized
    # the network is created and trained in float64: the same on every CPU; an image with
    # dead hidden units has rank 4 (null dimension 780), the others rank 9
    assert "null dimension: min 775, max 780" in printed
    folder = tmp_path / "audit"
    for name in ("report.md", "report.html", "records.csv", "records.json", "summary.json"):
        assert (folder / name).is_file(), name
