"""The boundary path: the target's gradient integrated along the SiMExp walk out of the class.

From an example `x`, a SiMExp walk goes down the margin `m = f_t - max_{j != t} f_j` of the
target `t` (the range direction of the ``"margin"`` output metric), inside the domain box,
until the predicted class changes; its last step is bisected so that the end point `x_end`
lies just across the decision boundary. Per feature,

    a_i = int_{x_end}^{x} df_t/dx_i dgamma_i,    sum_i a_i = f_t(x) - f_t(x_end)   (completeness).

It is Integrated Gradients with two changes: the path follows the geometry instead of a
straight line, and the baseline is the nearest decision change instead of a chosen image
(``SiMECAttribution.attribute(score="boundary")`` returns `a`). Where `t` is not the
predicted class, the walk goes up the margin of `t` until `t` is predicted, and the map
(summing to `f_t(x) - f_t(x_end) < 0`) says what holds `t` back.

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
known exactly; where it exceeds the segment's share of `3 %` of the start margin (a long step
over a curved stretch, such as a first step that crosses the boundary where the margin
steepens), the same straight segment is integrated again by the composite trapezoid rule on
2, 4, ... 64 pieces, one Jacobian per new point. What remains is summed into the convergence
delta: O(h^3) per segment on smooth models (the delta falls as `n_steps^-2`), zero on
linear ones, larger on ReLU networks whose gradient jumps inside a segment.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from captum_simec import _compat
from captum_simec._outputs import OutputSpec, select_output
from captum_simec._validation import check_int, check_positive
from captum_simec.explore._boundary import BoundaryPolicy
from captum_simec.explore._walker import run_walk
from captum_simec.explore.constraints import Box
from captum_simec.explore.options import DEFAULTS, WalkOptions
from captum_simec.explore.walk import Walk

__all__ = ["BoundaryPath", "boundary_path"]

#: the default bisection tolerance, in ulps of the inputs' largest magnitude.
BISECTION_ULPS = 16
#: steps the walk plans by default.
N_STEPS = 32
#: the step budget by default, in units of `n_steps`.
BUDGET_FACTOR = 4


@dataclass
class BoundaryPath:
    """The target's gradient integrated along the walk out of the class, and the walk.

    Attributes:
        attributions: `a_i = int_{x_end}^{x} df_t/dx_i dgamma_i` (input structure).
        delta: convergence delta `sum_i a_i - (f_t(x) - f_t(x_end))` per example (batch,):
            the quadrature error.
        reached: whether the walk crossed the decision boundary (batch,); where it did not,
            `x_end` is where the step budget ran out.
        target: flat target index `t` per example (batch,).
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


def boundary_path(
    forward_func: Callable[..., Any],
    inputs: Tensor | tuple[Tensor, ...],
    target: _compat.TargetType = None,
    *,
    additional_forward_args: Any = DEFAULTS.additional_forward_args,
    n_steps: int = N_STEPS,
    max_steps: int | None = None,
    max_step_size: float | None = None,
    domain: Box | tuple[Any, Any] | None = DEFAULTS.domain,
    boundary_tol: float | None = None,
    progress: bool | None = DEFAULTS.progress,
    jacobian_method: str = DEFAULTS.jacobian_method,
    internal_batch_size: int | None = DEFAULTS.internal_batch_size,
    free: Tensor | tuple[Tensor, ...] | None = DEFAULTS.free,
    output: OutputSpec = None,
) -> BoundaryPath:
    """The target's gradient integrated along the SiMExp walk out of the class (module doc).

    Args:
        forward_func: a classifier (eval mode) with at least two outputs per example,
            returning logits or log-probabilities.
        inputs: a tensor or tuple of tensors, batch first.
        target: Captum target; None uses the predicted class. For (T, V) sequence outputs
            `(t, v)`: the margin and the decision are those at position t.
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
        progress: tqdm bar over the steps (None: only on a terminal).
        jacobian_method, internal_batch_size: see `captum_simec.geometry.pullback_spectrum`.
        free: which coordinates may move (the others stay fixed and score 0, e.g. padded
            tokens), as in `simec`. None: all.
        output: the tensor to explain when the model returns a ModelOutput, dict or tuple:
            a key or attribute (``"logits"``), a position, or a callable of the output.

    Returns:
        A `BoundaryPath`.

    Raises:
        TypeError, ValueError: a non-integer or non-positive `n_steps` / `max_steps`, a
            non-positive `max_step_size` or `boundary_tol`, a model with one output.
    """
    n_steps = check_int(n_steps, "n_steps")
    budget = BUDGET_FACTOR * n_steps if max_steps is None else check_int(max_steps, "max_steps")
    longest = math.inf if max_step_size is None else check_positive(max_step_size, "max_step_size")
    formatted = _compat.format_inputs(inputs)
    if boundary_tol is None:
        scale = max(1.0, max(float(x.detach().abs().max()) for x in formatted))
        boundary_tol = BISECTION_ULPS * scale * torch.finfo(formatted[0].dtype).eps
    boundary_tol = check_positive(boundary_tol, "boundary_tol")
    policy = BoundaryPolicy(sum(x[0].numel() for x in formatted), n_steps, longest, boundary_tol)
    options = WalkOptions.collect(
        locals(), steps=budget, step_size=1.0, output_metric="target", save_every=budget, seed=0
    )
    walk = run_walk(select_output(forward_func, output), inputs, policy, options)
    dtype = formatted[0].dtype
    return BoundaryPath(
        attributions=walk.unflatten((-policy.integral).to(dtype)),
        delta=policy.gap.to(dtype),
        reached=torch.tensor([r == policy.stop_reason for r in walk.stop_reason]),
        target=policy.goal,
        walk=walk,
    )
