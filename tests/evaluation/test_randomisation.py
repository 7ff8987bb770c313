"""Adebayo et al.'s sanity checks (captum_simec.evaluation.randomisation)."""

import warnings

import pytest
import torch

from captum_simec import evaluation
from captum_simec.attr import SiMECAttribution
from captum_simec.geometry.tolerance import SaturationWarning
from tests.attr.helpers import mlp


def _saliency(model, x, target):
    return SiMECAttribution(model).attribute(x, target=target)


def _class_agnostic(model, x, target):
    return SiMECAttribution(model).attribute(x, target=target, output_metric="euclidean")


def test_cascading_randomisation_leaves_the_model_intact_and_decorrelates():
    model, x = mlp(n=12, m=4, seed=3), torch.randn(6, 12)
    before = [p.clone() for p in model.parameters()]
    copies = evaluation.randomised_copies(model, seed=0)
    assert [name for name, _ in copies] == ["2", "0"]  # top layer first
    top, everything = copies[0][1], copies[1][1]
    assert torch.equal(top[0].weight, model[0].weight)
    assert not torch.equal(top[2].weight, model[2].weight)
    assert not torch.equal(everything[0].weight, model[0].weight)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    again = evaluation.randomised_copies(model, seed=0)
    assert torch.equal(again[1][1][0].weight, everything[0].weight)
    cascade = evaluation.model_randomisation_check(model, _saliency, x, 1, seed=0)
    assert [name for name, _ in cascade] == ["2", "0"]
    assert cascade[-1][1].shape == (6,) and cascade[-1][1].mean() < 0.9


def test_random_logit_check_cannot_pass_for_class_agnostic_maps():
    model, x = mlp(n=12, m=4, seed=3), torch.randn(6, 12)
    agnostic = evaluation.random_logit_check(model, _class_agnostic, x, None, seed=0)
    torch.testing.assert_close(agnostic, torch.ones(6, dtype=torch.float64))
    specific = evaluation.random_logit_check(model, _saliency, x, None, seed=0)
    assert specific.mean() < 0.95


def test_random_other_class_differs_from_the_target():
    target = torch.arange(10) % 3
    other = evaluation.random_other_class(target, 3, torch.Generator().manual_seed(0))
    assert torch.all(other != target) and torch.all((other >= 0) & (other < 3))
    with pytest.raises(ValueError, match="two outputs"):
        evaluation.random_other_class(target, 1)


def test_saturation_of_the_randomised_copies_does_not_warn_but_the_models_own_does():
    model, x = mlp(), torch.rand(3, 6)
    originals = []

    def saturating(net, inputs, target):  # warns as relevance does at a dead (J = 0) point
        originals.append(net is model)
        warnings.warn("J = 0", SaturationWarning, stacklevel=1)
        return torch.rand(inputs.shape, generator=torch.Generator().manual_seed(len(originals)))

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        checks = evaluation.model_randomisation_check(model, saturating, x, 0)
    assert originals[0] and not any(originals[1:]) and len(checks) == len(originals) - 1 > 0
    assert [w.category for w in caught] == [SaturationWarning]  # the model's own point only
