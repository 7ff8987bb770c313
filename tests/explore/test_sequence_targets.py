"""Walks that change a decision of a sequence model (batch, T, V): the one at position t."""

import pytest
import torch
from torch import nn

from captum_simec import SiMECAttribution, boundary_path, simexp

T, D, V = 4, 3, 5


class PerPosition(nn.Module):
    """Logits (batch, T, V) of a tanh layer applied to each position alone: position t's
    decision depends on position t's input only. The last position's logits are shifted up
    by 10, which changes no decision but puts the largest of all T x V logits there."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.hidden = nn.Linear(D, 8, dtype=torch.float64)
        self.out = nn.Linear(8, V, dtype=torch.float64)
        self.register_buffer("shift", torch.tensor([0.0, 0.0, 0.0, 10.0]).double()[:, None])

    def forward(self, x):
        return self.out(torch.tanh(self.hidden(x))) + self.shift


@pytest.fixture
def setting():
    """The model, inputs (whose largest logit lies at position 3), their logits, and the
    argmax at position 1."""
    model = PerPosition().eval()
    x = torch.randn(2, T, D, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    logits = model(x)
    assert (logits.flatten(1).argmax(dim=1) // V == 3).all()
    return model, x, logits, logits[:, 1].argmax(dim=1)


def _targets(position, classes):
    return [(position, int(c)) for c in classes]


def test_a_flip_changes_position_ts_argmax_and_no_other_decision(setting):
    model, x, logits, predicted = setting
    flip = SiMECAttribution(model).attribute(
        x, target=_targets(1, predicted), score="flip", signed=True, steps=400, step_size=0.05
    )
    moved = model(x + flip)
    assert (moved[:, 1].argmax(dim=1) != predicted).all()  # position 1 changed its decision
    others = [0, 2, 3]
    assert (moved[:, others].argmax(dim=2) == logits[:, others].argmax(dim=2)).all()
    assert (flip[:, others] == 0).all()  # only position 1's input moved
    margin = moved[:, 1].gather(1, predicted[:, None]).squeeze(1) - moved[:, 1].amax(dim=1)
    assert (margin < 0).all() and (margin > -1e-6).all()  # just across the boundary


def test_to_class_reaches_the_goal_at_position_t(setting):
    model, x, logits, predicted = setting
    goal = logits[:, 1].argsort(dim=1)[:, -2]  # the runner-up at position 1
    walk = simexp(
        model, x, mode="to_class", target_class=_targets(1, goal), steps=400, step_size=0.05
    )
    assert walk.stop_reason == ["class_reached", "class_reached"]
    final = model(walk.final)
    assert (final[:, 1].argmax(dim=1) == goal).all()
    assert (walk.predictions[-1] == 1 * V + goal).all()  # decisions as flat indices at t
    assert (walk.predictions[0] == 1 * V + predicted).all()


def test_leave_class_stops_on_position_t_only(setting):
    model, x, logits, predicted = setting
    walk = simexp(
        model, x, mode="leave_class", target=_targets(1, predicted), steps=400, step_size=0.05
    )
    assert walk.stop_reason == ["class_change", "class_change"]
    assert (model(walk.final)[:, 1].argmax(dim=1) != predicted).all()
    assert walk.class_changed.all()


def test_sequence_outputs_need_a_position(setting):
    model, x, _, _ = setting
    with pytest.raises(ValueError, match=r"4 positions of 5 classes.*target=\(t, class\)"):
        simexp(model, x, mode="leave_class", steps=2)
    with pytest.raises(ValueError, match=r"target=\(t, class\)"):
        simexp(model, x, mode="directed", stop_on_class_change=True, steps=2)
    with pytest.raises(ValueError, match=r"target=\(t, class\)"):
        SiMECAttribution(model).attribute(x, score="flip", steps=2)


def test_the_boundary_path_crosses_position_ts_decision_and_keeps_completeness(setting):
    model, x, logits, predicted = setting
    path = boundary_path(model, x, target=_targets(1, predicted))
    moved = model(path.end)
    assert path.reached.all()
    assert (moved[:, 1].argmax(dim=1) != predicted).all()  # position 1's decision changed
    others = [0, 2, 3]
    assert (path.attributions[:, others] == 0).all()  # the other positions' inputs stay put
    assert (moved[:, others].argmax(dim=2) == logits[:, others].argmax(dim=2)).all()
    # completeness: the map sums to f_t(x) - f_t(x_end), up to the reported delta
    target_logit = logits[:, 1].gather(1, predicted[:, None]).squeeze(1)
    end_logit = moved[:, 1].gather(1, predicted[:, None]).squeeze(1)
    total = path.attributions.flatten(1).sum(dim=1)
    torch.testing.assert_close(total - (target_logit - end_logit), path.delta)
    assert path.delta.abs().max() < 1e-2 * (target_logit - end_logit).abs().min()
    # the margin is the one among position 1's classes, not over all T x V logits
    margin = moved[:, 1].gather(1, predicted[:, None]).squeeze(1) - moved[:, 1].amax(dim=1)
    assert (margin < 0).all() and (margin > -1e-6).all()
