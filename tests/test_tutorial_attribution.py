"""Executes tutorials/simec_vs_integrated_gradients.py as a script; checks its numbers and files."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

TUTORIAL = Path(__file__).resolve().parents[1] / "tutorials" / "simec_vs_integrated_gradients.py"
FIGURES = (
    "maps.png",
    "comparison.png",
    "deletion_black.png",
    "deletion_uniform.png",
    "explanation.png",
    "simec_walk.png",
)


@pytest.mark.slow
def test_simec_vs_integrated_gradients_tutorial_runs(tmp_path):
    completed = subprocess.run(
        [sys.executable, str(TUTORIAL)],
        cwd=TUTORIAL.parents[1],
        env={**os.environ, "CAPTUM_SIMEC_TUTORIAL_OUT": str(tmp_path), "MPLBACKEND": "Agg"},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    out = completed.stdout
    assert "relevance == Saliency(abs=True): True" in out
    assert "rank [9, 9, 9, 9] null dimension [775, 775, 775, 775]" in out
    assert "| SiMEC relevance |" in out and "| IntegratedGradients |" in out
    rows = re.findall(r"^ (0\.\d\d) \| +(\S+) \| (\S+)$", out, flags=re.M)
    assert len(rows) == 3
    for _, along_null, along_range in rows:  # a null step moves the output far less
        assert float(along_null) < 0.01 * float(along_range)
    assert "class changed: False" in out
    for name in FIGURES:
        assert (tmp_path / name).stat().st_size > 10_000, name
