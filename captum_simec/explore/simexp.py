"""SiMExp: walks across equivalence classes, along the range space `R(x)` (method.md §3).

Modes:

- ``"random"``: a Gaussian combination of the range basis `v_1..v_r` (isotropic in `R`);
  ``"weighted"``: the same with coefficients scaled by `s_k` (favours fast directions).
- ``"directed"``: the top singular vector `v_1`, oriented so that the output moves away from
  its start value (`(A v_1) . C (f(x) - f(x_0)) > 0`); when that is undecided (the first
  step) the sign of the previous step is kept, and the first sign comes from the seed.
- ``"leave_class"``: minus the gradient of the margin `f_t - max_{j != t} f_j` of `target`
  (default: the class predicted at the start), the runner-up re-chosen at every step; the
  walk stops when the predicted class changes. This is the top non-null direction of the
  "margin" output metric.
- ``"to_class"``: plus the gradient of the margin of `target_class` over the best other
  class; stops when `target_class` is predicted.

With ``refine_boundary`` the step that changes the class is bisected (forward passes only)
so that the final point lies just across the decision boundary, within `boundary_tol`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from captum_simec import _compat
from captum_simec.explore.constraints import Box
from captum_simec.explore.simec import dense_eigenbasis, parity_domain, pick
from captum_simec.explore.walk import (
    DirectionPolicy,
    ExampleRNG,
    StepView,
    Walk,
    WalkContext,
    run_walk,
)
from captum_simec.geometry.metrics import MarginMetric, OutputMetric
from captum_simec.geometry.spectrum import PullbackSpectrum, unit

__all__ = ["MODES", "simexp"]

MODES = ("random", "weighted", "directed", "leave_class", "to_class")
_UNDECIDED_COSINE = 1e-3


class _ClassChange(DirectionPolicy):
    """Stops when the predicted class leaves the start class (if asked)."""

    stop_reason = "class_change"

    def __init__(self, stop_on_class_change: bool, boundary_tol: float | None) -> None:
        self.stop_on_class_change = stop_on_class_change
        self.boundary_tol = boundary_tol if stop_on_class_change else None

    def steering(self, context: WalkContext) -> tuple[OutputMetric, Tensor | None]:
        return context.metric, context.target

    def stop(self, outputs: Tensor, rows: Tensor, context: WalkContext) -> Tensor | None:
        if not self.stop_on_class_change:
            return None
        return outputs.argmax(dim=1) != context.start_class[rows]


class RangePolicy(_ClassChange):
    """ "random", "weighted" and "directed" steps in the range of the output metric."""

    def __init__(self, mode: str, stop_on_class_change: bool, boundary_tol: float | None) -> None:
        super().__init__(stop_on_class_change, boundary_tol)
        self.mode = mode
        self.kind = f"simexp/{mode}"

    def noise(
        self, rng: ExampleRNG, rows: Tensor, spectrum: PullbackSpectrum, context: WalkContext
    ) -> Tensor:
        if self.mode == "directed":
            return rng.uniform(rows, 1, spectrum.factor)
        return rng.normal(rows, spectrum.singular_values.shape[1], spectrum.factor)

    def propose(self, spectrum: PullbackSpectrum, view: StepView, context: WalkContext) -> Tensor:
        right = spectrum.right_vectors
        if self.mode != "directed":
            weights = view.noise
            if self.mode == "weighted":
                weights = weights * spectrum.singular_values.to(weights.dtype)
            return unit((right @ weights.unsqueeze(2)).squeeze(2)) * context.step_size
        top = right[:, :, 0]
        target = None if context.target is None else context.target[view.rows]
        rows = context.metric.cotangents(spectrum.outputs, target).to(spectrum.factor.dtype)
        change = spectrum.outputs - context.start_outputs[view.rows]
        residual = (rows @ change.unsqueeze(2)).squeeze(2)
        velocity = (spectrum.factor @ top.unsqueeze(2)).squeeze(2)
        along = (velocity * residual).sum(dim=1)
        decided = along.abs() > _UNDECIDED_COSINE * velocity.norm(dim=1) * residual.norm(dim=1)
        continuing = (top * view.previous).sum(dim=1)
        seeded = torch.where(view.noise[:, 0] < 0.5, 1.0, -1.0).to(top.dtype)
        sign = torch.where(
            decided & (along != 0),
            along.sign(),
            torch.where(continuing != 0, continuing.sign(), seeded),
        )
        return top * sign.unsqueeze(1) * context.step_size


class MarginPolicy(DirectionPolicy):
    """Down the margin of `target` ("leave_class") or up the margin of a goal ("to_class")."""

    def __init__(
        self, mode: str, goal: _compat.TargetType, boundary_tol: float | None, stops: bool
    ) -> None:
        self.mode = mode
        self.kind = f"simexp/{mode}"
        self.goal_spec = goal
        self.goal: Tensor | None = None
        self.stops = stops
        self.boundary_tol = boundary_tol if stops else None
        self.stop_reason = "class_change" if mode == "leave_class" else "class_reached"

    def setup(self, context: WalkContext) -> None:
        outputs = context.start_outputs
        if outputs.shape[1] < 2:
            raise ValueError(
                f"mode={self.mode!r} needs a classifier with at least two outputs per example; "
                f"this model has {outputs.shape[1]}."
            )
        if self.mode == "leave_class":
            self.goal = context.start_class if context.target is None else context.target
        else:
            if self.goal_spec is None:
                raise ValueError(
                    "mode='to_class' needs `target_class` (the class to reach): an int, or one "
                    "per example as a list or tensor."
                )
            self.goal = _compat.target_to_flat_indices(
                self.goal_spec, outputs.shape, outputs.device
            )
        if context.target is None:
            context.target = self.goal

    def steering(self, context: WalkContext) -> tuple[OutputMetric, Tensor | None]:
        return MarginMetric(), self.goal

    def propose(self, spectrum: PullbackSpectrum, view: StepView, context: WalkContext) -> Tensor:
        gradient = unit(spectrum.factor[:, 0, :])
        sign = -1.0 if self.mode == "leave_class" else 1.0
        return sign * gradient * context.step_size

    def stop(self, outputs: Tensor, rows: Tensor, context: WalkContext) -> Tensor | None:
        if not self.stops:
            return None
        predicted = outputs.argmax(dim=1)
        if self.mode == "leave_class":
            return predicted != context.start_class[rows]
        return predicted == self.goal[rows]


class ParityRangePolicy(_ClassChange):
    """The papers' MNIST "SiMExp": a null and a non-null eigenvector step of `delta/2` each."""

    kind = "simexp/parity"

    def __init__(
        self, split: int | None, stop_on_class_change: bool, boundary_tol: float | None
    ) -> None:
        super().__init__(stop_on_class_change, boundary_tol)
        self.split = split

    def noise(
        self, rng: ExampleRNG, rows: Tensor, spectrum: PullbackSpectrum, context: WalkContext
    ) -> Tensor:
        return rng.uniform(rows, 4, spectrum.factor)

    def propose(self, spectrum: PullbackSpectrum, view: StepView, context: WalkContext) -> Tensor:
        steps = torch.zeros_like(spectrum.factor[:, 0, :])
        n = spectrum.num_features
        for i in range(spectrum.batch_size):
            vectors, null = dense_eigenbasis(spectrum, i, self.split)
            draws = view.noise[i]
            for offset, count, draw in ((0, null, draws[:2]), (null, n - null, draws[2:])):
                if count > 0:
                    sign = 1.0 if draw[1].item() < 0.5 else -1.0
                    steps[i] += sign * vectors[:, offset + pick(draw[0], count)]
        return steps * (context.step_size / 2)


