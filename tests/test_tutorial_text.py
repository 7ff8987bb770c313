"""Executes tutorials/token_maps_and_embedding_walks.py as a script; checks numbers and files."""

import re

import pytest

from tests.tutorials import run_tutorial

FIGURES = ("token_maps.png", "simec_tokens.png", "simexp_tokens.png")


@pytest.mark.slow
def test_text_tutorial_runs(tmp_path):
    pytest.importorskip(
        "transformers", reason="the `text` extra is not installed (pip install -e '.[text]')"
    )
    offline = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}  # it builds from a config
    out = run_tutorial("token_maps_and_embedding_walks.py", tmp_path, timeout=400, **offline)
    accuracy = float(re.search(r"test accuracy (\S+)", out).group(1))
    assert accuracy > 0.95
    rows = re.findall(
        r"^(SiMEC relevance|SiMEC flip|SiMEC boundary|relevance x .*?|LayerIG) +(0\.\d+|1\.0+)",
        out,
        re.M,
    )
    names = ["SiMEC relevance", "SiMEC flip", "SiMEC boundary"]
    assert [name for name, _ in rows][:3] == names and len(rows) == 5
    delta = float(re.search(r"largest \|convergence delta\| (\S+)", out).group(1))
    assert delta < 0.1  # logit changes of 3-15 along the paths: completeness within 1 %
    drift = float(re.search(r"largest logit drift (\S+)", out).group(1))
    assert drift < 1e-8  # the corrector keeps the walk on the class
    assert "SiMEC: prediction kept at every saved point: True" in out
    changed = re.search(r"SiMEC: (\d+) of (\d+) words changed token; by polarity:\n(.*)", out)
    assert int(changed.group(1)) > 0.2 * int(changed.group(2))
    assert "+ -> -" not in changed.group(3) and "- -> +" not in changed.group(3)
    assert "SiMExp stop reasons: ['class_change']" in out
    for name in FIGURES:
        assert (tmp_path / name).stat().st_size > 10_000, name
