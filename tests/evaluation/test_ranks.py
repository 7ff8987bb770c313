"""Spearman rank correlation with average ranks for ties (captum_simec.evaluation.ranks)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from captum_simec import evaluation


def _naive_average_ranks(row: list[float]) -> list[float]:
    return [sum(v < x for v in row) + (sum(v == x for v in row) + 1) / 2 for x in row]


def _pearson(a: list[float], b: list[float]) -> float:
    ta, tb = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    ta, tb = ta - ta.mean(), tb - tb.mean()
    return float((ta * tb).sum() / (ta.norm() * tb.norm()))


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(-3, 3), st.integers(-3, 3)), min_size=3, max_size=12).filter(
        lambda pairs: len({p[0] for p in pairs}) > 1 and len({p[1] for p in pairs}) > 1
    )
)
def test_spearman_with_ties_matches_pearson_on_naive_average_ranks(pairs):
    a = [float(p[0]) for p in pairs]
    b = [float(p[1]) for p in pairs]
    expected = _pearson(_naive_average_ranks(a), _naive_average_ranks(b))
    ours = evaluation.spearman(torch.tensor([a]), torch.tensor([b]))
    assert ours.shape == (1,)
    assert abs(float(ours[0]) - expected) < 1e-12


def test_spearman_known_values_and_constant_maps():
    a = torch.tensor([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0], [5.0, 5.0, 5.0, 5.0]])
    b = torch.tensor([[10.0, 20.0, 30.0, 40.0], [4.0, 3.0, 2.0, 1.0], [1.0, 2.0, 3.0, 4.0]])
    rho = evaluation.spearman(a, b)
    torch.testing.assert_close(rho[:2], torch.tensor([1.0, -1.0], dtype=torch.float64))
    assert torch.isnan(rho[2])
    assert float(evaluation.spearman(a[:2], -b[:2], absolute=True)[0]) == pytest.approx(1.0)
    tuples = evaluation.spearman((a[:, :2], a[:, 2:]), (b[:, :2], b[:, 2:]))
    torch.testing.assert_close(tuples, rho, equal_nan=True)
    with pytest.raises(ValueError, match="same shape"):
        evaluation.spearman(a, b[:, :3])


def test_average_ranks_of_a_row_with_ties():
    ranks = evaluation.average_ranks(torch.tensor([[3.0, 1.0, 3.0, 2.0, 3.0]]))
    assert ranks.tolist() == [[4.0, 1.0, 4.0, 2.0, 4.0]]
