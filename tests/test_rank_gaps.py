"""Every rank is reported with its spectral gap (and rank margin where the tolerance is
known): `Explanation`, its figure, a walk's records, summary and rank-change warning, and the
audit's records (the command line's output is tested in tests/test_cli.py)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from captum_simec import RobustnessAudit, explain, pullback_spectrum, simec
from captum_simec.explore import RankChangeWarning
from captum_simec.viz import plot_explanation
from tests.explore.test_toys import _start, toy


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)).double().eval()


X = torch.rand(2, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))


def test_explanation_carries_the_gap_and_the_margin_of_its_rank():
    model = _mlp()
    explanation = explain(model, X)
    spectrum = pullback_spectrum(model, X)
    assert torch.equal(explanation.rank, spectrum.rank)
    torch.testing.assert_close(explanation.spectral_gap, spectrum.spectral_gap)
    torch.testing.assert_close(explanation.rank_margin, spectrum.rank_margin)
    assert (explanation.spectral_gap == math.inf).all()  # rank 3 = p: nothing discarded
    figure = plot_explanation(explanation)
    titles = [ax.get_title() for ax in figure.axes]
    assert any("rank 3" in t and "gap inf" in t and "rank margin" in t for t in titles)


def test_walk_records_and_summary_show_the_gap_at_start_and_end():
    walk = simec(_mlp(), X, steps=3, step_size=0.01, seed=0, progress=False)
    gaps = walk.spectral_gap
    assert gaps.shape == walk.rank.shape
    s_r, s_next = walk.smallest_retained, walk.largest_discarded
    expected = torch.where(s_next > 0, s_r / s_next.clamp_min(1e-300), math.inf)
    torch.testing.assert_close(gaps, expected)
    for record in walk.to_records():
        assert record["start_spectral_gap"] == gaps[0, record["example"]].item()
        assert record["final_spectral_gap"] == gaps[-1, record["example"]].item()
    assert "rank at the start: 3, spectral gap" in walk.summary()


def test_a_dead_region_has_gap_0_and_the_rank_change_warning_shows_the_gaps():
    with pytest.warns(RankChangeWarning, match=r"0 \(gap 0\) -> 1 \(gap inf\)"):
        walk = simec(
            toy([1, -1]), _start(-1.85, 1.3), steps=20, step_size=1.0, seed=2, on_rank_change="warn"
        )
    assert walk.spectral_gap[0, 0].item() == 0.0
    assert walk.to_records()[0]["start_spectral_gap"] == 0.0


def test_audit_records_carry_the_rank_margin():
    audit = RobustnessAudit(_mlp(), simec_steps=0, simexp_steps=0, attacks=(), progress=False)
    records, _ = audit.audit_batch(X)
    spectrum = pullback_spectrum(_mlp(), X)
    assert [r["rank_margin"] for r in records] == spectrum.rank_margin.tolist()
    assert [r["spectral_gap"] for r in records] == spectrum.spectral_gap.tolist()
