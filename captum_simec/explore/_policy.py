"""The interface between the walk loop and a walk's choice of steps: `DirectionPolicy`.

The loop (`captum_simec.explore._walker`) owns everything every walk shares: the spectrum at
each point, the domain, the corrector, the records and the stopping rules. A policy owns what
makes one walk different from another, through these hooks, in the order the loop calls them:

1. `setup(context)` once, with the start outputs (e.g. to choose default target classes);
2. `steering(context)` once: the metric (and targets) whose spectrum steers the walk;
3. per step, `noise(rng, rows, spectrum, context)`: the step's random draws, made once so
   that a re-proposal from a restricted spectrum (a coordinate frozen at the box) reuses
   them; then `propose(spectrum, view, context)`: the step vectors, any length (a policy may
   adapt it per example; a zero row means "no direction");
4. `stop(outputs, rows, context)`: which examples reached the policy's goal (with
   `boundary_tol`, the step that reached it is bisected down to that tolerance);
5. `observe(rows, here, new, spectrum_here, spectrum_new)` once per accepted step, after the
   domain, the corrector and the bisection have had their say: the step's start and end
   points and the steering spectra at both, for quantities integrated along the path (e.g.
   a gradient integrated by the trapezoidal rule); the default does nothing.

A new walk kind is a subclass (see `captum_simec.explore._directions`) plus a public function
that validates its arguments and calls `run_walk` (docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from captum_simec.explore._rng import ExampleRNG
from captum_simec.geometry.decisions import num_classes, predicted_class
from captum_simec.geometry.metrics import FixedMetric, OutputMetric
from captum_simec.geometry.spectrum import PullbackSpectrum

__all__ = ["DirectionPolicy", "StepView", "WalkContext"]


@dataclass
class WalkContext:
    """What a direction policy knows about the whole batch at the start of the walk.

    Attributes:
        start_outputs: flattened outputs at the start (batch, m).
        target: flat target index per example (Captum target, or a policy's default).
        metric: the output metric, evaluated at the current point ("live").
        step_size: the nominal step length.
        output_shape: the output's shape per example: a classifier decides the argmax over
            its last dimension (at the target's position for (T, V) sequence outputs).
        frozen_metric: the output metric's factor fixed at the start point (set after the
            policy's `setup`, with its `target`).
        spectrum_at: the steering spectrum at flat points (active, n) of the examples `rows`
            (ascending, distinct), one Jacobian each: for a policy that needs points of its
            own between the walk's (set by the walk loop).
    """

    start_outputs: Tensor
    target: Tensor | None
    metric: OutputMetric
    step_size: float
    output_shape: tuple[int, ...]
    frozen_metric: FixedMetric | None = None
    spectrum_at: Callable[[Tensor, Tensor], PullbackSpectrum] | None = None
    _start_class: Tensor | None = field(default=None, init=False, repr=False)

    def decision(self, outputs: Tensor, rows: Tensor, position: Tensor | None = None) -> Tensor:
        """The class decided at flat `outputs` of the examples `rows` (a flat output index):
        the argmax over the last output dimension at `position` (default: their target's).

        Raises:
            ValueError: outputs with several positions and neither a target nor `position`.
        """
        if position is None and self.target is not None:
            position = self.target[rows]
        return predicted_class(outputs, self.classes, position)

    @property
    def classes(self) -> int:
        """Classes per decision: the size of the output's last dimension."""
        return num_classes(self.output_shape)

    @property
    def start_class(self) -> Tensor:
        """The class decided at the start (batch,), at the target's position."""
        if self._start_class is None:
            everyone = torch.arange(self.start_outputs.shape[0], device=self.start_outputs.device)
            self._start_class = self.decision(self.start_outputs, everyone)
        return self._start_class


@dataclass
class StepView:
    """The examples still walking at one step, as a policy sees them.

    Attributes:
        rows: their batch indices (active,).
        previous: each one's last step vector, zero before the first (active, n); only its
            direction matters (the policies use the sign of its dot product).
        noise: the step's random draws (`DirectionPolicy.noise`), or None.
        redraw: fresh draws of `noise` for the examples in a bool mask over `rows`, from
            their own generators (for a draw that turns out to give no direction, e.g. one
            lying almost in the range space); a policy writes them into `noise`, so that a
            re-proposal uses them too.
    """

    rows: Tensor
    previous: Tensor
    noise: Tensor | None = None
    redraw: Callable[[Tensor], Tensor] | None = None


class DirectionPolicy:
    """How a walk chooses its steps and when it reaches its goal (see the module docstring).

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
        """The step's random draws for `rows` (`StepView.noise`), or None."""
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
        """Called once per accepted step; does nothing unless a policy integrates a path.

        Args:
            rows: batch indices of the examples that stepped (active,).
            here: their points before the step, flat (active, n).
            new: their points after it (domain, corrector and bisection applied) (active, n).
            spectrum_here: the steering spectrum at `here` (unrestricted by the box).
            spectrum_new: the steering spectrum at `new`.
        """
