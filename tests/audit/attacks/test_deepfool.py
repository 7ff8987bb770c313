"""DeepFool: one linearised step lands on a linear model's nearest boundary."""

from __future__ import annotations

import pytest
import torch

from captum_simec.audit.attacks import deepfool

from .helpers import SLACK, binary_problem, closed_form, linear


@pytest.mark.parametrize("norm, dual", [("L2", 2.0), ("Linf", 1.0)])
@pytest.mark.parametrize("n_classes", [2, 3])
def test_matches_closed_form_on_linear(norm, dual, n_classes):
    model = linear(6, n_classes, seed=3)
    x = torch.randn(12, 6, generator=torch.Generator().manual_seed(4))
    exact = closed_form(model, x, dual)
    overshoot = 1e-4
    res = deepfool(model, x, norm=norm, overshoot=overshoot)
    assert res.flipped.all()
    # One linearised step lands on the nearest boundary, pushed by 1e-4 and the overshoot.
    assert (res.epsilon >= exact - SLACK).all()
    assert torch.allclose(res.epsilon, exact, rtol=5 * overshoot, atol=1e-3)


def test_fewer_candidates_than_classes_still_finds_the_runner_up():
    # With two candidates DeepFool only looks at the runner-up class. Every flip is at least
    # as far as the nearest boundary, which all candidates find in one step.
    model = linear(5, 4, seed=8)
    x = torch.randn(16, 5, generator=torch.Generator().manual_seed(9))
    every = deepfool(model, x, candidates=None, overshoot=0.0)
    two = deepfool(model, x, candidates=2, overshoot=0.0)
    assert two.flipped.all() and every.flipped.all()
    assert (two.epsilon >= every.epsilon - SLACK).all()  # fewer boundaries: never nearer


def test_deepfool_specific_errors():
    model, x = binary_problem()
    with pytest.raises(ValueError, match="`max_iter`"):
        deepfool(model, x, max_iter=0)
    with pytest.raises(ValueError, match="`overshoot`"):
        deepfool(model, x, overshoot=-0.1)
    with pytest.raises(TypeError, match="`overshoot`"):
        deepfool(model, x, overshoot="0.1")
    with pytest.raises(ValueError, match="`candidates`"):
        deepfool(model, x, candidates=1)
