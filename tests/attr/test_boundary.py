"""score="boundary": the target's gradient integrated along the SiMExp path out of the class."""

import pytest
import torch
from torch import nn

from captum_simec.attr import SiMECAttribution
from captum_simec.attr.boundary import boundary_path, margin
from tests.attr.helpers import Linear, TwoInputs, mlp


def _outputs(model, x):
    with torch.no_grad():
        return model(x)


@pytest.fixture
def linear():
    weight = torch.tensor(
        [[1.0, -2.0, 0.5, 3.0], [0.0, 1.0, -1.0, 2.0], [2.0, 0.0, 1.0, -1.0]], dtype=torch.float64
    )
    return Linear(weight).eval(), weight


def test_linear_model_is_exact_and_ends_just_across_the_boundary(linear):
    model, weight = linear
    x = torch.randn(6, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    path = boundary_path(model, x, n_steps=8)
    target = _outputs(model, x).argmax(dim=1)
    end = path.end
    # a constant gradient: a_i = w_t,i (x_i - x_end,i) exactly, whatever the path
    torch.testing.assert_close(path.attributions, weight[target] * (x - end))
    assert path.delta.abs().max() < 1e-12
    assert path.reached.all()
    assert torch.all(_outputs(model, end).argmax(dim=1) != target)
    # the last step is bisected: the end lies within the bisection tolerance of the boundary
    assert margin(_outputs(model, end), target).abs().max() < 1e-6


def test_completeness_on_a_smooth_model_to_quadrature_accuracy():
    model = mlp(n=6, m=3, seed=2).double()
    x = torch.randn(5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    coarse, fine = boundary_path(model, x, n_steps=8), boundary_path(model, x, n_steps=64)
    for path in (coarse, fine):
        target = path.target
        own = _outputs(model, x).gather(1, target[:, None]).squeeze(1)
        at_end = _outputs(model, path.end).gather(1, target[:, None]).squeeze(1)
        # the delta is sum(a) - (f_t(x) - f_t(x_end)), checked with fresh forward passes
        torch.testing.assert_close(
            path.attributions.sum(dim=1) - (own - at_end), path.delta, atol=1e-12, rtol=0
        )
    # trapezoid rule: O(h^2) overall, so 8x more steps shrink the gap by far more than 4x
    assert fine.delta.abs().sum() < coarse.delta.abs().sum() / 4
    assert fine.delta.abs().max() < 1e-3 * fine.attributions.abs().sum(dim=1).min()


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


def test_a_target_that_is_not_predicted_is_walked_to():
    model = mlp(n=6, m=3, seed=4).double()
    x = torch.randn(4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    predicted = _outputs(model, x).argmax(dim=1)
    other = (predicted + 1) % 3
    path = boundary_path(model, x, other, n_steps=32)
    assert path.reached.all()
    assert torch.equal(_outputs(model, path.end).argmax(dim=1), other)
    # the map sums to f_t(x) - f_t(x_end) < 0: what holds the target back
    assert torch.all(path.attributions.sum(dim=1) < 0)


def test_the_walk_stays_in_the_box():
    model = mlp(n=6, m=3, seed=6)
    x = torch.rand(8, 6, generator=torch.Generator().manual_seed(7))
    path = boundary_path(model, x, domain=(0.0, 1.0))
    assert path.end.min() >= 0.0 and path.end.max() <= 1.0
    attributions, delta = SiMECAttribution(model).attribute(
        x, score="boundary", domain=(0.0, 1.0), return_convergence_delta=True
    )
    torch.testing.assert_close(attributions, path.attributions)
    torch.testing.assert_close(delta, path.delta)


def test_tuple_inputs_with_a_longest_step():
    model = TwoInputs().eval()
    inputs = (torch.randn(3, 4), torch.randn(3, 2, 3))
    path = boundary_path(model, inputs, 1, max_step_size=0.05, max_steps=400)
    assert isinstance(path.attributions, tuple)
    assert [a.shape for a in path.attributions] == [i.shape for i in inputs]
    steps = path.walk.stopped_at.double()
    assert torch.all(path.walk.path_length <= 0.05 * steps + 1e-6)


class _Logit(nn.Module):
    """One output: a binary logit `f(x) = w . x + b`."""

    def forward(self, x):
        return x @ torch.tensor([1.0, -2.0, 0.5], dtype=x.dtype) + 0.3


def test_one_output_model_integrates_its_logit_to_zero():
    x = torch.tensor([[1.0, 0.2, 0.4], [-1.0, 0.5, 0.0]], dtype=torch.float64)
    path = boundary_path(_Logit(), x)
    logit = _outputs(_Logit(), x)
    assert path.reached.all()
    torch.testing.assert_close(path.attributions.sum(dim=1), logit, atol=1e-6, rtol=0)


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
    with pytest.raises(ValueError, match="n_steps"):
        boundary_path(model, x, n_steps=0)
    with pytest.raises(TypeError, match="max_steps"):
        boundary_path(model, x, max_steps=2.5)
    with pytest.raises(ValueError, match="max_step_size"):
        boundary_path(model, x, max_step_size=-1.0)
    with pytest.raises(TypeError, match=r"\['seed'\] that score='boundary' does not take"):
        SiMECAttribution(model).attribute(x, score="boundary", seed=3)
