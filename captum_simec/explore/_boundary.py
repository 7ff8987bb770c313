"""The boundary walk's policy: down the target's margin, integrating its gradient.

The walk goes down the margin `m = f_t - max_{j != t} f_j` of the goal class `t` until the
predicted class changes (or, where `t` is not predicted, up its margin until it is); for
(T, V) sequence outputs `j` runs over the classes at the target's position and the decision
is the one there (`captum_simec.geometry.decisions`); the
walk loop bisects the step that crosses. Along the way `observe` integrates the target's
gradient by the trapezoid rule: `captum_simec.explore.boundary` documents the steps, the
quadrature and the result.
"""

from __future__ import annotations

import torch
from torch import Tensor

from captum_simec.explore._policy import DirectionPolicy, StepView, WalkContext
from captum_simec.geometry.decisions import runner_up
from captum_simec.geometry.metrics import MarginMetric, OutputMetric, TargetMetric
from captum_simec.geometry.spectrum import PullbackSpectrum, unit

__all__ = ["BoundaryPolicy", "MarginAndTargetMetric", "margin"]

#: once the plan is used up, steps aim this far past the linearised boundary.
OVERSHOOT = 2.0
#: a segment whose trapezoid misses the target's change along it by more than this share of
#: the start margin over `n_steps` (its share of the path) is integrated again on pieces.
SEGMENT_RTOL = 3e-2
#: most halvings of one segment (up to 2**MAX_HALVINGS pieces).
MAX_HALVINGS = 6


class MarginAndTargetMetric(OutputMetric):
    """Factor rows `e_t - e_r` (the margin over the runner-up `r`) and `e_t` (the target).

    The first row steers the walk; the second gives the target's gradient for the integral,
    from the same backward pass.

    Args:
        classes: classes per decision (the output's last dimension); None: all outputs.
    """

    name = "margin+target"
    requires_target = True

    def __init__(self, classes: int | None = None) -> None:
        self.margin = MarginMetric(classes)

    def cotangents(self, outputs: Tensor, target: Tensor | None) -> Tensor:
        margin_row = self.margin.cotangents(outputs, target)
        return torch.cat([margin_row, TargetMetric().cotangents(outputs, target)], dim=1)


def margin(outputs: Tensor, goal: Tensor, classes: int) -> Tensor:
    """`f_t - max_{j != t} f_j` per example (batch,) for flat outputs (batch, m), `j` over
    the `classes` outputs of the goal's position."""
    own = outputs.gather(1, goal.unsqueeze(1))
    other = outputs.gather(1, runner_up(outputs, goal, classes).unsqueeze(1))
    return (own - other).squeeze(1)


