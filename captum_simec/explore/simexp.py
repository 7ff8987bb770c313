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
from captum_simec._outputs import OutputSpec, select_output
from captum_simec.explore._bases import parity_domain
from captum_simec.explore._directions import MarginPolicy, ParityRangePolicy, RangePolicy
from captum_simec.explore._policy import DirectionPolicy
from captum_simec.explore._walker import run_walk
from captum_simec.explore.constraints import Box
from captum_simec.explore.options import DEFAULTS, WalkOptions
from captum_simec.explore.walk import Walk
from captum_simec.geometry.metrics import MetricSpec

__all__ = ["MODES", "simexp"]

MODES = ("random", "weighted", "directed", "leave_class", "to_class")


def simexp(
    forward_func: Callable[..., Any],
    inputs: Tensor | tuple[Tensor, ...],
    *,
    steps: int = DEFAULTS.steps,
    step_size: float = DEFAULTS.step_size,
    mode: str = "random",
    output_metric: MetricSpec = DEFAULTS.output_metric,
    target: _compat.TargetType = DEFAULTS.target,
    target_class: _compat.TargetType = None,
    stop_on_class_change: bool | None = None,
    refine_boundary: bool = True,
    boundary_tol: float | None = None,
    max_output_change: float | None = DEFAULTS.max_drift,
    additional_forward_args: Any = DEFAULTS.additional_forward_args,
    domain: Box | tuple[Any, Any] | None = DEFAULTS.domain,
    on_rank_change: str = DEFAULTS.on_rank_change,
    save_every: int = DEFAULTS.save_every,
    seed: int | Sequence[int] | None = DEFAULTS.seed,
    generator: torch.Generator | None = DEFAULTS.generator,
    progress: bool | None = DEFAULTS.progress,
    jacobian_method: str = DEFAULTS.jacobian_method,
    internal_batch_size: int | None = DEFAULTS.internal_batch_size,
    rtol: float | None = DEFAULTS.rtol,
    atol: float = DEFAULTS.atol,
    free: Tensor | tuple[Tensor, ...] | None = DEFAULTS.free,
    output: OutputSpec = None,
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
            progress, jacobian_method, internal_batch_size, rtol, atol, free, output: as in
            `simec`.
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
    if parity and (mode != "random" or free is not None):
        raise ValueError(
            f"parity=True reproduces the papers' random walk of every coordinate; mode={mode!r}"
            f" with free={'None' if free is None else 'a mask'} has no parity version: use "
            "mode='random' and free=None (or drop parity)."
        )
    tolerance = _boundary_tolerance(inputs, step_size, boundary_tol)
    tolerance = tolerance if refine_boundary else None
    if parity:
        policy: DirectionPolicy = ParityRangePolicy(parity_split, stop_on_class_change, tolerance)
    elif mode in ("leave_class", "to_class"):
        policy = MarginPolicy(mode, target_class, tolerance, stop_on_class_change)
    else:
        policy = RangePolicy(mode, stop_on_class_change, tolerance)
    options = WalkOptions.collect(
        locals(), domain=box, max_drift=max_output_change, drift_reason="max_output_change"
    )
    return run_walk(select_output(forward_func, output), inputs, policy, options)


def _boundary_tolerance(
    inputs: Tensor | tuple[Tensor, ...], step_size: Any, boundary_tol: float | None
) -> float | None:
    """`boundary_tol`, checked, or its default `sqrt(eps(dtype)) * step_size`.

    Raises:
        ValueError: a `boundary_tol` that is not a positive number.
    """
    if boundary_tol is not None:
        if not (isinstance(boundary_tol, float | int) and boundary_tol > 0):
            raise ValueError(f"`boundary_tol` must be a positive number, got {boundary_tol!r}.")
        return boundary_tol
    eps = torch.finfo(_compat.format_inputs(inputs)[0].dtype).eps
    return step_size * eps**0.5 if isinstance(step_size, float | int) else None
