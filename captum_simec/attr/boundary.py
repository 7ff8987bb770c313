"""Boundary-path relevance: the target's gradient integrated along the SiMExp path out of the class.

From an example `x`, a SiMExp walk goes down the margin `m = f_t - max_{j != t} f_j` of the
target `t` (the range direction of the ``"margin"`` output metric), inside the domain box,
until the predicted class changes; its last step is bisected so that the end point `x_end`
lies just across the decision boundary. Per feature,

    a_i = int_{x_end}^{x} df_t/dx_i dgamma_i,    sum_i a_i = f_t(x) - f_t(x_end)   (completeness).

It is Integrated Gradients with two changes: the path follows the geometry instead of a
straight line, and the baseline is the nearest decision change instead of a chosen image.
Where `t` is not the predicted class, the walk goes up the margin of `t` until `t` is
predicted, and the map (summing to `f_t(x) - f_t(x_end) < 0`) says what holds `t` back.

Steps. The walk plans `n_steps` steps and adapts each one to the margin it still has to
lose: step `k` has length `|m(x_k)| / (r_k |grad m(x_k)|)` with `r_k = n_steps - k` steps
left (at least 1), so each step lowers the margin by the same share of what remains, to first
order, and the walk reaches the boundary in about `n_steps` steps wherever it starts; when
the plan runs out, the step aims at twice the linearised distance to the boundary, and the
step that crosses it is bisected. Long where the margin is flat, short where it is steep.

Quadrature. Every step is a straight segment `[a, b]`; its contribution is the trapezoid
rule `(b - a) * (grad f_t(a) + grad f_t(b)) / 2`. The target gradients come with the walk's
own Jacobians (the steering factor has the rows `e_t - e_r` and `e_t`), so the integral costs
no extra backward pass. The segment's completeness error `f_t(b) - f_t(a) - sum_i (...)_i` is
known exactly and summed into the convergence delta: O(h^3) per segment on smooth models
(the delta falls as `n_steps^-2`), zero on linear ones, larger on ReLU networks whose
gradient jumps inside a segment.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from captum_simec import _compat
from captum_simec._validation import check_int, check_positive
from captum_simec.attr.binary import BinaryLogit
from captum_simec.explore.constraints import Box
from captum_simec.explore.walk import DirectionPolicy, StepView, Walk, WalkContext, run_walk
from captum_simec.geometry.metrics import MarginMetric, OutputMetric, TargetMetric
from captum_simec.geometry.spectrum import PullbackSpectrum, unit

__all__ = [
    "BOUNDARY_OPTIONS",
    "BoundaryPath",
    "MarginAndTargetMetric",
    "boundary_path",
    "boundary_scores",
    "margin",
]

#: the keyword options `attribute(score="boundary", ...)` passes to `boundary_path`.
BOUNDARY_OPTIONS = (
    "n_steps",
    "max_steps",
    "max_step_size",
    "domain",
    "boundary_tol",
    "progress",
    "jacobian_method",
    "internal_batch_size",
)
#: the default bisection tolerance, in ulps of the inputs' largest magnitude.
BISECTION_ULPS = 16
#: steps the walk plans by default.
N_STEPS = 32
#: the step budget by default, in units of `n_steps`.
BUDGET_FACTOR = 4
#: once the plan is used up, steps aim this far past the linearised boundary.
OVERSHOOT = 2.0


class MarginAndTargetMetric(OutputMetric):
    """Factor rows `e_t - e_r` (the margin over the runner-up `r`) and `e_t` (the target).

    The first row steers the walk; the second gives the target's gradient for the integral,
    from the same backward pass.
    """

    name = "margin+target"
    requires_target = True

    def cotangents(self, outputs: Tensor, target: Tensor | None) -> Tensor:
        margin = MarginMetric().cotangents(outputs, target)
        return torch.cat([margin, TargetMetric().cotangents(outputs, target)], dim=1)


def margin(outputs: Tensor, goal: Tensor) -> Tensor:
    """`f_t - max_{j != t} f_j` per example (batch,) for flat outputs (batch, m)."""
    own = outputs.gather(1, goal.unsqueeze(1)).squeeze(1)
    others = outputs.detach().clone()
    others.scatter_(1, goal.unsqueeze(1), float("-inf"))
    return own - others.amax(dim=1)


class BoundaryPolicy(DirectionPolicy):
    """Down the margin of the goal class (or up it, where it is not predicted), integrating.

    Args:
        goal: flat target index per example (batch,).
        leave: whether the goal is the predicted class (walk out of it) per example.
        num_features: n.
        n_steps: the steps the walk plans (module docstring).
        max_step_size: the longest step (inf for none).
        boundary_tol: bisection tolerance of the step that changes the class.
    """

    kind = "simexp/boundary"
    stop_reason = "class_change"

    def __init__(
        self,
        goal: Tensor,
        leave: Tensor,
        num_features: int,
        n_steps: int,
        max_step_size: float,
        boundary_tol: float,
    ) -> None:
        batch, device = goal.shape[0], goal.device
        self.goal, self.leave = goal, leave
        self.n_steps, self.max_step_size = n_steps, max_step_size
        self.boundary_tol = boundary_tol
        self.taken = torch.zeros(batch, dtype=torch.long, device=device)
        self.integral = torch.zeros(batch, num_features, dtype=torch.float64, device=device)
        self.gap = torch.zeros(batch, dtype=torch.float64, device=device)

    def setup(self, context: WalkContext) -> None:
        context.target = self.goal

    def steering(self, context: WalkContext) -> tuple[OutputMetric, Tensor | None]:
        return MarginAndTargetMetric(), self.goal

    def propose(self, spectrum: PullbackSpectrum, view: StepView, context: WalkContext) -> Tensor:
        gradient = spectrum.factor[:, 0, :].double()
        slope = gradient.norm(dim=1)
        remaining = margin(spectrum.outputs, self.goal[view.rows]).double().abs()
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
        predicted = outputs.argmax(dim=1)
        left = predicted != context.start_class[rows]
        return torch.where(self.leave[rows], left, predicted == self.goal[rows])

    def observe(
        self,
        rows: Tensor,
        here: Tensor,
        new: Tensor,
        spectrum_here: PullbackSpectrum,
        spectrum_new: PullbackSpectrum,
    ) -> None:
        """Adds the segment's trapezoid rule to the integral and its error to the delta."""
        gradients = spectrum_here.factor[:, 1, :].double() + spectrum_new.factor[:, 1, :].double()
        piece = (new - here).double() * gradients / 2
        self.integral[rows] += piece
        goal = self.goal[rows].unsqueeze(1)
        change = spectrum_new.outputs.gather(1, goal) - spectrum_here.outputs.gather(1, goal)
        self.gap[rows] += change.squeeze(1).double() - piece.sum(dim=1)
        self.taken[rows] += 1