class BoundaryPolicy(DirectionPolicy):
    """Down the margin of the goal class (or up it, where it is not predicted), integrating.

    Step `k` of an example has length `|m(x_k)| / (r_k |grad m(x_k)|)` with `r_k` the
    planned steps left (at least 1): each step lowers the margin by the same share of what
    remains, to first order; once the plan is used up a step aims `OVERSHOOT` times the
    linearised distance to the boundary. Lengths are clipped to
    `[boundary_tol, max_step_size]`.

    Args:
        num_features: n, the flat input size.
        n_steps: the steps the walk plans.
        max_step_size: the longest step (inf for none).
        boundary_tol: bisection tolerance of the step that changes the class.

    Attributes:
        goal: flat goal class per example (batch,): the walk's target, else the predicted one.
        leave: whether the goal is predicted at the start (the walk leaves it) (batch,).
        integral: `int_x^{x_k} grad f_t . dgamma` so far (batch, n), float64.
        gap: the summed completeness error of the segments, `sum (f_t(b) - f_t(a) - piece)`
            (batch,), float64.

    Raises:
        ValueError: (in `setup`) a model with fewer than two outputs per example.
    """

    kind = "simexp/boundary"
    stop_reason = "class_change"

    def __init__(
        self, num_features: int, n_steps: int, max_step_size: float, boundary_tol: float
    ) -> None:
        self.num_features = num_features
        self.n_steps, self.max_step_size = n_steps, max_step_size
        self.boundary_tol = boundary_tol

    def setup(self, context: WalkContext) -> None:
        outputs = context.start_outputs
        if context.classes < 2:
            raise ValueError(
                "the boundary walk needs a classifier with at least two classes per decision; "
                f"this model has {context.classes}. For a one-output model (a binary logit), "
                "use SiMECAttribution(model).attribute(x, score='boundary')."
            )
        batch, device = outputs.shape[0], outputs.device
        self.context = context  # its `spectrum_at` integrates long segments on pieces
        self.goal = context.start_class if context.target is None else context.target
        self.leave = self.goal == context.start_class
        context.target = self.goal
        start_margin = margin(outputs, self.goal, context.classes).double().abs()
        self.allowed = SEGMENT_RTOL * start_margin / self.n_steps  # per segment
        self.taken = torch.zeros(batch, dtype=torch.long, device=device)
        self.integral = torch.zeros(batch, self.num_features, dtype=torch.float64, device=device)
        self.gap = torch.zeros(batch, dtype=torch.float64, device=device)

    def steering(self, context: WalkContext) -> tuple[OutputMetric, Tensor | None]:
        return MarginAndTargetMetric(context.classes), self.goal

    def propose(self, spectrum: PullbackSpectrum, view: StepView, context: WalkContext) -> Tensor:
        gradient = spectrum.factor[:, 0, :].double()
        slope = gradient.norm(dim=1)
        remaining = margin(spectrum.outputs, self.goal[view.rows], context.classes)
        remaining = remaining.double().abs()
        left = (self.n_steps - self.taken[view.rows]).clamp_min(1).double()
        share = torch.where(left > 1, 1.0 / left, torch.full_like(left, OVERSHOOT))
        length = (share * remaining / slope.clamp_min(1e-300)).clamp(
            self.boundary_tol, self.max_step_size
        )
        length = torch.where(slope > 0, length, 0.0)  # no gradient: no direction, stop
        sign = torch.where(self.leave[view.rows], -1.0, 1.0).to(length)
        step = unit(gradient) * (sign * length).unsqueeze(1)
        return step.to(spectrum.factor.dtype)

    def stop(self, outputs: Tensor, rows: Tensor, context: WalkContext) -> Tensor:
        goal = self.goal[rows]
        predicted = context.decision(outputs, rows, position=goal)
        left = predicted != context.start_class[rows]
        return torch.where(self.leave[rows], left, predicted == goal)

    def observe(
        self,
        rows: Tensor,
        here: Tensor,
        new: Tensor,
        spectrum_here: PullbackSpectrum,
        spectrum_new: PullbackSpectrum,
    ) -> None:
        """Adds the segment's integral to the integral and its completeness error to the gap.

        The trapezoid rule first; where it misses the target's change along the segment by
        more than the segment's share of the error budget, `SEGMENT_RTOL |m(x_0)| / n_steps`
        (a long step over a curved stretch, e.g. one that crossed the boundary early), the
        composite rule on 2, 4, ... pieces of the same straight segment, up to
        `MAX_HALVINGS` halvings (one Jacobian per new point).
        """
        goal = self.goal[rows].unsqueeze(1)
        change = spectrum_new.outputs.gather(1, goal) - spectrum_here.outputs.gather(1, goal)
        change = change.squeeze(1).double()
        move = (new - here).double()
        gradients = spectrum_here.factor[:, 1, :].double() + spectrum_new.factor[:, 1, :].double()
        piece = move * gradients / 2
        piece = self._refine(rows, here, move, piece, change, self.allowed[rows])
        self.integral[rows] += piece
        self.gap[rows] += change - piece.sum(dim=1)
        self.taken[rows] += 1

    def _refine(
        self,
        rows: Tensor,
        here: Tensor,
        move: Tensor,
        piece: Tensor,
        change: Tensor,
        allowed: Tensor,
    ) -> Tensor:
        """The composite trapezoid rule on halved pieces where `piece` misses `change` by
        more than `allowed`.

        With `N` pieces, `I_2N = I_N / 2 + move / (2N) * sum of the gradients at the N new
        midpoints`, so each halving evaluates the new points only.
        """
        pieces = 1
        for _ in range(MAX_HALVINGS):
            bad = (change - piece.sum(dim=1)).abs() > allowed
            if not bad.any():
                break
            midpoints = torch.zeros_like(piece[bad])
            for j in range(pieces):
                fraction = (2 * j + 1) / (2 * pieces)
                point = (here[bad].double() + fraction * move[bad]).to(here.dtype)
                midpoints += self.context.spectrum_at(point, rows[bad]).factor[:, 1, :].double()
            piece[bad] = piece[bad] / 2 + move[bad] * midpoints / (2 * pieces)
            pieces *= 2
        return piece
