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

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from captum_simec import _compat
from captum_simec._outputs import OutputSpec, check_output, select_output
from captum_simec.explore._bases import check_basis_size
from captum_simec.explore._directions import NullPolicy
from captum_simec.explore._policy import DirectionPolicy, StepView, WalkContext
from captum_simec.explore._rng import ExampleRNG
from captum_simec.explore._walker import run_walk
from captum_simec.explore.constraints import Box
from captum_simec.explore.corrector import Corrector, gauss_newton_step
from captum_simec.explore.options import DEFAULTS, WalkOptions
from captum_simec.explore.walk import Walk
from captum_simec.geometry import model_outputs
from captum_simec.geometry.spectrum import PullbackSpectrum

__all__ = ["Preimage", "preimage"]


class _LevelHop(DirectionPolicy):
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
    domain: Box | tuple[Any, Any] | None = DEFAULTS.domain,
    corrector: bool | Corrector = True,
    direction: str = "isotropic",
    additional_forward_args: Any = DEFAULTS.additional_forward_args,
    save_every: int = DEFAULTS.save_every,
    seed: int | None = DEFAULTS.seed,
    generator: torch.Generator | None = DEFAULTS.generator,
    progress: bool | None = DEFAULTS.progress,
    jacobian_method: str = DEFAULTS.jacobian_method,
    internal_batch_size: int | None = DEFAULTS.internal_batch_size,
    rtol: float | None = DEFAULTS.rtol,
    atol: float = DEFAULTS.atol,
    output: OutputSpec = None,
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
            internal_batch_size, rtol, atol, output: as in `simec`.

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
    forward_func = select_output(forward_func, output)
    formatted = _compat.format_inputs(inputs)
    args = _compat.format_additional_forward_args(additional_forward_args)
    batch = formatted[0].shape[0]
    first = check_output(model_outputs(forward_func, formatted, args), batch)
    if first.reshape(batch, -1).shape[1] != 1:
        shape = tuple(first.shape)
        raise ValueError(
            f"preimage needs a scalar-output regressor, but forward_func returned {shape} for "
            f"a batch of {batch}: wrap the model to return the one output of interest."
        )
    policy = NullPolicy(direction)
    if direction == "eigenvector":
        check_basis_size(inputs, "direction='eigenvector'")
    base = ExampleRNG(1, seed, generator).seeds[0]
    sweep = WalkOptions.collect(locals(), steps=simec_steps, seed=base, generator=None)
    hop = dataclasses.replace(
        sweep, steps=max_hop_steps, step_size=hop_size, corrector=False, save_every=1
    )
    values = low + (high - low) * (torch.arange(sweeps, dtype=torch.float64) + 0.5) / sweeps
    walks, hops, found = _cover_levels(
        forward_func, inputs, args, (low, high), values, level_tol, policy, (sweep, hop)
    )
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


def _cover_levels(
    forward_func: Callable[..., Any],
    inputs: Tensor | tuple[Tensor, ...],
    args: tuple[Any, ...] | None,
    interval: tuple[float, float],
    values: Tensor,
    level_tol: float,
    policy: NullPolicy,
    options: tuple[WalkOptions, WalkOptions],
) -> tuple[list[Walk | None], list[Walk], list[tuple[Tensor, Tensor, Tensor, Tensor]]]:
    """Hops to each level in turn and sweeps it, from where the last sweep ended.

    Args:
        options: the options of the SiMEC sweeps and of the hops.

    Returns:
        The sweeps, the hops, and per level the points found in `interval` with their
        outputs, level index and start example.
    """
    sweep, hop = options
    batch = _compat.format_inputs(inputs)[0].shape[0]
    alive = torch.arange(batch)
    current = inputs
    walks: list[Walk | None] = []
    hops: list[Walk] = []
    found: list[tuple[Tensor, Tensor, Tensor, Tensor]] = []
    for index, level in enumerate(values.tolist()):
        subset_args = _compat.index_additional_forward_args(args, alive, batch)
        hop_walk = run_walk(
            forward_func,
            current,
            _LevelHop(level, level_tol),
            dataclasses.replace(hop, additional_forward_args=subset_args),
        )
        hops.append(hop_walk)
        reached = torch.tensor([r == "level_reached" for r in hop_walk.stop_reason])
        if not reached.any():
            walks.append(None)
            break
        alive = alive[reached]
        options = dataclasses.replace(
            sweep,
            additional_forward_args=_compat.index_additional_forward_args(args, alive, batch),
            seed=sweep.seed + index * batch,
        )
        walk = run_walk(
            forward_func, _take(hop_walk.final, reached.nonzero().flatten()), policy, options
        )
        walks.append(walk)
        found.append(_inside(walk, interval, index, alive))
        current = walk.final
    return walks, hops, found


def _inside(
    walk: Walk, interval: tuple[float, float], index: int, alive: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The saved points of `walk` with outputs in `interval`, their outputs, level index
    `index` and start example (from `alive`)."""
    low, high = interval
    outputs = walk.outputs[..., 0]
    taken = walk.saved_steps.unsqueeze(1) <= walk.stopped_at.unsqueeze(0)
    keep = taken & (outputs >= low).cpu() & (outputs <= high).cpu()
    on_device = keep.to(outputs.device)
    return (
        walk.points_flat[on_device],
        outputs[on_device],
        torch.full((int(keep.sum()),), index, dtype=torch.long),
        alive.unsqueeze(0).expand_as(keep)[keep],
    )
