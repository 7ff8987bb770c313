"""The result of a SiMEC or SiMExp walk (`Walk`) and the warning a walk raises on a rank change.

Point-valued members come in the input structure; traces have one row per point
`x_0, ..., x_T` (row 0 is the start; rows after an example stopped hold NaN, or -1 for the
rank). Pseudolength and energy are accumulated per step from the factor `A_k` at the step's
start point: `sum_k ||A_k (x_{k+1} - x_k)||` approximates `int sqrt(g(gamma', gamma'))`, and
`sum_k ||A_k (x_{k+1} - x_k)||^2 / step_size` approximates `int g(gamma', gamma') dt` with the
curve parameter advancing by `step_size` per step. Figures of a walk are drawn by
`captum_simec.viz.walks`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from captum_simec import _compat
from captum_simec.geometry.decisions import predicted_class
from captum_simec.geometry.metrics import as_probabilities

__all__ = ["RankChangeWarning", "Walk"]


class RankChangeWarning(UserWarning):
    """The rank of the pullback metric changed along a walk (a region boundary was crossed)."""


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
        classes: classes per decision, the size of the output's last dimension (None: all
            outputs); sequence outputs (T, V) are decided at the target's position.
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
    classes: int | None = None

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
        """The decided class at the saved points (saves, batch), as a flat output index.

        The argmax of the outputs (0 for m = 1); for sequence outputs (T, V) with a target
        `(t, v)`, the argmax over the V outputs at position t (without a target, over all).
        """
        saves, batch, m = self.outputs.shape
        classes = m if self.classes is None else self.classes
        if classes >= m or self.target is None:
            return self.outputs.argmax(dim=-1)
        flat = self.outputs.reshape(saves * batch, m)
        position = self.target.to(flat.device).repeat(saves)
        return predicted_class(flat, classes, position).reshape(saves, batch)

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
    def spectral_gap(self) -> Tensor:
        """`s_r / s_{r+1}` at each point (T+1, batch): how clear each rank decision was.

        inf where nothing was discarded, 0 where the rank is 0, NaN after an example stopped.
        """
        smallest, largest = self.smallest_retained, self.largest_discarded
        ratio = smallest / largest.clamp_min(torch.finfo(largest.dtype).tiny)
        gap = torch.where(largest > 0, ratio, torch.inf)
        gap = torch.where(self.rank == 0, 0.0, gap)
        return torch.where(self.rank < 0, torch.nan, gap)

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
            "start_spectral_gap": self.spectral_gap[0].tolist(),
            "final_rank": final_rank.tolist(),
            "final_spectral_gap": self._at_stop(self.spectral_gap).tolist(),
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
                f"rank at the start: {_span(self.rank[0].tolist())}, spectral gap "
                f"{_span(self.spectral_gap[0].tolist(), '.3g')} (near 1: a close call)",
                f"Jacobians per example: max {int(self.jacobian_evaluations.max())} "
                f"(corrector updates: {int(self.corrector_iterations.sum())})",
            ]
        )


def _span(values: list[float], spec: str = "d") -> str:
    """`a` when all values are equal, else `a to b` (for a summary line)."""
    low, high = min(values), max(values)
    return f"{low:{spec}}" if low == high else f"{low:{spec}} to {high:{spec}}"
