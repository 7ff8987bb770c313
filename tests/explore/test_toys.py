"""Paper III §7.1 toy networks `f(x) = act(a . x)` in float64 (method.md §5)."""

import pytest
import torch

from captum_simec.explore import RankChangeWarning, simec
from tests.explore.helpers import toy


def _start(*coordinates):
    return torch.tensor([coordinates], dtype=torch.float64)


def test_relu_3d_walk_stays_on_the_plane():
    a = torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64)
    walk = simec(toy([1, -1, 1]), _start(1.85, 1.3, 1.5), steps=1000, step_size=0.01, seed=0)
    invariant = walk.points_flat[:, 0] @ a
    assert (invariant - 2.05).abs().max() < 1e-9
    assert walk.stop_reason == ["steps"]
    assert (walk.rank == 1).all()
    # the class is a plane: a 2-D random walk leaves the start in every in-plane direction
    assert walk.path_length.item() == pytest.approx(10.0)
    assert walk.displacement().norm() > 0.05


@pytest.mark.parametrize("slope", [0.01, -0.01])
def test_leaky_relu_2d_travels_along_the_line(slope):
    f = toy([1, -1], "leaky_relu", slope)
    walk = simec(f, _start(1.85, 1.3), steps=1000, step_size=0.001, seed=0, save_every=10)
    points = walk.points_flat[:, 0]
    assert (points[:, 0] - points[:, 1] - 0.55).abs().max() < 1e-9
    # a 1-D class with sign continuity: the walk goes straight, 1000 * 0.001 = 1.0
    assert walk.displacement().norm().item() == pytest.approx(1.0, rel=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("slope", [0.01, -0.01])
def test_leaky_relu_2d_ten_thousand_steps(slope):
    f = toy([1, -1], "leaky_relu", slope)
    walk = simec(f, _start(1.85, 1.3), steps=10_000, step_size=0.001, seed=0, save_every=100)
    points = walk.points_flat[:, 0]
    assert (points[:, 0] - points[:, 1] - 0.55).abs().max() < 1e-9
    assert walk.displacement().norm().item() > 9.9


def test_relu_2d_dead_region_is_two_dimensional_and_rank_change_stops():
    walk = simec(
        toy([1, -1]), _start(-1.85, 1.3), steps=500, step_size=1.0, seed=2, on_rank_change="stop"
    )
    assert walk.rank[0].item() == 0  # g = 0: every direction is null
    assert walk.stop_reason == ["rank_change"]
    steps = walk.stopped_at.item()
    assert 0 < steps < 500
    assert (walk.rank[:steps, 0] == 0).all() and walk.rank[steps, 0].item() == 1
    final = walk.final[0]
    assert final[0] > final[1]  # it crossed into x > y, where the rank is 1
    assert (walk.drift[:steps, 0] == 0).all()  # inside the dead region f stays 0


def test_relu_2d_rank_change_warns_and_continues():
    with pytest.warns(RankChangeWarning, match="rank of the pullback metric changed") as caught:
        walk = simec(
            toy([1, -1]),
            _start(-1.85, 1.3),
            steps=20,
            step_size=1.0,
            seed=2,
            on_rank_change="warn",
        )
    assert walk.stop_reason == ["steps"]
    assert walk.rank_changes.item() >= 1
    assert caught[0].filename == __file__  # the warning points at the caller
