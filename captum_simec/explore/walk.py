"""The loop shared by SiMEC and SiMExp walks, their per-example randomness, and the `Walk` result.

A walk repeats: take the spectrum of the pullback metric at `x_k` (one batched Jacobian),
ask a direction policy for a step (inside the class for SiMEC, across classes for SiMExp),
keep it in the domain, optionally correct it, record, and check the stopping rules. The
examples of a batch walk independently; an example that stops stays frozen at its final
point while the others go on (its later Jacobians are not computed).

Randomness: example `i` of a batch walked with `seed=s` uses its own generator seeded with
`s + i`, so it walks exactly as it would alone with `seed=s + i` (up to floating-point
rounding of batched kernels). Without a seed, the base seed is drawn from `generator` (or
from torch's global generator), and `Walk.seeds` tells how to replay each example.

Records: per-point traces have one row per point `x_0, ..., x_T` (row 0 is the start; rows
after an example stopped hold NaN, or -1 for the rank). Pseudolength and energy are
accumulated per step from the factor `A_k` at the step's start point:
`sum_k ||A_k (x_{k+1} - x_k)||` approximates `int sqrt(g(gamma', gamma'))`, and
`sum_k ||A_k (x_{k+1} - x_k)||^2 / step_size` approximates `int g(gamma', gamma') dt` with
the curve parameter advancing by `step_size` per step.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from captum_simec import _compat
from captum_simec._runtime import show_progress
from captum_simec.explore.constraints import BoundBox, Box, as_box
from captum_simec.explore.corrector import Corrector, as_corrector, correct
from captum_simec.geometry.jacobian import check_eval_mode
from captum_simec.geometry.metrics import (
    FixedMetric,
    OutputMetric,
    as_probabilities,
    resolve_output_metric,
)
from captum_simec.geometry.spectrum import PullbackSpectrum, pullback_spectrum, unit

__all__ = [
    "ON_RANK_CHANGE",
    "DirectionPolicy",
    "ExampleRNG",
    "RankChangeWarning",
    "StepView",
    "Walk",
    "WalkContext",
    "run_walk",
]

ON_RANK_CHANGE = ("continue", "warn", "stop")
_SEED_RANGE = 2**62


class RankChangeWarning(UserWarning):
    """The rank of the pullback metric changed along a walk (a region boundary was crossed)."""


# ----------------------------------------------------------------------------- randomness
def _is_seed(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class ExampleRNG:
    """One `torch.Generator` per example: seeded `seed + i` for example `i`, or `seed[i]`.

    Args:
        batch: number of examples.
        seed: base seed (int >= 0), or one seed per example (a sequence of ints >= 0, e.g.
            the same seed for all so that each example walks as it would alone with it);
            exclusive with `generator`.
        generator: draws the base seed when `seed` is None (torch's global generator when
            both are None).
    """

    def __init__(
        self, batch: int, seed: int | Sequence[int] | None, generator: torch.Generator | None
    ) -> None:
        if seed is not None and generator is not None:
            raise ValueError("Pass either `seed` or `generator`, not both.")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(
                f"`generator` must be a torch.Generator, got {type(generator).__name__}."
            )
        if seed is None:
            seed = int(torch.randint(_SEED_RANGE, (1,), generator=generator).item())
        seeds = [seed + i for i in range(batch)] if _is_seed(seed) else seed
        if not isinstance(seeds, list | tuple) or len(seeds) != batch:
            seeds = [None]
        if not all(_is_seed(s) for s in seeds):
            raise ValueError(
                f"`seed` must be a non-negative int or a sequence of {batch} non-negative ints "
                f"(one per example), got {seed!r}."
            )
        self.seeds = list(seeds)
        self.generators = [torch.Generator().manual_seed(s) for s in self.seeds]

    def _draw(
        self, sampler: Callable[..., Tensor], rows: Tensor, size: int, like: Tensor
    ) -> Tensor:
        draws = [
            sampler(size, generator=self.generators[i], dtype=like.dtype) for i in rows.tolist()
        ]
        return torch.stack(draws).to(like.device)

    def normal(self, rows: Tensor, size: int, like: Tensor) -> Tensor:
        """Standard normal draws (len(rows), size) in `like`'s dtype and device."""
        return self._draw(torch.randn, rows, size, like)

    def uniform(self, rows: Tensor, size: int, like: Tensor) -> Tensor:
        """Uniform [0, 1) draws (len(rows), size) in `like`'s dtype and device."""
        return self._draw(torch.rand, rows, size, like)


