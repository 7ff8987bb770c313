"""The walk loop shared by SiMEC, SiMExp and the preimage hops (method.md §3).

From the spectrum of the pullback metric at the current points (one batched Jacobian), each
step of `Walker.step` does, in order:

1. **propose**: the policy proposes a step per example (`DirectionPolicy.propose`); with a
   freezing box, coordinates the step would push out of the box are frozen and the policy
   proposes again from the spectrum of `J` restricted to the free ones;
2. **apply the domain**: the step is taken inside the box (shortened onto a bound, or
   clipped);
3. **correct**: optional Gauss-Newton updates back onto the start's level set;
4. **refine the stop**: a step after which the policy's goal holds is bisected down to
   `boundary_tol`, so the walk ends just across the boundary;
5. **record**: traces, totals and saved points (`WalkRecord`), and the policy's `observe`;
6. **check the stops**: the policy's goal, a rank change, the drift bound.

The examples of a batch walk independently; an example that stops stays at its final point
while the others go on (its later Jacobians are not computed). Per-example randomness comes
from `ExampleRNG`; the policy interface is documented in `captum_simec.explore._policy`.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from captum_simec import _compat
from captum_simec._runtime import show_progress
from captum_simec.explore._flat_model import FlatModel, flat_free
from captum_simec.explore._policy import DirectionPolicy, StepView, WalkContext
from captum_simec.explore._record import WalkRecord, put, rows_index
from captum_simec.explore._rng import ExampleRNG
from captum_simec.explore.constraints import as_box
from captum_simec.explore.corrector import as_corrector, correct
from captum_simec.explore.options import WalkOptions
from captum_simec.explore.walk import RankChangeWarning, Walk
from captum_simec.geometry._modules import check_eval_mode
from captum_simec.geometry.metrics import resolve_output_metric
from captum_simec.geometry.spectrum import PullbackSpectrum

__all__ = ["Walker", "run_walk"]

#: frames between `warnings.warn` in `Walker._check_stops` and the public walk's caller.
_WARNING_STACKLEVEL = 6


def run_walk(
    forward_func: Callable[..., Any],
    inputs: Tensor | tuple[Tensor, ...],
    policy: DirectionPolicy,
    options: WalkOptions,
) -> Walk:
    """Walks from `inputs` with steps from `policy`; `simec` and `simexp` document the options."""
    return Walker(forward_func, inputs, policy, options).run()


class Walker:
    """One walk over a batch of start points (see the module docstring for a step's stages).

    Raises:
        ValueError: a model in training mode, a start point outside the domain, inputs of
            mixed dtypes, and what the policy's `setup` refuses.
    """

    def __init__(
        self,
        forward_func: Callable[..., Any],
        inputs: Tensor | tuple[Tensor, ...],
        policy: DirectionPolicy,
        options: WalkOptions,
    ) -> None:
        check_eval_mode(forward_func)
        x, shapes = _flatten_inputs(inputs)
        batch, device = x.shape[0], x.device
        box = as_box(options.domain)
        self.bound = None if box is None else box.bind(shapes, x.dtype, device)
        if self.bound is not None:
            x = self.bound.check_inside(x)  # rounding-level excursions are clipped onto the box
        self.settings = as_corrector(options.corrector)
        self.rng = ExampleRNG(batch, options.seed, options.generator)
        args = _compat.format_additional_forward_args(options.additional_forward_args)
        self.model = FlatModel(
            forward_func,
            shapes,
            args,
            batch,
            options.rtol,
            options.atol,
            options.jacobian_method,
            options.internal_batch_size,
            free=flat_free(options.free, shapes, batch, device),
        )
        self.everyone = torch.arange(batch, device=device)
        outputs = self.model.outputs(x, self.everyone)
        output_shape = (batch, *self.model.forward.output_shape)
        metric = resolve_output_metric(options.output_metric).for_output(output_shape[1:])
        self.context = WalkContext(
            start_outputs=outputs,
            target=_compat.target_to_flat_indices(options.target, output_shape, device),
            metric=metric,
            step_size=float(options.step_size),
            output_shape=tuple(output_shape[1:]),
        )
        policy.setup(self.context)
        self.context.frozen_metric = metric.freeze(outputs, self.context.target)
        self.drift_rows = self.context.frozen_metric.rows
        self.steering = policy.steering(self.context)
        self.context.spectrum_at = self.evaluate
        self.tolerance = None
        if self.settings is not None:
            level = (self.drift_rows @ outputs.unsqueeze(2)).squeeze(2).norm(dim=1)
            self.tolerance = self.settings.tolerances(level, x.dtype)
        self.policy, self.options = policy, options
        self.shapes, self.is_inputs_tuple = shapes, _compat.is_tuple(inputs)
        self.metric_name = metric.name
        self.x, self.outputs, self.previous = x, outputs, torch.zeros_like(x)
        self.record = WalkRecord(x, outputs, options.steps, options.save_every)

    # ----------------------------------------------------------------------------- the walk
    def run(self) -> Walk:
        """Takes up to `options.steps` steps and returns the `Walk`."""
        rows, spectrum = self._start()
        bar = tqdm(
            total=self.options.steps,
            desc=self.policy.kind,
            disable=not show_progress(self.options.progress),
            leave=False,
        )
        try:
            for k in range(self.options.steps):
                if rows.numel() == 0:
                    break
                rows, spectrum = self.step(k, rows, spectrum)
                bar.update(1)
        finally:
            bar.close()
        self.record.save(self.record.taken, self.x, self.outputs, last=True)
        return self.record.walk(
            self.model.evaluations,
            self.context.step_size,
            kind=self.policy.kind,
            seeds=self.rng.seeds,
            target=self.context.target,
            classes=self.context.classes,
            input_shapes=self.shapes,
            is_inputs_tuple=self.is_inputs_tuple,
            metric=self.metric_name,
        )

    def _start(self) -> tuple[Tensor, PullbackSpectrum]:
        """The spectrum at the start, recorded; examples already at the policy's goal stop."""
        everyone = self.everyone
        spectrum = self.evaluate(self.x, everyone)
        zero = torch.zeros(everyone.shape[0], dtype=torch.float64, device=everyone.device)
        self.record.point(0, everyone, spectrum, zero, zero)
        reached = self.policy.stop(self.context.start_outputs, everyone, self.context)
        if reached is None or not reached.any():
            return everyone, spectrum
        self.record.finish(everyone[reached], self.policy.stop_reason, 0)
        return everyone[~reached], _select(spectrum, ~reached)

    def step(
        self, k: int, rows: Tensor, spectrum: PullbackSpectrum
    ) -> tuple[Tensor, PullbackSpectrum]:
        """Step `k` of the examples `rows` from their spectrum; returns those that go on."""
        step = _Step(rows, _take(self.x, rows), spectrum)
        if not self._propose(k, step):
            return step.rows, step.spectrum
        self._apply_domain(step)
        step.new_spectrum = self.evaluate(step.new, step.rows)
        self._correct(step)
        self._refine_stop(step)
        drift = self._record(k + 1, step)
        self.policy.observe(step.rows, step.here, step.new, step.spectrum, step.new_spectrum)
        stopping = self._check_stops(k + 1, step, drift)
        self.record.save(k + 1, self.x, self.outputs)
        if stopping.any():
            return step.rows[~stopping], _select(step.new_spectrum, ~stopping)
        return step.rows, step.new_spectrum

    # ----------------------------------------------------------------------------- the stages
    def _propose(self, k: int, step: _Step) -> bool:
        """The policy's steps, kept inside a freezing box; False when no example has one.

        Examples left without a direction (reason "no_direction") or blocked by the box
        (reason "domain") finish here and leave `step`.
        """
        noise = self.policy.noise(self.rng, step.rows, step.spectrum, self.context)

        def redraw(mask: Tensor) -> Tensor:
            return self.policy.noise(self.rng, step.rows[mask], step.spectrum, self.context)

        view = StepView(step.rows, _take(self.previous, step.rows), noise, redraw)
        proposal = self.policy.propose(step.spectrum, view, self.context)
        freezes = self.bound is not None and self.bound.freezes
        if freezes:
            unfrozen = proposal
            proposal = self._freeze_outward(proposal, step.here, step.spectrum, view)
        step.proposal = proposal
        moving = proposal.norm(dim=1) > 0
        if moving.all():
            return True
        dead = unfrozen.norm(dim=1) == 0 if freezes else ~moving
        self.record.finish(step.rows[dead], "no_direction", k)
        self.record.finish(step.rows[~moving & ~dead], "domain", k)
        step.keep(moving)
        return step.rows.numel() > 0

    def _freeze(
        self,
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
            proposal = self.policy.propose(spectrum.restrict(free), view, self.context)
        return proposal, free

    def _freeze_outward(
        self, proposal: Tensor, here: Tensor, spectrum: PullbackSpectrum, view: StepView
    ) -> Tensor:
        """A proposal that keeps every coordinate inside the box.

        Coordinates on a bound that the step pushes outward are frozen. So are, where a free
        direction remains, those that the step would carry across a bound: rather than
        shortening the whole step to the first bound it meets, which stalls a walk in high
        dimension where many coordinates sit near a bound. Where no direction remains (a
        class ending on the box), the step is kept and the domain shortens it onto the bound.
        """
        everything = torch.ones_like(here, dtype=torch.bool)
        onto, free = self._freeze(proposal, here, spectrum, view, self.bound.outward, everything)
        inside, _ = self._freeze(onto, here, spectrum, view, self.bound.leaving, free)
        return torch.where((inside.norm(dim=1) > 0).unsqueeze(1), inside, onto)

    def _apply_domain(self, step: _Step) -> None:
        """Takes the step inside the box (and notes the steps the box shortened)."""
        if self.bound is None:
            step.new = step.here + step.proposal
            return
        step.new, fraction = self.bound.advance(step.here, step.proposal)
        step.shortened = fraction < 1

    def _correct(self, step: _Step) -> None:
        """Gauss-Newton updates of the new points back onto the level set, if asked."""
        if self.settings is None:
            return
        rows = step.rows
        step.new, step.new_spectrum, applied = correct(
            step.new,
            step.new_spectrum,
            self.settings,
            self.tolerance[rows],
            lambda s: self.residual(s.outputs, rows),
            lambda flat: self.evaluate(flat, rows),
            self._free_for_correction,
            self._advance,
        )
        self.record.corrections[rows_index(rows, self.x.shape[0])] += applied

    def _refine_stop(self, step: _Step) -> None:
        """Where the policy's goal holds after the step, the point just across its boundary.

        Sets the step's outputs to those the goal was decided on (a recomputation in another
        batch composition can round to the other side of a boundary this close), and
        `reached` to the examples at the goal (None when the policy has none).
        """
        rows, outputs = step.rows, step.new_spectrum.outputs
        step.outputs = outputs
        step.reached = reached = self.policy.stop(outputs, rows, self.context)
        tol = self.policy.boundary_tol
        if reached is None or tol is None or not reached.any():
            return
        move = step.new - step.here
        fraction, crossed = _bisect(
            self.model,
            rows[reached],
            step.here[reached],
            move[reached],
            outputs[reached],
            lambda out, r: self.policy.stop(out, r, self.context),
            tol,
        )
        step.new[reached] = step.here[reached] + fraction * move[reached]
        step.new_spectrum = self.evaluate(step.new, rows)
        step.outputs = step.new_spectrum.outputs.clone()
        step.outputs[reached] = crossed

    def _record(self, taken: int, step: _Step) -> Tensor:
        """Moves the examples to their new points and records the step; returns their drift."""
        rows, outputs = step.rows, step.outputs
        self.record.step(taken, rows, step.new - step.here, step.spectrum, step.shortened)
        self.record.reach(rows, step.new)
        self.previous = put(self.previous, rows, step.proposal)
        self.x = put(self.x, rows, step.new)
        self.outputs = put(self.outputs, rows, outputs)
        change = outputs - _take(self.context.start_outputs, rows)
        drift = torch.linalg.vector_norm(self._pull(change, rows), dim=1, dtype=torch.float64)
        plain = torch.linalg.vector_norm(change, dim=1, dtype=torch.float64)
        self.record.point(taken, rows, step.new_spectrum, drift, plain)
        self.record.taken = taken
        return drift

    def _check_stops(self, taken: int, step: _Step, drift: Tensor) -> Tensor:
        """Which examples stop after this step: the policy's goal, a rank change, the drift.

        The first rule that holds names the stop reason.
        """
        rows, before, after = step.rows, step.spectrum.rank, step.new_spectrum.rank
        changed = after != before
        on_rank_change = self.options.on_rank_change
        if on_rank_change == "warn" and changed.any():
            gaps = [
                f"{b} (gap {g:.3g}) -> {a} (gap {h:.3g})"
                for b, g, a, h in zip(
                    before[changed].tolist()[:10],
                    step.spectrum.spectral_gap[changed].tolist()[:10],
                    after[changed].tolist()[:10],
                    step.new_spectrum.spectral_gap[changed].tolist()[:10],
                    strict=True,
                )
            ]
            warnings.warn(
                f"The rank of the pullback metric changed at step {taken} for examples "
                f"{rows[changed].tolist()[:10]}: {', '.join(gaps)} (a region boundary was "
                "crossed, or, with a spectral gap near 1, a close call of the rank tolerance; "
                "on_rank_change='stop' stops there).",
                RankChangeWarning,
                stacklevel=_WARNING_STACKLEVEL,
            )
        rules = [(step.reached, self.policy.stop_reason)]
        if on_rank_change == "stop":
            rules.append((changed, "rank_change"))
        if self.options.max_drift is not None:
            rules.append((drift > self.options.max_drift, self.options.drift_reason))
        stopping = torch.zeros_like(changed)
        for mask, reason in rules:
            if mask is None:
                continue
            fresh = mask & ~stopping
            if fresh.any():
                self.record.finish(rows[fresh], reason, taken)
                stopping |= fresh
        return stopping

    # ----------------------------------------------------------------------------- helpers
    def evaluate(self, flat: Tensor, rows: Tensor) -> PullbackSpectrum:
        """The steering spectrum at the points `flat` of the examples `rows`."""
        return self.model.spectrum(flat, rows, *self.steering)

    def residual(self, outputs: Tensor, rows: Tensor) -> Tensor:
        """`C (f(x) - f(x_0))` (active, p) with the output metric's rows frozen at the start."""
        return self._pull(outputs - _take(self.context.start_outputs, rows), rows)

    def _pull(self, change: Tensor, rows: Tensor) -> Tensor:
        """`C change` (active, p) for output changes (active, m) of the examples `rows`."""
        metric_rows = _take(self.drift_rows, rows)
        return torch.bmm(metric_rows, change.to(metric_rows.dtype).unsqueeze(2)).squeeze(2)

    def _free_for_correction(self, spectrum: PullbackSpectrum, flat: Tensor) -> PullbackSpectrum:
        if self.bound is None or not self.bound.freezes:
            return spectrum
        return spectrum.restrict(~self.bound.at_bound(flat))

    def _advance(self, flat: Tensor, update: Tensor) -> Tensor:
        return flat + update if self.bound is None else self.bound.advance(flat, update)[0]


@dataclass
class _Step:
    """One step of the examples still walking, filled in stage by stage.

    Attributes:
        rows: batch indices of the examples (ascending).
        here: their points before the step (active, n); spectrum: the steering spectrum there.
        proposal: the step vectors the policy proposed (after freezing at the box).
        new: the points after the step (domain, corrector and bisection applied).
        shortened: which steps the box shortened (None without a box).
        new_spectrum: the steering spectrum at `new`.
        outputs: the outputs at `new` the policy's goal was decided on.
        reached: which examples reached the policy's goal (None: the policy has none).
    """

    rows: Tensor
    here: Tensor
    spectrum: PullbackSpectrum
    proposal: Tensor | None = None
    new: Tensor | None = None
    shortened: Tensor | None = None
    new_spectrum: PullbackSpectrum | None = None
    outputs: Tensor | None = None
    reached: Tensor | None = None

    def keep(self, mask: Tensor) -> None:
        """Drops the examples outside `mask` (before the step is taken)."""
        self.rows, self.here, self.proposal = self.rows[mask], self.here[mask], self.proposal[mask]
        self.spectrum = _select(self.spectrum, mask)


def _take(full: Tensor, rows: Tensor) -> Tensor:
    """The rows `rows` of `full` (itself, without a gather, when they are all of them)."""
    return full if rows.shape[0] == full.shape[0] else full[rows]


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
    model: FlatModel,
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
    low = torch.zeros(rows.shape[0], 1, dtype=step.dtype, device=step.device)
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