@dataclass
class BoundaryPath:
    """Boundary-path relevance of a batch, with the path it was integrated along.

    Attributes:
        attributions: `a_i = int_{x_end}^{x} df_t/dx_i dgamma_i` (input structure).
        delta: convergence delta `sum_i a_i - (f_t(x) - f_t(x_end))` per example (batch,):
            the quadrature error.
        reached: whether the walk crossed the decision boundary (batch,); where it did not,
            `x_end` is where the step budget ran out.
        target: flat target index per example (batch,); for a one-output model, 1 (the
            output `f` of the binary logit `[0, f]`).
        walk: the SiMExp walk (end points `walk.final`, stop reasons, Jacobian counts).
    """

    attributions: Tensor | tuple[Tensor, ...]
    delta: Tensor
    reached: Tensor
    target: Tensor
    walk: Walk

    @property
    def end(self) -> Tensor | tuple[Tensor, ...]:
        """`x_end`, just across the decision boundary (input structure)."""
        return self.walk.final


def _goals(
    forward_func: Callable[..., Any], inputs: tuple[Tensor, ...], args: Any, target: Any
) -> tuple[Callable[..., Any], Tensor, Tensor]:
    """The forward function (binary logit for one output), the goal and `leave` per example."""
    with torch.no_grad():
        outputs = forward_func(*inputs, *(args or ()))
    batch = outputs.shape[0]
    if outputs[0].numel() == 1:
        logits = BinaryLogit(forward_func)
        goal = torch.ones(batch, dtype=torch.long, device=outputs.device)
        return logits, goal, outputs.reshape(batch) > 0
    flat = _compat.target_to_flat_indices(target, outputs.shape, outputs.device)
    predicted = outputs.reshape(batch, -1).argmax(dim=1)
    goal = predicted if flat is None else flat
    return forward_func, goal, goal == predicted