# ----------------------------------------------------------------------------- policies
@dataclass
class WalkContext:
    """What a direction policy knows about the whole batch at the start of the walk.

    Attributes:
        start_outputs: flattened outputs at the start (batch, m).
        start_class: argmax of the start outputs (batch,).
        target: flat target index per example (Captum target, or a policy's default).
        metric: the output metric, evaluated at the current point ("live").
        step_size: the nominal step length.
        frozen_metric: the output metric's factor fixed at the start point (set after the
            policy's `setup`, with its `target`).
    """

    start_outputs: Tensor
    start_class: Tensor
    target: Tensor | None
    metric: OutputMetric
    step_size: float
    frozen_metric: FixedMetric | None = None


@dataclass
class StepView:
    """The active examples at one step: batch indices, last unit directions, random draws.

    The draws are made once per step (`DirectionPolicy.noise`), so that a re-proposal from a
    restricted spectrum reuses them.
    """

    rows: Tensor
    previous: Tensor
    noise: Tensor | None = None


class DirectionPolicy:
    """How a walk chooses its steps; SiMEC and SiMExp modes subclass it.

    Attributes:
        kind: the walk's name in records (e.g. "simec/isotropic").
        stop_reason: the reason recorded when `stop` fires.
        boundary_tol: when not None, a step after which `stop` fires is bisected until the
            stopping point is within this distance of where the condition starts to hold.
    """

    kind: str = "walk"
    stop_reason: str = "stop"
    boundary_tol: float | None = None

    def setup(self, context: WalkContext) -> None:
        """Called once with the start data (e.g. to choose default targets)."""

    def steering(self, context: WalkContext) -> tuple[OutputMetric, Tensor | None]:
        """The metric (and per-example targets) whose spectrum steers the walk.

        A `FixedMetric` is selected by rows; other metrics are evaluated at each point.
        """
        return context.frozen_metric, None

    def noise(
        self, rng: ExampleRNG, rows: Tensor, spectrum: PullbackSpectrum, context: WalkContext
    ) -> Tensor | None:
        """The step's random draws (`StepView.noise`), made once so re-proposals reuse them."""
        return None

    def propose(self, spectrum: PullbackSpectrum, view: StepView, context: WalkContext) -> Tensor:
        """The step vectors (active, n) from a (possibly restricted) spectrum; zero = none."""
        raise NotImplementedError

    def stop(self, outputs: Tensor, rows: Tensor, context: WalkContext) -> Tensor | None:
        """Which examples reached the policy's goal at these outputs (active,), or None."""
        return None

    def observe(
        self,
        rows: Tensor,
        here: Tensor,
        new: Tensor,
        spectrum_here: PullbackSpectrum,
        spectrum_new: PullbackSpectrum,
    ) -> None:
        """Called once per accepted step: its start and end points (active, n), the spectra there.

        The end point is final (box, corrector and boundary bisection applied); a policy can
        integrate along the path or adapt its next step lengths here.
        """


