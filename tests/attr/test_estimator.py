"""attribute(score="relevance", estimator="hutchinson"): the relevance from random probes."""

import pytest
import torch

from captum_simec.attr import LayerSiMECAttribution, SiMECAttribution, explain
from captum_simec.geometry import hutchinson_relevance
from tests.attr.helpers import Linear, mlp


@pytest.fixture
def many_outputs():
    """A linear map with 120 outputs of 12 features: exact relevance = column norms of W."""
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(120, 12, generator=generator, dtype=torch.float64)
    x = torch.randn(3, 12, generator=generator, dtype=torch.float64)
    return Linear(weight).eval(), weight, x


def test_the_estimate_is_within_a_few_standard_errors_of_the_exact_relevance(many_outputs):
    model, weight, x = many_outputs
    attribution = SiMECAttribution(model)
    exact = attribution.attribute(x)  # euclidean metric: ||W e_i||
    torch.testing.assert_close(exact, weight.norm(dim=0).expand(3, 12))
    estimate = attribution.attribute(x, estimator="hutchinson", probes=400, seed=1)
    error = hutchinson_relevance(model, x[:1], probes=400, seed=1).standard_error
    z = (estimate - exact) / error
    assert z.abs().max() < 5  # 36 estimates, each off by at most a few standard errors
    assert (z.abs() < 2).double().mean() > 0.8
    assert not torch.equal(estimate, exact)  # an estimate, not the exact value


def test_the_estimate_is_hutchinson_relevance_per_example_whatever_the_batch(many_outputs):
    model, _, x = many_outputs
    attribution = SiMECAttribution(model)
    batch = attribution.attribute(x, estimator="hutchinson", probes=50, seed=3)
    for i in range(3):
        alone = hutchinson_relevance(model, x[i : i + 1], probes=50, seed=3).relevance
        torch.testing.assert_close(batch[i : i + 1], alone, rtol=0, atol=0)
    again = attribution.attribute(x, estimator="hutchinson", probes=50, seed=3)
    assert torch.equal(batch, again)  # seeded


def test_a_full_deflation_basis_is_exact_and_signs_follow_the_target(many_outputs):
    model, _, x = many_outputs
    attribution = SiMECAttribution(model)
    full = attribution.attribute(x, estimator="hutchinson", deflation_rank=120, probes=5)
    torch.testing.assert_close(full, attribution.attribute(x), rtol=1e-9, atol=1e-12)
    signed = attribution.attribute(
        x, target=[0, 5, 7], output_metric="euclidean", signed=True, estimator="hutchinson"
    )
    exact_signed = attribution.attribute(
        x, target=[0, 5, 7], output_metric="euclidean", signed=True
    )
    assert torch.equal(signed.sign(), exact_signed.sign())


def test_on_a_layer_the_estimate_is_that_of_the_model_after_the_layer():
    generator = torch.Generator().manual_seed(0)
    first = torch.randn(12, 12, generator=generator, dtype=torch.float64)
    second = torch.randn(120, 12, generator=generator, dtype=torch.float64)
    model = torch.nn.Sequential(Linear(first), Linear(second)).eval()
    x = torch.randn(3, 12, generator=generator, dtype=torch.float64)
    layer = LayerSiMECAttribution(model, model[0])
    estimate = layer.attribute(x, estimator="hutchinson", probes=50, seed=2)
    hidden = model[0](x).detach()
    alone = SiMECAttribution(model[1]).attribute(hidden, estimator="hutchinson", probes=50, seed=2)
    torch.testing.assert_close(estimate, alone, rtol=0, atol=0)
    full = layer.attribute(x, estimator="hutchinson", deflation_rank=120, probes=5)
    torch.testing.assert_close(full, second.norm(dim=0).expand(3, 12), rtol=1e-9, atol=1e-12)


def test_estimator_errors_name_the_fix():
    model, x = mlp(), torch.randn(2, 6)
    attribution = SiMECAttribution(model)
    with pytest.raises(ValueError, match="output_metric='topk'.*target"):
        attribution.attribute(x, score="robustness", estimator="hutchinson")
    with pytest.raises(ValueError, match="estimator='sketch'"):
        attribution.attribute(x, estimator="sketch")
    with pytest.raises(ValueError, match=r"\['probes'\] apply to estimator='hutchinson'"):
        attribution.attribute(x, probes=10)
    with pytest.raises(ValueError, match="signed=True.*pass target"):
        attribution.attribute(x, signed=True, estimator="hutchinson")
    with pytest.raises(TypeError, match="estimator"):
        explain(model, x, estimator="hutchinson")
    with pytest.raises(TypeError, match="probes"):
        attribution.attribute(x, score="robustness", probes=10)
