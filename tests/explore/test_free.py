"""`free=`: coordinates held fixed by a walk (padded tokens), the rest walked as usual."""

import pytest
import torch

from captum_simec.explore import Box, simec, simexp
from tests.explore.helpers import linear_classifier, tanh_mlp

FREE = torch.tensor([[True, True, False, True, True, False], [False, True, True, True, True, True]])


def test_simec_holds_the_frozen_coordinates_and_walks_the_class_of_the_rest():
    weight, bias, f = linear_classifier(n=6, m=2)
    x = torch.randn(2, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    walk = simec(f, x, free=FREE, steps=40, step_size=0.1, seed=0)
    moved = walk.max_abs_flat > 0
    assert torch.equal(moved, FREE)
    drift = (f(walk.final) - f(x)).abs().max()
    assert drift < 1e-12  # an affine class stays exact
    steps = walk.points_flat.diff(dim=0)  # each step lies in the null space of W on the free
    restricted = weight.unsqueeze(0) * FREE.unsqueeze(1)  # (batch, m, n)
    assert (torch.einsum("bmn,sbn->sbm", restricted.double(), steps).abs().max()) < 1e-12


def test_simexp_moves_only_the_free_coordinates():
    model = tanh_mlp()
    x = torch.randn(2, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    walk = simexp(model, x, mode="leave_class", free=FREE, steps=400, step_size=0.05)
    assert torch.equal(walk.max_abs_flat > 0, FREE)
    assert walk.class_changed.all()


def test_free_broadcasts_over_trailing_dimensions_and_composes_with_a_box():
    model = tanh_mlp(n=6)
    x = torch.rand(2, 3, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    positions = torch.tensor([[True, False, True], [True, True, False]]).unsqueeze(2)

    def flat_model(v):
        return model(v.flatten(1))

    walk = simec(flat_model, x, free=positions, domain=Box(0.0, 1.0), steps=30, step_size=0.05)
    moved = walk.max_abs_displacement() > 0
    assert not moved[~positions.expand(-1, -1, 2)].any()
    assert ((walk.points >= 0) & (walk.points <= 1)).all()


@pytest.mark.parametrize(
    ("free", "error", "match"),
    [
        (torch.ones(2, 5, dtype=torch.bool), ValueError, "does not broadcast"),
        (torch.ones(2, 6), TypeError, "bool tensor"),
        ((FREE, FREE), ValueError, "2 part"),
    ],
)
def test_bad_masks_are_refused(free, error, match):
    x = torch.zeros(2, 6, dtype=torch.float64)
    with pytest.raises(error, match=match):
        simec(tanh_mlp(), x, free=free, steps=1)


def test_parity_walks_move_every_coordinate():
    x = torch.zeros(2, 6, dtype=torch.float64)
    with pytest.raises(ValueError, match="free=None"):
        simec(tanh_mlp(), x, free=FREE, parity=True, corrector=False, steps=1)
    with pytest.raises(ValueError, match="free=None"):
        simexp(tanh_mlp(), x, free=FREE, parity=True, steps=1)
