"""Max-sensitivity (captum_simec.evaluation.sensitivity)."""

import pytest
import torch
from captum.attr import Saliency

from captum_simec import evaluation
from tests.attr.helpers import Linear, mlp


def test_a_constant_map_has_zero_sensitivity_and_a_curved_one_does_not():
    linear = Linear(torch.randn(3, 5)).eval()
    x = torch.rand(4, 5)

    def saliency_of(model):
        return lambda inputs, target: Saliency(model).attribute(inputs, target=target)

    flat = evaluation.max_sensitivity(saliency_of(linear), x, 1, domain=(0.0, 1.0))
    assert flat.shape == (4,) and torch.all(flat < 1e-6)
    curved = evaluation.max_sensitivity(saliency_of(mlp(n=5)), x, 1, domain=(0.0, 1.0))
    assert torch.all(curved > 0)
    again = evaluation.max_sensitivity(saliency_of(mlp(n=5)), x, 1, domain=(0.0, 1.0))
    assert torch.equal(curved, again)  # seeded
    wider = evaluation.max_sensitivity(
        saliency_of(mlp(n=5)), x, 1, domain=(0.0, 1.0), radius=0.2, samples=20
    )
    assert wider.mean() > curved.mean()


def test_the_perturbations_stay_in_the_domain():
    seen = []

    def record(inputs, target):
        seen.append(inputs.clone())
        return inputs.clone()

    x = torch.tensor([[0.0, 1.0, 0.5]])
    evaluation.max_sensitivity(record, x, None, domain=(0.0, 1.0), radius=0.5, samples=8)
    points = torch.cat(seen)
    assert points.min() >= 0.0 and points.max() <= 1.0 and points.std() > 0


def test_sensitivity_errors():
    x = torch.rand(2, 3)
    with pytest.raises(ValueError, match="radius"):
        evaluation.max_sensitivity(lambda i, t: i, x, radius=0.0)
    with pytest.raises(ValueError, match="lo > hi"):
        evaluation.max_sensitivity(lambda i, t: i, x, domain=(1.0, 0.0))
