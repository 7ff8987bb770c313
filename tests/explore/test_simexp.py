"""SiMExp: range-space walks, directed walks, and walks out of (or into) a class."""

import math

import pytest
import torch

from captum_simec.explore import simexp
from tests.explore.helpers import linear_classifier, tanh_mlp


def _two_class_race(n=6, seed=0):
    """A linear 3-class model where class 2 is far below: 0 and 1 decide the boundary."""
    weight, _, _ = linear_classifier(n=n, m=3, seed=seed)
    bias = torch.tensor([0.0, 0.0, -100.0], dtype=torch.float64)
    return weight, lambda x: x @ weight.T + bias


def test_leave_class_distance_is_the_closed_form_distance_to_the_boundary():
    weight, f = _two_class_race()
    x = torch.randn(5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    step_size, tolerance = 0.01, 1e-7
    walk = simexp(
        f, x, mode="leave_class", steps=5000, step_size=step_size, seed=0, boundary_tol=tolerance
    )
    outputs = f(x)
    start = outputs[:, :2].argmax(dim=1)
    runner_up = 1 - start
    margin = outputs.gather(1, start[:, None]) - outputs.gather(1, runner_up[:, None])
    gap = (weight[start] - weight[runner_up]).norm(dim=1)
    distance = margin[:, 0] / gap
    displacement = walk.displacement().norm(dim=1)
    assert walk.stop_reason == ["class_change"] * 5
    assert walk.class_changed.all()
    assert torch.equal(walk.final_class, runner_up) and torch.equal(walk.target, start)
    assert (displacement >= distance - 1e-12).all()  # just across the boundary
    assert (displacement <= distance + tolerance + 1e-12).all()
    # the path is the straight line down the margin gradient
    direction = walk.displacement() / displacement[:, None]
    expected = -(weight[start] - weight[runner_up]) / gap[:, None]
    assert torch.allclose(direction, expected, atol=1e-9)
    final_margin = f(walk.final).gather(1, start[:, None]) - f(walk.final).gather(
        1, runner_up[:, None]
    )
    assert (final_margin < 0).all() and (final_margin > -gap[:, None] * 2 * tolerance).all()
    assert walk.path_length.allclose(displacement)


def test_leave_class_without_refinement_overshoots_by_less_than_a_step():
    _, f = _two_class_race()
    x = torch.randn(3, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    refined = simexp(f, x, mode="leave_class", steps=5000, step_size=0.05, seed=0)
    coarse = simexp(
        f, x, mode="leave_class", steps=5000, step_size=0.05, seed=0, refine_boundary=False
    )
    gap = coarse.displacement().norm(dim=1) - refined.displacement().norm(dim=1)
    assert (gap >= 0).all() and (gap < 0.05).all()
    assert coarse.class_changed.all()


def test_leave_class_on_a_nonlinear_model_ends_on_the_boundary():
    model = tanh_mlp(n=6, m=3, seed=2)
    x = torch.rand(4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    walk = simexp(model, x, mode="leave_class", steps=3000, step_size=0.02, seed=0)
    done = [r == "class_change" for r in walk.stop_reason]
    assert any(done)
    logits = model(walk.final).detach()
    top2 = logits.topk(2, dim=1).values
    for i, flag in enumerate(done):
        if flag:
            assert walk.class_changed[i]
            assert top2[i, 0] - top2[i, 1] < 1e-6  # on the boundary, within the tolerance


def test_to_class_reaches_the_goal():
    _, _, f = linear_classifier(n=6, m=4, seed=5)
    x = torch.randn(4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    goal = 3
    walk = simexp(f, x, mode="to_class", target_class=goal, steps=5000, step_size=0.01, seed=0)
    start = f(x).argmax(dim=1)
    for i in range(4):
        if start[i] == goal:
            assert walk.stop_reason[i] == "class_reached" and walk.stopped_at[i] == 0
        else:
            assert walk.stop_reason[i] == "class_reached" and walk.final_class[i] == goal
    per_example = simexp(
        f, x, mode="to_class", target_class=[0, 1, 2, 3], steps=5000, step_size=0.01, seed=0
    )
    assert per_example.final_class.tolist() == [0, 1, 2, 3]


def test_directed_walk_goes_straight_away_from_the_start_output():
    _, _, f = linear_classifier(n=6, m=3)
    x = torch.randn(2, 6, dtype=torch.float64)
    walk = simexp(f, x, mode="directed", steps=50, step_size=0.02, seed=0)
    assert walk.kind == "simexp/directed"
    assert torch.allclose(walk.displacement().norm(dim=1), walk.path_length)
    assert (walk.drift[1:] > walk.drift[:-1]).all()
    singular = torch.linalg.svdvals(linear_classifier(n=6, m=3)[0])[0]
    assert torch.allclose(walk.drift[-1], singular * 50 * 0.02)


def test_random_and_weighted_steps_lie_in_the_range_space():
    weight, _, f = linear_classifier(n=8, m=3)
    x = torch.randn(3, 8, dtype=torch.float64)
    basis = torch.linalg.svd(weight, full_matrices=True).Vh[3:]  # null space of W
    for mode in ("random", "weighted"):
        walk = simexp(f, x, mode=mode, steps=40, step_size=0.05, seed=1)
        steps = walk.points_flat[1:] - walk.points_flat[:-1]
        assert (steps @ basis.T).abs().max() < 1e-12
        assert walk.path_length.allclose(torch.full((3,), 2.0, dtype=torch.float64))
        assert walk.stop_reason == ["steps"] * 3


def test_max_output_change_stops_in_the_metric_norm():
    _, _, f = linear_classifier(n=8, m=3)
    x = torch.randn(3, 8, dtype=torch.float64)
    walk = simexp(f, x, mode="random", steps=500, step_size=0.05, max_output_change=0.5, seed=0)
    assert walk.stop_reason == ["max_output_change"] * 3
    for i in range(3):
        k = walk.stopped_at[i].item()
        assert walk.drift[k, i] > 0.5 >= walk.drift[k - 1, i]


def test_random_walk_stops_on_class_change_when_asked():
    _, _, f = linear_classifier(n=4, m=3)
    x = torch.randn(3, 4, dtype=torch.float64)
    walk = simexp(f, x, mode="random", steps=3000, step_size=0.1, stop_on_class_change=True, seed=0)
    assert "class_change" in walk.stop_reason
    for i, reason in enumerate(walk.stop_reason):
        assert reason in ("class_change", "steps")
        if reason == "class_change":
            assert walk.class_changed[i]


def test_parity_simexp_combines_a_null_and_a_range_step():
    _, _, f = linear_classifier(n=8, m=3)
    x = torch.randn(2, 8, dtype=torch.float64)
    walk = simexp(f, x, steps=20, step_size=0.1, parity=True, seed=0)
    assert walk.kind == "simexp/parity"
    assert walk.path_length.allclose(torch.full((2,), 20 * 0.1 / math.sqrt(2), dtype=torch.float64))
    assert walk.max_drift.min() > 0


def test_class_modes_need_a_classifier_and_a_goal():
    with pytest.raises(ValueError, match="at least two outputs"):
        simexp(lambda x: x.sum(dim=1, keepdim=True), torch.rand(2, 3), mode="leave_class", steps=2)
    _, _, f = linear_classifier(n=4, m=3)
    with pytest.raises(ValueError, match="target_class"):
        simexp(f, torch.rand(2, 4, dtype=torch.float64), mode="to_class", steps=2)
    with pytest.raises(ValueError, match="target_class"):
        simexp(f, torch.rand(2, 4, dtype=torch.float64), mode="random", target_class=1, steps=2)


def test_float32_leave_class_stop_reason_agrees_with_the_recorded_class():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(10, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4), torch.nn.LogSoftmax(1)
    ).eval()
    x = torch.rand(8, 10)
    walk = simexp(model, x, mode="leave_class", steps=400, step_size=0.05, seed=0)
    changed = [reason == "class_change" for reason in walk.stop_reason]
    assert any(changed)
    assert walk.class_changed.tolist() == changed
    assert walk.outputs.dtype == torch.float32
