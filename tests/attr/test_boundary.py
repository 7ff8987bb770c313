"""score="boundary": the attribution of `boundary_path`, with a convergence delta."""

import pytest
import torch
from torch import nn

from captum_simec.attr import SiMECAttribution
from captum_simec.explore import boundary_path
from tests.attr.helpers import mlp


def test_attribute_returns_the_delta_and_batch_equals_single_examples():
    model, x = mlp(), torch.randn(5, 6, generator=torch.Generator().manual_seed(3))
    target = [0, 1, 2, 1, 0]
    attribution = SiMECAttribution(model)
    maps, delta = attribution.attribute(
        x, target=target, score="boundary", return_convergence_delta=True
    )
    assert maps.shape == x.shape and delta.shape == (5,)
    for i, t in enumerate(target):
        single, single_delta = attribution.attribute(
            x[i : i + 1], target=t, score="boundary", return_convergence_delta=True
        )
        torch.testing.assert_close(single[0], maps[i], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(single_delta[0], delta[i], atol=1e-5, rtol=1e-4)
    assert torch.equal(attribution.attribute(x, target=target, score="boundary"), maps)


def test_attribute_is_the_path_integral_with_its_options():
    model = mlp(n=6, m=3, seed=6)
    x = torch.rand(8, 6, generator=torch.Generator().manual_seed(7))
    path = boundary_path(model, x, domain=(0.0, 1.0), n_steps=16)
    attributions, delta = SiMECAttribution(model).attribute(
        x, score="boundary", domain=(0.0, 1.0), n_steps=16, return_convergence_delta=True
    )
    torch.testing.assert_close(attributions, path.attributions)
    torch.testing.assert_close(delta, path.delta)


class _Logit(nn.Module):
    """One output: a binary logit `f(x) = w . x + b`."""

    def forward(self, x):
        return x @ torch.tensor([1.0, -2.0, 0.5], dtype=x.dtype) + 0.3


def test_one_output_model_integrates_its_logit_to_zero():
    x = torch.tensor([[1.0, 0.2, 0.4], [-1.0, 0.5, 0.0]], dtype=torch.float64)
    maps, delta = SiMECAttribution(_Logit()).attribute(
        x, score="boundary", return_convergence_delta=True
    )
    logit = _Logit()(x)
    # from either side of f = 0, the map sums to f(x) - f(x_end) = f(x), exactly (linear)
    torch.testing.assert_close(maps.sum(dim=1), logit, atol=1e-6, rtol=0)
    assert delta.abs().max() < 1e-12


def test_a_walk_out_of_budget_warns_and_gives_the_integral_so_far():
    model, x = mlp(), torch.randn(3, 6, generator=torch.Generator().manual_seed(8))
    with pytest.warns(UserWarning, match="stopped before their decision changed"):
        maps = SiMECAttribution(model).attribute(x, score="boundary", n_steps=16, max_steps=2)
    assert torch.isfinite(maps).all() and maps.abs().sum() > 0


def test_errors_name_the_argument():
    model, x = mlp(), torch.randn(2, 6)
    with pytest.raises(ValueError, match="output_metric"):
        SiMECAttribution(model).attribute(x, score="boundary", output_metric="euclidean")
    with pytest.raises(ValueError, match="multiply_by_inputs"):
        SiMECAttribution(model, multiply_by_inputs=True).attribute(x, score="boundary")
    with pytest.raises(ValueError, match="score='relevance' has no convergence delta"):
        SiMECAttribution(model).attribute(x, target=0, return_convergence_delta=True)
    with pytest.raises(TypeError, match=r"\['seed'\] that score='boundary' does not take"):
        SiMECAttribution(model).attribute(x, score="boundary", seed=3)
