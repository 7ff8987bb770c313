"""Executes tutorials/walks_inside_and_across_classes.py as a script, with and without data."""

from __future__ import annotations

from pathlib import Path

import pytest

from captum_simec.zoo.datasets import DATA_ENV_VAR, shared_data_dir
from tests.tutorials import run_tutorial

TUTORIAL = "walks_inside_and_across_classes.py"
FIGURES = (
    "toy_relu_3d.png",
    "toy_leaky_line.png",
    "toy_relu_dead_region.png",
    "mnist_simec_strip.png",
    "mnist_simexp_strip.png",
    "mnist_simexp_traces.png",
    "plant_class_AT_V.png",
    "plant_class_AT_AP.png",
    "plant_preimage_440_450.png",
)


#: rank and null dimension of the two MNIST images: the networks are created and trained in
#: float64, so these are the same on every CPU (the first real MNIST image has dead hidden
#: units: rank 7; rank margins >= 29, so the float32 copy decides them clearly).
RANKS = {
    "mnist": "rank [7, 9], null dimension [777, 775]",
    "digits": "rank [9, 9], null dimension [775, 775]",
}


def _run(out: Path, **environment: str) -> str:
    printed = run_tutorial(TUTORIAL, out, **environment)
    for name in FIGURES:
        path = out / name
        assert path.is_file() and path.stat().st_size > 1000, name
    assert "x - y + z in [2.050000000000, 2.050000000000]" in printed
    assert "stopped by 'rank_change'" in printed
    data = "mnist" if "mnist: test accuracy" in printed else "digits"
    assert RANKS[data] in printed
    assert "SiMEC: class kept at every saved point: True" in printed
    assert printed.count("(class_change)") == 2
    assert "preimage [440, 450] MW:" in printed
    return printed


@pytest.mark.slow
def test_walks_tutorial_runs_on_the_data_at_hand(tmp_path):
    printed = _run(tmp_path)
    root = shared_data_dir()
    if root is not None and (root / "mnist").is_dir() and (root / "ccpp").is_dir():
        assert "mnist: test accuracy" in printed
        assert "ccpp: test RMSE" in printed


@pytest.mark.slow
def test_walks_tutorial_falls_back_without_the_data(tmp_path):
    empty = tmp_path / "no_data"
    empty.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    printed = _run(out, **{DATA_ENV_VAR: str(empty)})
    assert "digits: test accuracy" in printed
    assert "synthetic-ccpp: test RMSE" in printed