def simexp(
    forward_func: Callable[..., Any],
    inputs: Tensor | tuple[Tensor, ...],
    *,
    steps: int = 1000,
    step_size: float = 0.05,
    mode: str = "random",
    output_metric: str | OutputMetric | Tensor | Callable[[Tensor], Tensor] = "euclidean",
    target: _compat.TargetType = None,
    target_class: _compat.TargetType = None,
    stop_on_class_change: bool | None = None,
    refine_boundary: bool = True,
    boundary_tol: float | None = None,
    max_output_change: float | None = None,
    additional_forward_args: Any = None,
    domain: Box | tuple[Any, Any] | None = None,
    on_rank_change: str = "continue",
    save_every: int = 1,
    seed: int | Sequence[int] | None = None,
    generator: torch.Generator | None = None,
    progress: bool | None = None,
    jacobian_method: str = "auto",
    internal_batch_size: int | None = None,
    rtol: float | None = None,
    atol: float = 0.0,
    parity: bool = False,
    parity_split: int | None = None,
) -> Walk:
    """Walk across equivalence classes along the range space of the pullback metric (SiMExp).

    Each step has length `step_size` along a direction of `R(x) = span(v_1..v_r)` chosen by
    `mode` (see the module docstring). "random", "weighted" and "directed" use the spectrum
    of `output_metric` at the current point; "leave_class" and "to_class" use the margin
    metric of their class. Output changes are measured with `output_metric` frozen at the
    start (`Walk.drift`); pseudolength and energy in the metric that steers the walk.

    Args:
        forward_func: the model (in eval mode) or a function of the inputs.
        inputs: start points, a tensor or tuple of tensors, batch first.
        steps: most steps per example.
        step_size: step length in input units.
        mode: "random", "weighted", "directed", "leave_class" or "to_class".
        output_metric: output metric (see `pullback_spectrum`).
        target: Captum target for `output_metric`; for "leave_class", the class whose margin
            is lowered (default: the class predicted at the start).
        target_class: for "to_class", the class to reach (int, list or tensor).
        stop_on_class_change: stop when the predicted class changes (for "to_class": when
            `target_class` is predicted). Default: True for "leave_class" and "to_class",
            False otherwise.
        refine_boundary: bisect the step that changed the class so the final point sits just
            across the decision boundary.
        boundary_tol: bisection tolerance in input units; default `sqrt(eps) * step_size`
            in the inputs' dtype (1.5e-8 step_size in float64, 3.5e-4 in float32).
        max_output_change: stop an example once `||C (f(x) - f(x_0))||` exceeds this
            (reason "max_output_change").
        additional_forward_args, domain, on_rank_change, save_every, seed, generator,
            progress, jacobian_method, internal_batch_size, rtol, atol: as in `simec`.
        parity: the papers' MNIST walk instead (not recommended; mode must be "random"): per
            step one random null and one random non-null eigenvector of the dense metric,
            each with a random sign and length `step_size / 2`, the box enforced by clamping.
        parity_split: with `parity`, the number of eigenvectors (ascending eigenvalue)
            treated as null (the authors: 774 of 784); default: split at the rank.

    Returns:
        A `Walk`; stop reasons "steps", "class_change", "class_reached",
        "max_output_change", "rank_change", "no_direction" (rank 0) or "domain".

    Raises:
        ValueError: unknown `mode`, missing `target_class` for "to_class", a model with one
            output for the class modes, bad step options, a start point outside `domain`.
    """
    if mode not in MODES:
        raise ValueError(f"mode={mode!r}; choose one of {MODES}.")
    if target_class is not None and mode != "to_class":
        raise ValueError("`target_class` only applies to mode='to_class'.")
    if stop_on_class_change is None:
        stop_on_class_change = mode in ("leave_class", "to_class")
    if not isinstance(stop_on_class_change, bool) or not isinstance(refine_boundary, bool):
        raise TypeError("`stop_on_class_change` and `refine_boundary` must be bools.")
    box = parity_domain(inputs, domain, parity, parity_split)
    if parity and mode != "random":
        raise ValueError(
            f"parity=True reproduces the papers' random walk; mode={mode!r} has no parity "
            "version: use mode='random' (or drop parity)."
        )
    if boundary_tol is None:
        eps = torch.finfo(_compat.format_inputs(inputs)[0].dtype).eps
        boundary_tol = step_size * eps**0.5 if isinstance(step_size, float | int) else None
    elif not (isinstance(boundary_tol, float | int) and boundary_tol > 0):
        raise ValueError(f"`boundary_tol` must be a positive number, got {boundary_tol!r}.")
    tolerance = boundary_tol if refine_boundary else None
    if parity:
        policy: DirectionPolicy = ParityRangePolicy(parity_split, stop_on_class_change, tolerance)
    elif mode in ("leave_class", "to_class"):
        policy = MarginPolicy(mode, target_class, tolerance, stop_on_class_change)
    else:
        policy = RangePolicy(mode, stop_on_class_change, tolerance)
    return run_walk(
        forward_func,
        inputs,
        policy,
        steps=steps,
        step_size=step_size,
        output_metric=output_metric,
        target=target,
        additional_forward_args=additional_forward_args,
        domain=box,
        on_rank_change=on_rank_change,
        max_drift=max_output_change,
        drift_reason="max_output_change",
        save_every=save_every,
        seed=seed,
        generator=generator,
        progress=progress,
        jacobian_method=jacobian_method,
        internal_batch_size=internal_batch_size,
        rtol=rtol,
        atol=atol,
    )
