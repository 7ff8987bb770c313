"""The direction policies of SiMEC (null space) and SiMExp (range space) walks (method.md §3).

- `NullPolicy`: unit steps in the null space `N(x)`: isotropic (a Gaussian projected onto
  `N`), a random null eigenvector, or the papers' parity walk; sign continuity in
  one-dimensional classes.
- `RangePolicy`: "random" / "weighted" combinations of the range basis, or "directed" along
  the top singular vector, oriented to move the output away from its start.
- `MarginPolicy`: down the margin of the target class ("leave_class") or up the margin of a
  goal class ("to_class").
- `ParityRangePolicy`: the papers' MNIST "SiMExp" (one null and one non-null eigenvector
  step per iteration).
"""

from __future__ import annotations

import torch
from torch import Tensor

from captum_simec import _compat
from captum_simec.explore._bases import dense_eigenbasis, null_basis, pick, signed
from captum_simec.explore._policy import DirectionPolicy, StepView, WalkContext
from captum_simec.explore._rng import ExampleRNG
from captum_simec.geometry.metrics import MarginMetric, OutputMetric
from captum_simec.geometry.spectrum import PullbackSpectrum, unit

__all__ = ["DIRECTIONS", "MarginPolicy", "NullPolicy", "ParityRangePolicy", "RangePolicy"]

DIRECTIONS = ("isotropic", "eigenvector")
#: the cosine below which the directed SiMExp step cannot tell which way moves the output away.
_UNDECIDED_COSINE = 1e-3


class NullPolicy(DirectionPolicy):
    """Unit steps in the null space: isotropic, a random null eigenvector, or parity.

    When the null space is one-dimensional the sign is kept continuous (`u . u_prev >= 0`)
    so that the walk traces the curve instead of jittering on it.

    Raises:
        ValueError: an unknown `direction`.
    """

    def __init__(self, direction: str, parity: bool = False, parity_split: int | None = None):
        if direction not in DIRECTIONS:
            raise ValueError(f"direction={direction!r}; choose one of {DIRECTIONS}.")
        self.isotropic = direction == "isotropic" and not parity
        self.parity = parity
        self.parity_split = parity_split
        self.kind = "simec/parity" if parity else f"simec/{direction}"

    def noise(
        self, rng: ExampleRNG, rows: Tensor, spectrum: PullbackSpectrum, context: WalkContext
    ) -> Tensor:
        if self.isotropic:
            return rng.normal(rows, spectrum.num_features, spectrum.factor)
        return rng.uniform(rows, 2, spectrum.factor)

    def _eigenvectors(self, spectrum: PullbackSpectrum, draws: Tensor) -> tuple[Tensor, Tensor]:
        directions = torch.zeros_like(spectrum.factor[:, 0, :])
        counts = torch.zeros(spectrum.batch_size, dtype=torch.long)
        for i in range(spectrum.batch_size):
            if self.parity:
                vectors, count = dense_eigenbasis(spectrum, i, self.parity_split)
                basis = vectors[:, :count]
            else:
                basis = null_basis(spectrum, i)
            counts[i] = basis.shape[1]
            if basis.shape[1] > 0:
                directions[i] = signed(draws[i, 1]) * basis[:, pick(draws[i, 0], basis.shape[1])]
        return directions, counts

    def propose(self, spectrum: PullbackSpectrum, view: StepView, context: WalkContext) -> Tensor:
        if self.isotropic:
            counts = spectrum.null_dim
            directions = spectrum.null_direction(view.noise, view.redraw)
        else:
            directions, counts = self._eigenvectors(spectrum, view.noise)
        curves = counts.to(directions.device) == 1
        if curves.any():  # a one-dimensional class: keep going the same way along the curve
            backwards = curves & ((directions * view.previous).sum(dim=1) < 0)
            directions = torch.where(backwards.unsqueeze(1), -directions, directions)
        return directions * context.step_size


class _ClassChange(DirectionPolicy):
    """Steers by the walk's output metric; stops when the predicted class changes (if asked)."""

    stop_reason = "class_change"

    def __init__(self, stop_on_class_change: bool, boundary_tol: float | None) -> None:
        self.stop_on_class_change = stop_on_class_change
        self.boundary_tol = boundary_tol if stop_on_class_change else None

    def setup(self, context: WalkContext) -> None:
        if self.stop_on_class_change:
            context.start_class  # noqa: B018 (sequence outputs without a target fail here)

    def steering(self, context: WalkContext) -> tuple[OutputMetric, Tensor | None]:
        return context.metric, context.target

    def stop(self, outputs: Tensor, rows: Tensor, context: WalkContext) -> Tensor | None:
        if not self.stop_on_class_change:
            return None
        return context.decision(outputs, rows) != context.start_class[rows]


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
        if self.mode != "directed":
            weighted = self.mode == "weighted"
            return spectrum.range_direction(view.noise, weighted) * context.step_size
        top = spectrum.right_vectors[:, :, 0]
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
                self.goal_spec, (outputs.shape[0], *context.output_shape), outputs.device
            )
        if context.target is None:
            context.target = self.goal

    def steering(self, context: WalkContext) -> tuple[OutputMetric, Tensor | None]:
        return MarginMetric(context.classes), self.goal

    def propose(self, spectrum: PullbackSpectrum, view: StepView, context: WalkContext) -> Tensor:
        gradient = unit(spectrum.factor[:, 0, :])
        sign = -1.0 if self.mode == "leave_class" else 1.0
        return sign * gradient * context.step_size

    def stop(self, outputs: Tensor, rows: Tensor, context: WalkContext) -> Tensor | None:
        if not self.stops:
            return None
        goal = self.goal[rows]  # the decision at the goal's position
        predicted = context.decision(outputs, rows, position=goal)
        if self.mode == "leave_class":
            return predicted != context.start_class[rows]
        return predicted == goal


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
                    steps[i] += signed(draw[1]) * vectors[:, offset + pick(draw[0], count)]
        return steps * (context.step_size / 2)