def boundary_path(
    forward_func: Callable[..., Any],
    inputs: Tensor | tuple[Tensor, ...],
    target: _compat.TargetType = None,
    *,
    additional_forward_args: Any = None,
    n_steps: int = N_STEPS,
    max_steps: int | None = None,
    max_step_size: float | None = None,
    domain: Box | tuple[Any, Any] | None = None,
    boundary_tol: float | None = None,
    progress: bool | None = False,
    jacobian_method: str = "auto",
    internal_batch_size: int | None = None,
) -> BoundaryPath:
    """The target's gradient integrated along the SiMExp path out of the class (module doc).

    Args:
        forward_func: the model (eval mode), returning logits or log-probabilities.
        inputs: a tensor or tuple of tensors, batch first.
        target: Captum target; None uses the predicted class. A one-output model is read as
            the binary logit `[0, f]` and `f` is integrated.
        additional_forward_args: extra arguments of `forward_func`, as in Captum.
        n_steps: the steps the walk plans (each a Jacobian of two rows); more steps give a
            path closer to the steepest-descent curve and a smaller delta.
        max_steps: the step budget; default `4 * n_steps`. A walk that has not crossed the
            boundary by then stops there (`BoundaryPath.reached` is False).
        max_step_size: the longest step in input units (L2); default none.
        domain: the box the walk stays in (e.g. `(0.0, 1.0)` for pixels): a `Box` or
            `(lower, upper)`. Without it the path may leave the data domain.
        boundary_tol: bisection tolerance of the last step (input units); default 16 ulps
            of the inputs' largest magnitude (at least 1): forward passes only, and a batch
            then ends where its examples would end alone.
        progress: tqdm bar over the steps.
        jacobian_method, internal_batch_size: see `pullback_spectrum`.

    Returns:
        A `BoundaryPath`.

    Raises:
        TypeError, ValueError: a non-integer or non-positive `n_steps` / `max_steps`, a
            non-positive `max_step_size`.
    """
    n_steps = check_int(n_steps, "n_steps")
    budget = BUDGET_FACTOR * n_steps if max_steps is None else check_int(max_steps, "max_steps")
    longest = math.inf if max_step_size is None else check_positive(max_step_size, "max_step_size")
    formatted = _compat.format_inputs(inputs)
    args = _compat.format_additional_forward_args(additional_forward_args)
    forward, goal, leave = _goals(forward_func, formatted, args, target)
    if boundary_tol is None:
        scale = max(1.0, max(float(x.detach().abs().max()) for x in formatted))
        boundary_tol = BISECTION_ULPS * scale * torch.finfo(formatted[0].dtype).eps
    policy = BoundaryPolicy(
        goal, leave, sum(x[0].numel() for x in formatted), n_steps, longest, boundary_tol
    )
    walk = run_walk(
        forward,
        inputs,
        policy,
        steps=budget,
        step_size=1.0,
        output_metric="target",
        additional_forward_args=args,
        domain=domain,
        save_every=budget,
        seed=0,
        progress=progress,
        jacobian_method=jacobian_method,
        internal_batch_size=internal_batch_size,
    )
    dtype = formatted[0].dtype
    return BoundaryPath(
        attributions=walk.unflatten((-policy.integral).to(dtype)),
        delta=policy.gap.to(dtype),
        reached=torch.tensor([r == policy.stop_reason for r in walk.stop_reason]),
        target=goal,
        walk=walk,
    )


def boundary_scores(
    forward_func: Callable[..., Any],
    inputs: tuple[Tensor, ...],
    target: _compat.TargetType,
    additional_forward_args: Any,
    options: dict[str, Any],
) -> tuple[Tensor, Tensor]:
    """Flat boundary-path relevance (batch, n) and its convergence delta, for `attribute`.

    Warns where a walk stopped before the decision changed: its map is the integral so far.

    Raises:
        TypeError: an option that `boundary_path` does not take.
    """
    unknown = sorted(set(options) - set(BOUNDARY_OPTIONS))
    if unknown:
        raise TypeError(
            f"attribute() got option(s) {unknown} that score='boundary' does not take; it "
            f"accepts {BOUNDARY_OPTIONS} (see captum_simec.attr.boundary.boundary_path)."
        )
    path = boundary_path(
        forward_func,
        inputs,
        target,
        additional_forward_args=additional_forward_args,
        **{"progress": False, **options},
    )
    if not path.reached.all():
        reasons = sorted({r for r in path.walk.stop_reason if r != "class_change"})
        warnings.warn(
            f"score='boundary': {int((~path.reached).sum())} example(s) stopped before their "
            f"decision changed (stop reasons {reasons}); their map is the integral along the "
            "path so far and sums to f_t(x) - f_t(x_stop). Raise `max_steps` (or check "
            "`domain`).",
            stacklevel=4,
        )
    return _compat.flatten_features(_compat.format_inputs(path.attributions)), path.delta