# ----------------------------------------------------------------------------- result
@dataclass
class Walk:
    """The result of a SiMEC or SiMExp walk over a batch of start points.

    Point-valued members come in the input structure: a tensor, or a tuple of tensors for
    tuple inputs. Traces have one row per point `x_0..x_T` (T = `num_steps`); after an
    example stopped its rows hold NaN (-1 for `rank`).

    Attributes:
        kind: "simec/<direction>", "simexp/<mode>", or "hop" (preimage).
        step_size: nominal step length.
        saved_steps: step index of each saved point (saves,); 0 and T are always saved.
        points_flat: saved points, flat (saves, batch, n).
        outputs: flattened model outputs at the saved points (saves, batch, m).
        rank: rank of the steering metric at each point (T+1, batch).
        smallest_retained: smallest singular value counted in the rank (T+1, batch).
        largest_discarded: largest singular value below the tolerance (T+1, batch).
        drift: `||C (f(x_k) - f(x_0))||` with the output metric's rows `C` fixed at the start
            (T+1, batch).
        drift_euclidean: `||f(x_k) - f(x_0)||` (T+1, batch).
        pseudolength: `sum_k ||A_k dx_k||` per example (batch,).
        energy: `sum_k ||A_k dx_k||^2 / step_size` per example (batch,).
        path_length: Euclidean length `sum_k ||dx_k||` (batch,).
        stop_reason: per example: "steps", "rank_change", "max_drift", "max_output_change",
            "class_change", "class_reached", "level_reached", "no_direction" (the spectrum
            offers no direction: trivial null space for SiMEC, rank 0 for SiMExp) or
            "domain" (the box blocks every direction).
        stopped_at: steps taken per example (batch,).
        max_abs_flat: running max over all steps of `|x_k - x_0|`, flat (batch, n).
        jacobian_evaluations: Jacobians computed per example, corrector included (batch,).
        corrector_iterations: Gauss-Newton updates applied per example (batch,).
        shortened_steps: steps shortened to land on (or clipped to) the box (batch,).
        seeds: per-example seed; `seed=seeds[i]` replays example i alone.
        target: flat target per example used by the walk's metric or mode (or None).
        input_shapes: per-example input shapes; is_inputs_tuple: tuple inputs or not.
        metric: name of the output metric.
    """

    kind: str
    step_size: float
    saved_steps: Tensor
    points_flat: Tensor
    outputs: Tensor
    rank: Tensor
    smallest_retained: Tensor
    largest_discarded: Tensor
    drift: Tensor
    drift_euclidean: Tensor
    pseudolength: Tensor
    energy: Tensor
    path_length: Tensor
    stop_reason: list[str]
    stopped_at: Tensor
    max_abs_flat: Tensor
    jacobian_evaluations: Tensor
    corrector_iterations: Tensor
    shortened_steps: Tensor
    seeds: list[int]
    target: Tensor | None
    input_shapes: tuple[torch.Size, ...]
    is_inputs_tuple: bool
    metric: str = "euclidean"

    # ----- structure
    def unflatten(self, flat: Tensor) -> Tensor | tuple[Tensor, ...]:
        """(..., n) to the input structure (leading dimensions kept)."""
        shaped = _compat.unflatten_features(flat, self.input_shapes)
        return _compat.format_output(self.is_inputs_tuple, shaped)

    @property
    def batch_size(self) -> int:
        return self.points_flat.shape[1]

    @property
    def num_steps(self) -> int:
        """T, the most steps any example took."""
        return self.rank.shape[0] - 1

    @property
    def points(self) -> Tensor | tuple[Tensor, ...]:
        """Saved points (saves, batch, *input_shape)."""
        return self.unflatten(self.points_flat)

    @property
    def start(self) -> Tensor | tuple[Tensor, ...]:
        """Start points (batch, *input_shape)."""
        return self.unflatten(self.points_flat[0])

    @property
    def final(self) -> Tensor | tuple[Tensor, ...]:
        """Final points (batch, *input_shape)."""
        return self.unflatten(self.points_flat[-1])

    def displacement(self) -> Tensor | tuple[Tensor, ...]:
        """`final - start` (batch, *input_shape)."""
        return self.unflatten(self.points_flat[-1] - self.points_flat[0])

    def max_abs_displacement(self) -> Tensor | tuple[Tensor, ...]:
        """Per feature, `max_k |x_k - x_0|` over every step taken (batch, *input_shape)."""
        return self.unflatten(self.max_abs_flat)

    # ----- outputs and classes
    @property
    def predictions(self) -> Tensor:
        """Argmax of the flattened outputs at the saved points (saves, batch); 0 for m = 1."""
        return self.outputs.argmax(dim=-1)

    def probabilities(self) -> Tensor:
        """Class probabilities at the saved points (saves, batch, m); see `as_probabilities`."""
        return as_probabilities(self.outputs)

    @property
    def start_class(self) -> Tensor:
        return self.predictions[0]

    @property
    def final_class(self) -> Tensor:
        return self.predictions[-1]

    @property
    def class_changed(self) -> Tensor:
        """Whether the predicted class at the final point differs from the start (batch,)."""
        return self.final_class != self.start_class

    @property
    def max_drift(self) -> Tensor:
        """Largest metric drift along the walk per example (batch,)."""
        return self.drift.nan_to_num(nan=0.0).amax(dim=0)

    def _at_stop(self, trace: Tensor) -> Tensor:
        return trace.gather(0, self.stopped_at.unsqueeze(0)).squeeze(0)

    @property
    def final_drift(self) -> Tensor:
        """Metric drift at the final point per example (batch,)."""
        return self._at_stop(self.drift)

    @property
    def rank_changes(self) -> Tensor:
        """How many times the rank changed from one point to the next, per example (batch,)."""
        valid = (self.rank[1:] >= 0) & (self.rank[:-1] >= 0)
        return ((self.rank[1:] != self.rank[:-1]) & valid).sum(dim=0)

    # ----- reporting
    def to_records(self) -> list[dict[str, Any]]:
        """One dict of scalar summaries per example (for a table or a DataFrame)."""
        step = (self.points_flat[-1] - self.points_flat[0]).double()
        final_rank = self._at_stop(self.rank)
        columns = {
            "stop_reason": self.stop_reason,
            "stopped_at": self.stopped_at.tolist(),
            "path_length": self.path_length.tolist(),
            "displacement_l2": step.norm(dim=1).tolist(),
            "displacement_linf": step.abs().amax(dim=1).tolist(),
            "pseudolength": self.pseudolength.tolist(),
            "energy": self.energy.tolist(),
            "max_drift": self.max_drift.tolist(),
            "final_drift": self.final_drift.tolist(),
            "max_drift_euclidean": self.drift_euclidean.nan_to_num(nan=0.0).amax(0).tolist(),
            "start_class": self.start_class.tolist(),
            "final_class": self.final_class.tolist(),
            "class_changed": self.class_changed.tolist(),
            "start_rank": self.rank[0].tolist(),
            "final_rank": final_rank.tolist(),
            "rank_changes": self.rank_changes.tolist(),
            "jacobian_evaluations": self.jacobian_evaluations.tolist(),
            "corrector_iterations": self.corrector_iterations.tolist(),
            "shortened_steps": self.shortened_steps.tolist(),
            "seed": self.seeds,
        }
        return [
            {"example": i, "kind": self.kind, **{k: v[i] for k, v in columns.items()}}
            for i in range(self.batch_size)
        ]

    def summary(self) -> str:
        """A few lines describing the walk (stop reasons, lengths, drift, class changes)."""
        reasons: dict[str, int] = {}
        for reason in self.stop_reason:
            reasons[reason] = reasons.get(reason, 0) + 1
        shown = ", ".join(f"{k}: {v}" for k, v in sorted(reasons.items()))
        return "\n".join(
            [
                f"{self.kind} walk of {self.batch_size} example(s), step size {self.step_size:g}, "
                f"metric {self.metric}, {self.num_steps} step(s) at most",
                f"stop reasons: {shown}",
                f"path length: median {self.path_length.median().item():.4g}, "
                f"max {self.path_length.max().item():.4g}",
                f"drift (metric): max {self.max_drift.max().item():.3g}; "
                f"pseudolength max {self.pseudolength.max().item():.3g}",
                f"class changed: {int(self.class_changed.sum())} of {self.batch_size}; "
                f"rank changes: {int((self.rank_changes > 0).sum())} example(s)",
                f"Jacobians per example: max {int(self.jacobian_evaluations.max())} "
                f"(corrector updates: {int(self.corrector_iterations.sum())})",
            ]
        )


