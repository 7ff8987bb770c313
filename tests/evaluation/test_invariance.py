"""The invariance curve (captum_simec.evaluation.invariance) against hand-computed cases."""

import pytest
import torch

from captum_simec import evaluation


def _threshold_model(x: torch.Tensor) -> torch.Tensor:
    """Class 0 iff feature 0 exceeds 0.5; the other features are ignored."""
    flat = x.flatten(1)
    return torch.stack([flat[:, 0], torch.full_like(flat[:, 0], 0.5)], dim=1)


def test_a_map_that_knows_the_ignored_features_keeps_the_class_until_the_last_step():
    x = torch.tensor([[0.9, 0.3, 0.7]])
    robust = torch.tensor([[0.0, 2.0, 1.0]])  # feature 1, then 2, then the decisive 0
    curve = evaluation.invariance_curve(
        _threshold_model, x, robust, domain=(0.0, 1.0), steps=3, draws=4000
    )
    torch.testing.assert_close(curve.fractions, torch.tensor([0, 1 / 3, 2 / 3, 1.0]).double())
    assert curve.shares[0, :3].tolist() == [1.0, 1.0, 1.0]
    # noise in feature 0 keeps class 0 with probability P(u > 0.5) = 1/2
    assert float(curve.shares[0, 3]) == pytest.approx(0.5, abs=0.03)
    # area: (1/3) (1/2 + 1 + 1 + 0.5/2) = 0.9167
    assert float(curve.auc[0]) == pytest.approx(0.9167, abs=0.01)
    # the worst order noises the decisive feature first: 1/2 from the first step on
    worst = evaluation.invariance_curve(
        _threshold_model, x, -robust, domain=(0.0, 1.0), steps=3, draws=4000
    )
    assert float(worst.auc[0]) == pytest.approx((0.5 + 0.5 + 0.5 + 0.25) / 3, abs=0.02)


def test_relevance_maps_noise_their_least_relevant_features_first():
    x = torch.tensor([[0.9, 0.3, 0.7], [0.8, 0.1, 0.1]])
    relevance = torch.tensor([[-3.0, 0.1, 0.2], [2.0, 0.0, -0.5]])
    robust = torch.tensor([[0.0, 2.0, 1.0], [0.0, 2.0, 1.0]])
    kw = dict(domain=(0.0, 1.0), steps=3, draws=50, seed=4)
    by_relevance = evaluation.invariance_curve(
        _threshold_model, x, relevance, robust_first=False, **kw
    )
    by_robustness = evaluation.invariance_curve(_threshold_model, x, robust, **kw)
    assert torch.equal(by_relevance.shares, by_robustness.shares)


def test_tuple_inputs_and_per_feature_bounds():
    def model(a, b):
        return torch.stack([a[:, 0] + b[:, 0], torch.ones_like(a[:, 0])], dim=1)

    a, b = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.5]])
    order = (torch.tensor([[0.0, 1.0]]), torch.tensor([[2.0]]))  # b0, then a1, then a0
    curve = evaluation.invariance_curve(model, (a, b), order, domain=(0.0, 0.2), steps=3)
    # class 0 while a0 + b0 > 1: b0 in [0, 0.2] keeps it, a1 is ignored, a0 in [0, 0.2] not
    assert curve.shares[0].tolist() == [1.0, 1.0, 1.0, 0.0]
    # per-feature bounds: feature 0 pinned at 0.9 keeps the class whatever the map
    x = torch.tensor([[0.9, 0.3, 0.7]])
    pinned = (torch.tensor([0.9, 0.0, 0.0]), torch.tensor([0.9, 1.0, 1.0]))
    worst = torch.tensor([[1.0, 0.0, 0.0]])
    curve = evaluation.invariance_curve(_threshold_model, x, worst, domain=pinned, steps=3)
    assert torch.all(curve.shares == 1.0)
    with pytest.raises(ValueError, match="does not broadcast"):
        evaluation.invariance_curve(model, (a, b), order, domain=pinned)


def test_invariance_errors():
    x = torch.rand(2, 3)
    with pytest.raises(TypeError, match="domain"):
        evaluation.invariance_curve(_threshold_model, x, x, domain=None)
    with pytest.raises(ValueError, match="lower > upper"):
        evaluation.invariance_curve(_threshold_model, x, x, domain=(1.0, 0.0))
    with pytest.raises(ValueError, match="draws"):
        evaluation.invariance_curve(_threshold_model, x, x, domain=(0.0, 1.0), draws=0)
    with pytest.raises(ValueError, match="structure and shape"):
        evaluation.invariance_curve(_threshold_model, x, x[:, :2], domain=(0.0, 1.0))
