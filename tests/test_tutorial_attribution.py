"""Executes tutorials/simec_vs_integrated_gradients.py as a script; checks its numbers and files."""

import re

import pytest

from tests.tutorials import run_tutorial

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
    out = run_tutorial("simec_vs_integrated_gradients.py", tmp_path, timeout=240)
    assert "relevance == Saliency(abs=True): True" in out
    # ranks <= 9 (log-softmax head), lower where fewer hidden units are active; every one a
    # clear decision (the model is trained in float64: the same on every CPU)
    line = re.search(r"^rank \[([\d, ]+)\] null dimension \[([\d, ]+)\]$", out, flags=re.M)
    ranks, nulls = ([int(v) for v in group.split(",")] for group in line.groups())
    assert len(ranks) == 4 and max(ranks) == 9 and nulls == [784 - r for r in ranks]
    margins = re.findall(r"^example \d: rank (\d), .* rank margin (\S+)$", out, flags=re.M)
    assert [int(r) for r, _ in margins] == ranks and all(float(m) > 5 for _, m in margins)
    assert "| SiMEC relevance |" in out and "| IntegratedGradients |" in out
    rows = re.findall(r"^ (0\.\d\d) \| +(\S+) \| (\S+)$", out, flags=re.M)
    assert len(rows) == 3
    for _, along_null, along_range in rows:  # a null step moves the output far less
        assert float(along_null) < 0.01 * float(along_range)
    assert "class changed: False" in out
    for name in FIGURES:
        assert (tmp_path / name).stat().st_size > 10_000, name