# ----------------------------------------------------------------------------- the loop
def _select(spectrum: PullbackSpectrum, keep: Tensor) -> PullbackSpectrum:
    """The spectrum of the examples `keep` (bool mask over its batch)."""
    return dataclasses.replace(
        spectrum,
        outputs=spectrum.outputs[keep],
        factor=spectrum.factor[keep],
        singular_values=spectrum.singular_values[keep],
        right_vectors=spectrum.right_vectors[keep],
        rank=spectrum.rank[keep],
        tolerance=spectrum.tolerance[keep],
        target=None if spectrum.target is None else spectrum.target[keep],
        free=None if spectrum.free is None else spectrum.free[keep],
    )


class _FlatOutputs:
    """Wraps a forward function so that its output is flattened to (batch, m)."""

    def __init__(self, forward_func: Callable[..., Any]) -> None:
        self.forward_func = forward_func
        self.output_shape: torch.Size | None = None  # per example, of the last call

    def __call__(self, *args: Any) -> Tensor:
        output = self.forward_func(*args)
        if not isinstance(output, Tensor) or output.dim() == 0:
            raise TypeError(
                "forward_func must return a tensor with the batch as dim 0, got "
                f"{type(output).__name__}."
            )
        self.output_shape = output.shape[1:]
        return output.reshape(output.shape[0], -1)


