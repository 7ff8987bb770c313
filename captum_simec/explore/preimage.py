"""Preimage of an output interval for a scalar regressor: `{x : low <= f(x) <= high}`.

"Which operating conditions give between 440 and 450 MW?" The interval is sliced into
`sweeps` levels `y_s = low + (s + 1/2) (high - low) / sweeps`. From the start points the
walk alternates:

- a hop to the next level along the range space: Gauss-Newton steps
  `x <- x - A^+ (f(x) - y_s)` (for a scalar output the range is the gradient direction),
  each at most `hop_size` long, until `|f(x) - y_s| <= level_tol`;
- a SiMEC sweep of `simec_steps` steps that stays on that level (corrector on by default).

Every saved point of the sweeps whose output lies in `[low, high]` is returned, grouped by
level. An example whose hop fails to reach a level (e.g. blocked by the box) drops out.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from captum_simec import _compat
from captum_simec.explore.constraints import Box
from captum_simec.explore.corrector import Corrector, gauss_newton_step
from captum_simec.explore.simec import simec
from captum_simec.explore.walk import (
    DirectionPolicy,
    ExampleRNG,
    StepView,
    Walk,
    WalkContext,
    run_walk,
)
from captum_simec.geometry.spectrum import PullbackSpectrum

__all__ = ["LevelHop", "Preimage", "preimage"]


class LevelHop(DirectionPolicy):
    """Gauss-Newton steps towards the output level `level`, each at most `step_size` long."""

    kind = "hop"
    stop_reason = "level_reached"

    def __init__(self, level: float, tolerance: float) -> None:
        self.level = level
        self.tolerance = tolerance

    def propose(self, spectrum: PullbackSpectrum, view: StepView, context: WalkContext) -> Tensor:
        update = gauss_newton_step(spectrum, spectrum.outputs - self.level)
        length = update.norm(dim=1, keepdim=True)
        return update * (context.step_size / length.clamp_min(context.step_size))

    def stop(self, outputs: Tensor, rows: Tensor, context: WalkContext) -> Tensor:
        return (outputs[:, 0] - self.level).abs() <= self.tolerance


@dataclass
class Preimage:
    """Points of `{x : low <= f(x) <= high}` found by alternating hops and SiMEC sweeps.

    Attributes:
        points: the points (N, *input_shape), or a tuple of such tensors for tuple inputs.
        outputs: `f` at the points (N,).
        levels: the level each point was found on (N,).
        level_index: index of that level in `level_values` (N,).
        example: the start example each point descends from (N,).
        level_values: the levels `y_s` (sweeps,).
        low, high: the interval.
        walks: the SiMEC sweep of each level visited, in order (None for a level that no
            example reached; the search ends there).
        hops: the hop walk towards each level visited.
    """

    points: Tensor | tuple[Tensor, ...]
    outputs: Tensor
    levels: Tensor
    level_index: Tensor
    example: Tensor
    level_values: Tensor
    low: float
    high: float
    walks: list[Walk | None]
    hops: list[Walk]

    def at_level(self, index: int) -> Tensor | tuple[Tensor, ...]:
        """The points found on level `index`."""
        keep = self.level_index == index
        if isinstance(self.points, tuple):
            return tuple(part[keep] for part in self.points)
        return self.points[keep]


def _take(inputs: Tensor | tuple[Tensor, ...], index: Tensor) -> Tensor | tuple[Tensor, ...]:
    if isinstance(inputs, tuple):
        return tuple(part[index.to(part.device)] for part in inputs)
    return inputs[index.to(inputs.device)]


def preimage(
    forward_func: Callable[..., Any],
    inputs: Tensor | tuple[Tensor, ...],
    low: float,
    high: float,
    *,
    sweeps: int = 5,
    simec_steps: int = 200,
    step_size: float = 0.01,
    hop_size: float = 0.05,
    max_hop_steps: int = 200,
    level_tol: float | None = None,
    domain: Box | tuple[Any, Any] | None = None,
    corrector: bool | Corrector = True,
    direction: str = "isotropic",
    additional_forward_args: Any = None,
    save_every: int = 1,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    progress: bool | None = None,
    jacobian_method: str = "auto",
    internal_batch_size: int | None = None,
    rtol: float | None = None,
    atol: float = 0.0,
) -> Preimage:
    """Covers `{x : low <= f(x) <= high}` for a scalar-output model, level by level.

    Args:
        forward_func: a regressor with one output per example (shape (batch,) or (batch, 1)).
        inputs: start points, batch first (several starts cover more of the preimage).
        low, high: the output interval, `low < high`.
        sweeps: number of levels, evenly spaced inside the interval.
        simec_steps: SiMEC steps per level.
        step_size: SiMEC step length.
        hop_size: longest Gauss-Newton step of a hop between levels.
        max_hop_steps: most steps per hop.
        level_tol: how close a hop must get to its level; default `1e-3 (high - low) / sweeps`.
        domain: box the points must stay in (see `simec`).
        corrector: SiMEC corrector (default on: points then stay on their level).
        direction: SiMEC direction ("isotropic" or "eigenvector").
        additional_forward_args, save_every, seed, generator, progress, jacobian_method,
            internal_batch_size, rtol, atol: as in `simec`.

    Returns:
        A `Preimage`; all its points have outputs in `[low, high]`.

    Raises:
        ValueError: `low >= high`, non-finite bounds, `sweeps < 1`, a model with more than
            one output per example.
    """
    if not all(isinstance(v, float | int) and math.isfinite(v) for v in (low, high)):
        raise ValueError(f"`low` and `high` must be finite numbers, got {low!r}, {high!r}.")
    if not low < high:
        raise ValueError(f"`low` must be below `high`, got low={low}, high={high}.")
    if isinstance(sweeps, bool) or not isinstance(sweeps, int) or sweeps < 1:
        raise ValueError(f"`sweeps` must be a positive int, got {sweeps!r}.")
    if level_tol is None:
        level_tol = 1e-3 * (high - low) / sweeps
    elif not (isinstance(level_tol, float | int) and level_tol > 0):
        raise ValueError(f"`level_tol` must be a positive number, got {level_tol!r}.")
    formatted = _compat.format_inputs(inputs)
    args = _compat.format_additional_forward_args(additional_forward_args)
    batch = formatted[0].shape[0]
    with torch.no_grad():
        first = forward_func(*formatted, *(args or ()))
    if not isinstance(first, Tensor) or first.reshape(batch, -1).shape[1] != 1:
        shape = tuple(first.shape) if isinstance(first, Tensor) else type(first).__name__
        raise ValueError(
            f"preimage needs a scalar-output regressor, but forward_func returned {shape} for "
            f"a batch of {batch}: wrap the model to return the one output of interest."
        )
    base = ExampleRNG(1, seed, generator).seeds[0]
    common = {
        "domain": domain,
        "progress": progress,
        "jacobian_method": jacobian_method,
        "internal_batch_size": internal_batch_size,
        "rtol": rtol,
        "atol": atol,
    }
    values = low + (high - low) * (torch.arange(sweeps, dtype=torch.float64) + 0.5) / sweeps
    alive = torch.arange(batch)
    current: Tensor | tuple[Tensor, ...] = inputs
    found: list[tuple[Tensor, Tensor, Tensor, Tensor]] = []
    walks: list[Walk | None] = []
    hops: list[Walk] = []
    for index, level in enumerate(values.tolist()):
        subset_args = _compat.index_additional_forward_args(args, alive, batch)
        hop = run_walk(
            forward_func,
            current,
            LevelHop(level, level_tol),
            steps=max_hop_steps,
            step_size=hop_size,
            additional_forward_args=subset_args,
            seed=base,
            **common,
        )
        hops.append(hop)
        reached = torch.tensor([r == "level_reached" for r in hop.stop_reason])
        if not reached.any():
            walks.append(None)
            break
        alive = alive[reached]
        walk = simec(
            forward_func,
            _take(hop.final, reached.nonzero().flatten()),
            steps=simec_steps,
            step_size=step_size,
            additional_forward_args=_compat.index_additional_forward_args(args, alive, batch),
            direction=direction,
            corrector=corrector,
            save_every=save_every,
            seed=base + index * batch,
            **common,
        )
        walks.append(walk)
        outputs = walk.outputs[..., 0]
        taken = walk.saved_steps.unsqueeze(1) <= walk.stopped_at.unsqueeze(0)
        keep = taken & (outputs >= low).cpu() & (outputs <= high).cpu()
        found.append(
            (
                walk.points_flat[keep.to(outputs.device)],
                outputs[keep.to(outputs.device)],
                torch.full((int(keep.sum()),), index, dtype=torch.long),
                alive.unsqueeze(0).expand_as(keep)[keep],
            )
        )
        current = walk.final
    if found:
        flat, outputs, level_index, example = (torch.cat(p) for p in zip(*found, strict=True))
    else:
        flat, outputs = hops[0].points_flat[0, :0], hops[0].outputs[0, :0, 0]
        level_index = example = torch.zeros(0, dtype=torch.long)
    return Preimage(
        points=hops[0].unflatten(flat),
        outputs=outputs,
        levels=values[level_index],
        level_index=level_index,
        example=example,
        level_values=values,
        low=float(low),
        high=float(high),
        walks=walks,
        hops=hops,
    )
