"""`boundary_path`: the target's gradient integrated along the SiMExp walk out of the class."""

import math

import pytest
import torch

from captum_simec.explore import boundary_path
from captum_simec.explore._boundary import margin
from tests.attr.helpers import TwoInputs
from tests.explore.helpers import linear_classifier, tanh_mlp


def _outputs(model, x):
    with torch.no_grad():
        return model(x)


def test_linear_model_is_exact_and_ends_just_across_the_boundary():
    weight, _, model = linear_classifier(n=4, m=3)
    x = torch.randn(6, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    path = boundary_path(model, x, n_steps=8)
    target = _outputs(model, x).argmax(dim=1)
    end = path.end
    # a constant gradient: a_i = w_t,i (x_i - x_end,i) exactly, whatever the path
    torch.testing.assert_close(path.attributions, weight[target] * (x - end))
    assert path.delta.abs().max() < 1e-12
    assert path.reached.all() and torch.equal(path.target, target)
    assert torch.all(_outputs(model, end).argmax(dim=1) != target)
    # the last step is bisected: the end lies within the bisection tolerance of the boundary
    assert margin(_outputs(model, end), target, 3).abs().max() < 1e-6


def test_completeness_on_a_smooth_model_to_quadrature_accuracy():
    model = tanh_mlp(n=6, m=3, hidden=8, seed=2)
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


def test_a_target_that_is_not_predicted_is_walked_to():
    model = tanh_mlp(n=6, m=3, hidden=8, seed=4)
    x = torch.randn(4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    predicted = _outputs(model, x).argmax(dim=1)
    other = (predicted + 1) % 3
    path = boundary_path(model, x, other, n_steps=32)
    assert path.reached.all()
    assert torch.equal(_outputs(model, path.end).argmax(dim=1), other)
    # the map sums to f_t(x) - f_t(x_end) < 0: what holds the target back
    assert torch.all(path.attributions.sum(dim=1) < 0)


def test_the_walk_stays_in_the_box():
    model = tanh_mlp(n=6, m=3, hidden=8, seed=6)
    x = torch.rand(8, 6, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    path = boundary_path(model, x, domain=(0.0, 1.0))
    assert path.end.min() >= 0.0 and path.end.max() <= 1.0


def test_tuple_inputs_with_a_longest_step():
    model = TwoInputs().eval()
    inputs = (torch.randn(3, 4), torch.randn(3, 2, 3))
    path = boundary_path(model, inputs, 1, max_step_size=0.05, max_steps=400)
    assert isinstance(path.attributions, tuple)
    assert [a.shape for a in path.attributions] == [i.shape for i in inputs]
    steps = path.walk.stopped_at.double()
    assert torch.all(path.walk.path_length <= 0.05 * steps + 1e-6)


def test_errors_name_the_argument():
    model, x = tanh_mlp(n=6, m=3), torch.randn(2, 6, dtype=torch.float64)
    with pytest.raises(ValueError, match="n_steps"):
        boundary_path(model, x, n_steps=0)
    with pytest.raises(TypeError, match="max_steps"):
        boundary_path(model, x, max_steps=2.5)
    with pytest.raises(ValueError, match="max_step_size"):
        boundary_path(model, x, max_step_size=-1.0)
    with pytest.raises(ValueError, match="boundary_tol"):
        boundary_path(model, x, boundary_tol=0.0)
    with pytest.raises(ValueError, match="at least two classes.*score='boundary'"):
        boundary_path(tanh_mlp(n=6, m=1), x)


class _Steep(torch.nn.Module):
    """Logits `[0, 1e4 - exp(x_0)]`: the margin's slope grows 1e4-fold on the way to the
    boundary at `x_0 = ln 1e4`, so the first planned step (sized by the slope at the start)
    crosses it, and one trapezoid over that step misses the logit's change several-fold."""

    def forward(self, x):
        return torch.stack([torch.zeros_like(x[:, 0]), 1e4 - torch.exp(x[:, 0])], dim=1)


def test_a_long_curved_step_is_integrated_on_pieces_until_completeness_holds():
    model = _Steep()
    x = torch.zeros(2, 3, dtype=torch.float64)
    x[1, 1] = 5.0  # the other coordinates do not matter
    path = boundary_path(model, x)
    assert path.reached.all()
    end = path.end[:, 0]
    torch.testing.assert_close(end, torch.full((2,), math.log(1e4), dtype=torch.float64))
    change = torch.exp(end) - 1.0  # f_1(x) - f_1(x_end)
    total = path.attributions.sum(dim=1)
    torch.testing.assert_close(total - change, path.delta)
    assert (path.delta.abs() < 1e-2 * change).all()  # one trapezoid: -46,000 for 9,999
    exact = -(torch.exp(end) - 1.0)  # int_0^end d f_1 / dx_0 = -(e^end - 1), along x_0 alone
    torch.testing.assert_close(path.attributions[:, 0], -exact, rtol=1e-2, atol=0)
    assert (path.attributions[:, 1:] == 0).all()