@dataclass
class _Model:
    """The model seen on flat points: outputs and spectra of any subset of the batch."""

    forward: _FlatOutputs
    shapes: tuple[torch.Size, ...]
    args: tuple[Any, ...] | None
    batch: int
    rtol: float | None
    atol: float
    jacobian_method: str
    internal_batch_size: int | None
    evaluations: Tensor = field(init=False)

    def __post_init__(self) -> None:
        self.evaluations = torch.zeros(self.batch, dtype=torch.long)

    def structure(self, flat: Tensor) -> tuple[Tensor, ...]:
        return _compat.unflatten_features(flat, self.shapes)

    def _args(self, rows: Tensor) -> tuple[Any, ...]:
        return _compat.index_additional_forward_args(self.args, rows, self.batch)

    def outputs(self, flat: Tensor, rows: Tensor) -> Tensor:
        with torch.no_grad():
            return self.forward(*self.structure(flat), *self._args(rows))

    def spectrum(
        self, flat: Tensor, rows: Tensor, metric: OutputMetric, target: Tensor | None
    ) -> PullbackSpectrum:
        if isinstance(metric, FixedMetric):
            metric, target = metric.select(rows), None
        elif target is not None:
            target = target[rows]
        self.evaluations[rows.cpu()] += 1
        return pullback_spectrum(
            self.forward,
            self.structure(flat),
            output_metric=metric,
            target=target,
            additional_forward_args=self._args(rows),
            rtol=self.rtol,
            atol=self.atol,
            jacobian_method=self.jacobian_method,
            internal_batch_size=self.internal_batch_size,
        )


def _check_options(
    steps: int,
    step_size: float,
    save_every: int,
    on_rank_change: str,
    max_drift: float | None,
    drift_name: str,
    progress: bool | None,
) -> None:
    for name, value in (("steps", steps), ("save_every", save_every)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"`{name}` must be an int, got {type(value).__name__}.")
        if value <= 0:
            raise ValueError(f"`{name}` must be a positive int, got {value}.")
    if isinstance(step_size, bool) or not isinstance(step_size, float | int):
        raise TypeError(f"`step_size` must be a float, got {type(step_size).__name__}.")
    if not (math.isfinite(step_size) and step_size > 0):
        raise ValueError(f"`step_size` must be a positive finite number, got {step_size}.")
    if on_rank_change not in ON_RANK_CHANGE:
        raise ValueError(f"on_rank_change={on_rank_change!r}; choose one of {ON_RANK_CHANGE}.")
    if max_drift is not None and not (isinstance(max_drift, float | int) and max_drift > 0):
        raise ValueError(f"`{drift_name}` must be a positive number or None, got {max_drift!r}.")
    if progress is not None and not isinstance(progress, bool):
        raise TypeError(f"`progress` must be None, True or False, got {progress!r}.")


def _flatten_inputs(inputs: Tensor | tuple[Tensor, ...]) -> tuple[Tensor, tuple[torch.Size, ...]]:
    formatted = _compat.format_inputs(inputs)
    dtypes = {t.dtype for t in formatted}
    if len(dtypes) > 1:
        raise TypeError(
            f"`inputs` mix dtypes {sorted(map(str, dtypes))}; a walk moves all inputs together: "
            "convert them to one floating dtype."
        )
    return _compat.flatten_features(formatted).detach(), _compat.feature_shapes(formatted)


def _bisect(
    model: _Model,
    rows: Tensor,
    start: Tensor,
    step: Tensor,
    outputs: Tensor,
    reached: Callable[[Tensor, Tensor], Tensor],
    tolerance: float,
) -> tuple[Tensor, Tensor]:
    """Smallest fraction `t` of `step` (to `tolerance` in length) where `reached` holds.

    `reached` must be false at `start` and true at `start + step`, where the outputs are
    `outputs`. The result is on the true side, and the outputs returned with it are those
    the decision was made on, so the stopping condition really holds there.

    Returns:
        The fractions (len(rows), 1) and the outputs at `start + t step`.
    """
    low = torch.zeros(len(rows), 1, dtype=step.dtype, device=step.device)
    high = torch.ones_like(low)
    outputs = outputs.clone()
    length = step.norm(dim=1).max().item()
    for _ in range(max(0, math.ceil(math.log2(max(length, tolerance) / tolerance)))):
        middle = (low + high) / 2
        trial = model.outputs(start + middle * step, rows)
        hit = reached(trial, rows)
        outputs[hit] = trial[hit]
        high = torch.where(hit.unsqueeze(1), middle, high)
        low = torch.where(hit.unsqueeze(1), low, middle)
    return high, outputs


