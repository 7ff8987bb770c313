"""What a walk records, filled step by step in preallocated tensors and turned into a `Walk`.

Per point `x_0..x_T` (one row each; NaN, or -1 for the rank, where an example had stopped):
the rank of the steering metric, its smallest retained and largest discarded singular value,
the metric drift `||C (f(x_k) - f(x_0))||` and the Euclidean drift `||f(x_k) - f(x_0)||`.
Per example: pseudolength `sum_k ||A_k dx_k||` and energy `sum_k ||A_k dx_k||^2 / step_size`
(from the factor `A_k` at each step's start point), the path length, the running maximum of
`|x_k - x_0|`, shortened steps, corrector updates, the stop reason and the steps taken.
Points and outputs are kept every `save_every` steps (and at the start and the end).

Every step writes raw values for all the examples that stepped at once, into traces
preallocated on the walk's device; what derives from them is computed once, at the end.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor

from captum_simec.explore.walk import Walk
from captum_simec.geometry.spectrum import PullbackSpectrum

__all__ = ["WalkRecord", "put", "rows_index"]


def rows_index(rows: Tensor, batch: int) -> Tensor | slice:
    """`rows` as an index into a batch dimension: a plain slice when it is the whole batch.

    The rows of a walk are always an ascending subset of `range(batch)`, so a full-length
    one is the whole batch, and a slice spares a gather or a scatter.
    """
    return slice(None) if rows.shape[0] == batch else rows


def put(full: Tensor, rows: Tensor, values: Tensor) -> Tensor:
    """A new tensor equal to `full` with its rows `rows` replaced by `values` (no copy if all).

    Tensors updated this way are never written in place, so the walk can keep references to
    earlier ones (its saved points) without copying them.
    """
    return values if rows.shape[0] == full.shape[0] else full.index_copy(0, rows, values)


class WalkRecord:
    """The traces, totals and saved points of one walk over `batch` examples.

    Every step writes raw values (the rank and the singular values of each point, the drift,
    the step's increment `||A_k dx_k||` and length) into preallocated traces; the derived
    records (smallest retained and largest discarded singular values, pseudolength, energy,
    path length) are computed once, at the end. The singular-value trace costs
    `8 (steps + 1) batch p` bytes.

    Args:
        start: flat start points (batch, n).
        start_outputs: flat outputs at the start (batch, m).
        steps: most steps of the walk.
        save_every: keep the points every this-many steps.
    """

    def __init__(self, start: Tensor, start_outputs: Tensor, steps: int, save_every: int):
        batch, device = start.shape[0], start.device
        self.batch = batch
        self.start = start
        self.save_every = save_every
        self.rank = torch.full((steps + 1, batch), -1, dtype=torch.long, device=device)
        self.singular: Tensor | None = None  # (steps + 1, batch, p), allocated at point 0
        # metric drift, Euclidean drift (per point), increment, length (per step, at its end)
        self.values = torch.full((4, steps + 1, batch), torch.nan, dtype=torch.float64)
        self.values = self.values.to(device)
        self.shortened = torch.zeros(batch, dtype=torch.long, device=device)
        self.corrections = torch.zeros(batch, dtype=torch.long, device=device)
        self.max_abs = torch.zeros_like(start)
        self.stop_reason = ["steps"] * batch
        self.stopped_at = torch.full((batch,), -1, dtype=torch.long)
        self.saved: list[tuple[int, Tensor, Tensor]] = [(0, start, start_outputs)]
        self.taken = 0
        self._spectrum: PullbackSpectrum | None = None  # to derive records from at the end

    def point(
        self, index: int, rows: Tensor, spectrum: PullbackSpectrum, drift: Tensor, plain: Tensor
    ) -> None:
        """The traces of point `index` of the examples `rows`."""
        if self.singular is None:
            shape = (*self.rank.shape, spectrum.singular_values.shape[1])
            self.singular = spectrum.singular_values.new_full(shape, torch.nan)
            self._spectrum = spectrum
        where = rows_index(rows, self.batch)
        self.rank[index, where] = spectrum.rank
        self.singular[index, where] = spectrum.singular_values
        self.values[:2, index, where] = torch.stack((drift, plain))

    def step(
        self,
        index: int,
        rows: Tensor,
        move: Tensor,
        spectrum_here: PullbackSpectrum,
        shortened: Tensor | None,
    ) -> None:
        """The step of the examples `rows` by `move` that ends at point `index`."""
        where = rows_index(rows, self.batch)
        pulled = torch.bmm(spectrum_here.factor, move.unsqueeze(2))
        increment = torch.linalg.vector_norm(pulled, dim=(1, 2), dtype=torch.float64)
        length = torch.linalg.vector_norm(move, dim=1, dtype=torch.float64)
        self.values[2:, index, where] = torch.stack((increment, length))
        if shortened is not None:
            self.shortened[where] += shortened

    def reach(self, rows: Tensor, points: Tensor) -> None:
        """Updates the running maximum of `|x_k - x_0|` with the examples' new `points`."""
        where = rows_index(rows, self.batch)
        start = self.start if isinstance(where, slice) else self.start[rows]
        self.max_abs[where] = torch.maximum(self.max_abs[where], (points - start).abs())

    def finish(self, rows: Tensor, reason: str, steps_taken: int) -> None:
        """Examples `rows` stop for `reason` after `steps_taken` steps."""
        for i in rows.tolist():
            self.stop_reason[i] = reason
            self.stopped_at[i] = steps_taken

    def save(self, taken: int, points: Tensor, outputs: Tensor, last: bool = False) -> None:
        """Keeps the points and outputs after `taken` steps, if due (or `last` and not kept)."""
        due = taken % self.save_every == 0 if not last else self.saved[-1][0] != taken
        if due:
            self.saved.append((taken, points, outputs))

    def _bounds(self) -> tuple[Tensor, Tensor]:
        """Smallest retained and largest discarded singular value per point (NaN: stopped)."""
        rank = self.rank[: self.taken + 1]
        points = dataclasses.replace(
            self._spectrum,
            singular_values=self.singular[: self.taken + 1].flatten(0, 1),
            rank=rank.clamp_min(0).flatten(),
        )
        stopped = rank < 0
        smallest = points.smallest_retained.view_as(rank).masked_fill(stopped, torch.nan)
        largest = points.largest_discarded.view_as(rank).masked_fill(stopped, torch.nan)
        return smallest.cpu(), largest.cpu()

    def walk(self, evaluations: Tensor, step_size: float, **fields: Any) -> Walk:
        """The `Walk` of the `taken` steps; `fields` are the walk's descriptive fields."""
        self.stopped_at[self.stopped_at < 0] = self.taken
        values = self.values[:, : self.taken + 1].cpu()
        increment, length = values[2].nan_to_num(), values[3].nan_to_num()
        smallest, largest = self._bounds()
        return Walk(
            step_size=step_size,
            saved_steps=torch.tensor([s for s, _, _ in self.saved], dtype=torch.long),
            points_flat=torch.stack([p for _, p, _ in self.saved]),
            outputs=torch.stack([o for _, _, o in self.saved]),
            rank=self.rank[: self.taken + 1].cpu(),
            smallest_retained=smallest,
            largest_discarded=largest,
            drift=values[0],
            drift_euclidean=values[1],
            pseudolength=increment.sum(dim=0),
            energy=increment.square().sum(dim=0) / step_size,
            path_length=length.sum(dim=0),
            stop_reason=self.stop_reason,
            stopped_at=self.stopped_at,
            max_abs_flat=self.max_abs,
            jacobian_evaluations=evaluations,
            corrector_iterations=self.corrections.cpu(),
            shortened_steps=self.shortened.cpu(),
            **fields,
        )