def run_walk(
    forward_func: Callable[..., Any],
    inputs: Tensor | tuple[Tensor, ...],
    policy: DirectionPolicy,
    *,
    steps: int,
    step_size: float,
    output_metric: str | OutputMetric | Tensor | Callable[[Tensor], Tensor] = "euclidean",
    target: _compat.TargetType = None,
    additional_forward_args: Any = None,
    domain: Box | tuple[Any, Any] | None = None,
    corrector: bool | Corrector = False,
    on_rank_change: str = "continue",
    max_drift: float | None = None,
    drift_reason: str = "max_drift",
    save_every: int = 1,
    seed: int | Sequence[int] | None = None,
    generator: torch.Generator | None = None,
    progress: bool | None = None,
    jacobian_method: str = "auto",
    internal_batch_size: int | None = None,
    rtol: float | None = None,
    atol: float = 0.0,
) -> Walk:
    """Runs a walk whose steps come from `policy`; `simec` and `simexp` document the options.

    `drift_reason` names both the `max_drift` option in error messages and the stop reason.
    """
    _check_options(steps, step_size, save_every, on_rank_change, max_drift, drift_reason, progress)
    step_size = float(step_size)
    check_eval_mode(forward_func)
    x, shapes = _flatten_inputs(inputs)
    batch, dtype, device = x.shape[0], x.dtype, x.device
    box = as_box(domain)
    bound: BoundBox | None = None if box is None else box.bind(shapes, dtype, device)
    if bound is not None:
        bound.check_inside(x)
    settings = as_corrector(corrector)
    rng = ExampleRNG(batch, seed, generator)
    model = _Model(
        _FlatOutputs(forward_func),
        shapes,
        _compat.format_additional_forward_args(additional_forward_args),
        batch,
        rtol,
        atol,
        jacobian_method,
        internal_batch_size,
    )
    everyone = torch.arange(batch, device=device)
    start = x.clone()
    start_outputs = model.outputs(x, everyone)
    metric = resolve_output_metric(output_metric)
    context = WalkContext(
        start_outputs=start_outputs,
        start_class=start_outputs.argmax(dim=1),
        target=_compat.target_to_flat_indices(target, (batch, *model.forward.output_shape), device),
        metric=metric,
        step_size=step_size,
    )
    policy.setup(context)
    context.frozen_metric = metric.freeze(start_outputs, context.target)
    drift_rows = context.frozen_metric.rows
    steer_metric, steer_target = policy.steering(context)

    def evaluate(flat: Tensor, rows: Tensor) -> PullbackSpectrum:
        return model.spectrum(flat, rows, steer_metric, steer_target)

    def residual(outputs: Tensor, rows: Tensor) -> Tensor:
        change = (outputs - start_outputs[rows]).to(drift_rows.dtype).unsqueeze(2)
        return (drift_rows[rows] @ change).squeeze(2)

    def free_for_correction(spectrum: PullbackSpectrum, flat: Tensor) -> PullbackSpectrum:
        if bound is None or not bound.freezes:
            return spectrum
        return spectrum.restrict(~bound.at_bound(flat))

    def freeze(
        proposal: Tensor,
        here: Tensor,
        spectrum: PullbackSpectrum,
        view: StepView,
        blocking: Callable[[Tensor, Tensor], Tensor],
        free: Tensor,
    ) -> tuple[Tensor, Tensor]:
        """Re-proposes until `blocking(here, proposal)` names no `free` coordinate.

        Each round freezes the blocking coordinates and asks the policy again, with the same
        random draws, from the spectrum of `J` restricted to the free ones.

        Returns:
            The proposal and the coordinates still free.
        """
        for _ in range(here.shape[1]):
            blocked = blocking(here, proposal) & free
            if not blocked.any():
                break
            free = free & ~blocked
            proposal = policy.propose(spectrum.restrict(free), view, context)
        return proposal, free

    def freeze_outward(
        proposal: Tensor, here: Tensor, spectrum: PullbackSpectrum, view: StepView
    ) -> Tensor:
        """A proposal that keeps every coordinate inside the box.

        Coordinates on a bound that the step pushes outward are frozen. So are, where a free
        direction remains, those that the step would carry across a bound: rather than
        shortening the whole step to the first bound it meets, which stalls a walk in high
        dimension where many coordinates sit near a bound. Where no direction remains (a
        class ending on the box), the step is kept and `advance` shortens it onto the bound.
        """
        everything = torch.ones_like(here, dtype=torch.bool)
        onto, free = freeze(proposal, here, spectrum, view, bound.outward, everything)
        inside, _ = freeze(onto, here, spectrum, view, bound.leaving, free)
        return torch.where((inside.norm(dim=1) > 0).unsqueeze(1), inside, onto)

    def advance(flat: Tensor, update: Tensor) -> Tensor:
        return flat + update if bound is None else bound.advance(flat, update)[0]

    tolerance = None
    if settings is not None:
        level = (drift_rows @ start_outputs.unsqueeze(2)).squeeze(2).norm(dim=1)
        tolerance = settings.tolerances(level, dtype)

    # records: one row per point, preallocated (rank -1 and NaN where an example is stopped)
    traces = {
        name: torch.full((steps + 1, batch), torch.nan, dtype=torch.float64)
        for name in ("smallest", "largest", "drift", "drift_euclidean")
    }
    traces["rank"] = torch.full((steps + 1, batch), -1, dtype=torch.long)

    def record(
        point: int, rows: Tensor, spectrum: PullbackSpectrum, drift: Tensor, plain: Tensor
    ) -> None:
        cpu = rows.cpu()
        traces["rank"][point, cpu] = spectrum.rank.cpu()
        traces["smallest"][point, cpu] = spectrum.smallest_retained.cpu()
        traces["largest"][point, cpu] = spectrum.largest_discarded.cpu()
        traces["drift"][point, cpu] = drift.cpu()
        traces["drift_euclidean"][point, cpu] = plain.cpu()

    outputs = start_outputs.clone()
    saved: list[tuple[int, Tensor, Tensor]] = [(0, x.clone(), outputs.clone())]
    previous = torch.zeros_like(x)
    max_abs = torch.zeros_like(x)
    totals = {k: torch.zeros(batch, dtype=torch.float64) for k in ("pseudo", "energy", "path")}
    corrections = torch.zeros(batch, dtype=torch.long)
    shortened_count = torch.zeros(batch, dtype=torch.long)
    stop_reason = ["steps"] * batch
    stopped_at = torch.full((batch,), -1, dtype=torch.long)
    active = torch.ones(batch, dtype=torch.bool, device=device)

    spectrum = evaluate(x, everyone)
    zero = torch.zeros(batch, dtype=torch.float64, device=device)
    record(0, everyone, spectrum, zero, zero)

    def finish(rows: Tensor, reason: str, steps_taken: int) -> None:
        for i in rows.tolist():
            stop_reason[i] = reason
            stopped_at[i] = steps_taken
        active[rows] = False

    reached_at_start = policy.stop(start_outputs, everyone, context)
    if reached_at_start is not None and reached_at_start.any():
        finish(everyone[reached_at_start], policy.stop_reason, 0)
        spectrum = _select(spectrum, ~reached_at_start)

    taken = 0
    bar = tqdm(total=steps, desc=policy.kind, disable=not show_progress(progress), leave=False)
    try:
        for k in range(steps):
            rows = active.nonzero().flatten()
            if rows.numel() == 0:
                break
            here = x[rows]
            view = StepView(rows, previous[rows], policy.noise(rng, rows, spectrum, context))
            proposal = policy.propose(spectrum, view, context)
            dead = proposal.norm(dim=1) == 0
            blocked = torch.zeros_like(dead)
            if bound is not None and bound.freezes:
                proposal = freeze_outward(proposal, here, spectrum, view)
                blocked = (proposal.norm(dim=1) == 0) & ~dead
            for mask, reason in ((dead, "no_direction"), (blocked, "domain")):
                if mask.any():
                    finish(rows[mask], reason, k)
            moving = ~(dead | blocked)
            if not moving.all():
                rows, here, proposal = rows[moving], here[moving], proposal[moving]
                spectrum = _select(spectrum, moving)
                if rows.numel() == 0:
                    break
            if bound is None:
                new = here + proposal
                shortened = torch.zeros(len(rows), dtype=torch.bool, device=device)
            else:
                new, fraction = bound.advance(here, proposal)
                shortened = fraction < 1
            new_spectrum = evaluate(new, rows)
            if settings is not None:
                new, new_spectrum, applied = correct(
                    new,
                    new_spectrum,
                    settings,
                    tolerance[rows],
                    lambda s, r=rows: residual(s.outputs, r),
                    lambda flat, r=rows: evaluate(flat, r),
                    free_for_correction,
                    advance,
                )
                corrections[rows.cpu()] += applied.cpu()
            new_outputs = new_spectrum.outputs
            reached = policy.stop(new_outputs, rows, context)
            if reached is not None and reached.any() and policy.boundary_tol is not None:
                fraction, crossed = _bisect(
                    model,
                    rows[reached],
                    here[reached],
                    (new - here)[reached],
                    new_outputs[reached],
                    lambda out, r: policy.stop(out, r, context),
                    policy.boundary_tol,
                )
                new[reached] = here[reached] + fraction * (new - here)[reached]
                new_spectrum = evaluate(new, rows)
                # keep the outputs the stop was decided on (a recomputation in another batch
                # composition can round to the other side of a boundary this close)
                new_outputs = new_spectrum.outputs.clone()
                new_outputs[reached] = crossed
            policy.observe(rows, here, new, spectrum, new_spectrum)
            # bookkeeping
            move = new - here
            increment = (spectrum.factor @ move.unsqueeze(2)).squeeze(2).double().norm(dim=1)
            cpu_rows = rows.cpu()
            totals["pseudo"][cpu_rows] += increment.cpu()
            totals["energy"][cpu_rows] += (increment.square() / step_size).cpu()
            totals["path"][cpu_rows] += move.double().norm(dim=1).cpu()
            shortened_count[cpu_rows] += shortened.long().cpu()
            max_abs[rows] = torch.maximum(max_abs[rows], (new - start[rows]).abs())
            previous[rows] = unit(proposal)
            x[rows] = new
            outputs[rows] = new_outputs
            drift = residual(new_outputs, rows).double().norm(dim=1)
            plain = (new_outputs - start_outputs[rows]).double().norm(dim=1)
            taken = k + 1
            record(taken, rows, new_spectrum, drift, plain)
            # stopping rules, in order of precedence
            stopping = torch.zeros(len(rows), dtype=torch.bool, device=device)
            changed = new_spectrum.rank != spectrum.rank
            if changed.any() and on_rank_change == "warn":
                warnings.warn(
                    f"The rank of the pullback metric changed at step {taken} for examples "
                    f"{rows[changed].tolist()[:10]}: "
                    f"{spectrum.rank[changed].tolist()[:10]} -> "
                    f"{new_spectrum.rank[changed].tolist()[:10]} (a region boundary was "
                    "crossed; on_rank_change='stop' stops there).",
                    RankChangeWarning,
                    stacklevel=3,
                )
            rules = [(reached, policy.stop_reason)]
            if on_rank_change == "stop":
                rules.append((changed, "rank_change"))
            if max_drift is not None:
                rules.append((drift > max_drift, drift_reason))
            for mask, reason in rules:
                if mask is None:
                    continue
                fresh = mask & ~stopping
                if fresh.any():
                    finish(rows[fresh], reason, taken)
                    stopping |= fresh
            spectrum = _select(new_spectrum, ~stopping) if stopping.any() else new_spectrum
            if taken % save_every == 0:
                saved.append((taken, x.clone(), outputs.clone()))
            bar.update(1)
    finally:
        bar.close()
    if saved[-1][0] != taken:
        saved.append((taken, x.clone(), outputs.clone()))
    stopped_at[stopped_at < 0] = taken

    def stack(name: str) -> Tensor:
        return traces[name][: taken + 1]

    return Walk(
        kind=policy.kind,
        step_size=step_size,
        saved_steps=torch.tensor([s for s, _, _ in saved], dtype=torch.long),
        points_flat=torch.stack([p for _, p, _ in saved]),
        outputs=torch.stack([o for _, _, o in saved]),
        rank=stack("rank"),
        smallest_retained=stack("smallest"),
        largest_discarded=stack("largest"),
        drift=stack("drift"),
        drift_euclidean=stack("drift_euclidean"),
        pseudolength=totals["pseudo"],
        energy=totals["energy"],
        path_length=totals["path"],
        stop_reason=stop_reason,
        stopped_at=stopped_at,
        max_abs_flat=max_abs,
        jacobian_evaluations=model.evaluations,
        corrector_iterations=corrections,
        shortened_steps=shortened_count,
        seeds=rng.seeds,
        target=context.target,
        input_shapes=shapes,
        is_inputs_tuple=_compat.is_tuple(inputs),
        metric=metric.name,
    )
