"""The model as a walk sees it: flat points in, flat outputs and spectra of any rows out."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from captum_simec import _compat
from captum_simec._outputs import check_output
from captum_simec.geometry import model_outputs
from captum_simec.geometry.metrics import FixedMetric, OutputMetric
from captum_simec.geometry.pullback import pullback_spectrum
from captum_simec.geometry.spectrum import PullbackSpectrum
from captum_simec.geometry.tolerance import saturation_recorded

__all__ = ["FlatModel", "FlatOutputs", "flat_free"]


class FlatOutputs:
    """Wraps a forward function so that its output is flattened to (batch, m)."""

    def __init__(self, forward_func: Callable[..., Any]) -> None:
        self.forward_func = forward_func
        self.output_shape: torch.Size | None = None  # per example, of the last call

    def __call__(self, *args: Any) -> Tensor:
        output = check_output(self.forward_func(*args), args[0].shape[0])
        self.output_shape = output.shape[1:]
        return output.reshape(output.shape[0], -1)


def flat_free(
    free: Tensor | tuple[Tensor, ...] | None,
    shapes: tuple[torch.Size, ...],
    batch: int,
    device: torch.device,
) -> Tensor | None:
    """The walk's `free` mask as a bool tensor (batch, n) on `device`, from the input
    structure or flat.

    A tensor (or one per input) is broadcast to (batch, *input_shape), so a (batch, T, 1)
    mask frees whole positions of a (batch, T, H) input; a (batch, n) tensor passes through.

    Raises:
        TypeError: not a bool or integer tensor (or a tuple of them).
        ValueError: a shape that does not broadcast to the inputs.
    """
    if free is None:
        return None
    n = sum(math.prod(shape) for shape in shapes)
    parts = free if isinstance(free, tuple) else (free,)
    if not all(isinstance(p, Tensor) and not p.is_floating_point() for p in parts):
        raise TypeError("`free` must be a bool tensor (True: the coordinate may move).")
    if len(parts) == 1 and parts[0].shape == (batch, n):
        return parts[0].bool().to(device)
    if len(parts) != len(shapes):
        raise ValueError(f"`free` has {len(parts)} part(s) for {len(shapes)} input(s).")
    try:
        pieces = [p.bool().broadcast_to((batch, *s)) for p, s in zip(parts, shapes, strict=True)]
    except RuntimeError as error:
        raise ValueError(
            f"`free` of shape(s) {[tuple(p.shape) for p in parts]} does not broadcast to the "
            f"inputs {[(batch, *s) for s in shapes]} (nor is it flat, ({batch}, {n})): give "
            "one bool per coordinate, or e.g. (batch, T, 1) for whole positions."
        ) from error
    return _compat.flatten_features(tuple(pieces)).to(device)


class FlatModel:
    """Outputs and spectra of the model at flat points (rows of the walk's batch).

    Args:
        forward_func: the user's model or function.
        shapes: per-example shapes of the inputs the flat points are made of.
        args: formatted additional forward arguments (tensors with the batch as dim 0 are
            indexed by rows).
        batch: the walk's batch size.
        rtol, atol, jacobian_method, internal_batch_size: as in `pullback_spectrum`.
        free: bool mask (batch, n) of the coordinates that may move, or None (all).
    """

    def __init__(
        self,
        forward_func: Callable[..., Any],
        shapes: tuple[torch.Size, ...],
        args: tuple[Any, ...] | None,
        batch: int,
        rtol: float | None,
        atol: float,
        jacobian_method: str,
        internal_batch_size: int | None,
        free: Tensor | None = None,
    ) -> None:
        self.forward = FlatOutputs(forward_func)
        self.free = free
        self.shapes = shapes
        self.args = args
        self.batch = batch
        self.geometry = {
            "rtol": rtol,
            "atol": atol,
            "jacobian_method": jacobian_method,
            "internal_batch_size": internal_batch_size,
        }
        self._partial = torch.zeros(batch, dtype=torch.long)  # evaluations of some rows
        self._full = 0  # evaluations of the whole batch, counted apart (no tensor op)

    @property
    def evaluations(self) -> Tensor:
        """Jacobians computed per example (batch,)."""
        return self._partial + self._full

    def structure(self, flat: Tensor) -> tuple[Tensor, ...]:
        return _compat.unflatten_features(flat, self.shapes)

    def _args(self, rows: Tensor) -> tuple[Any, ...]:
        return _compat.index_additional_forward_args(self.args, rows, self.batch)

    def outputs(self, flat: Tensor, rows: Tensor) -> Tensor:
        """Flat outputs (len(rows), m) at the points `flat`, detached, computed as the
        Jacobians are (`model_outputs`: the walk's drift, classes and stops compare them)."""
        return model_outputs(self.forward, self.structure(flat), self._args(rows))

    def spectrum(
        self, flat: Tensor, rows: Tensor, metric: OutputMetric, target: Tensor | None
    ) -> PullbackSpectrum:
        """The spectrum of `metric` (a `FixedMetric` is selected by rows) at `flat`."""
        everyone = rows.shape[0] == self.batch  # rows are ascending: all of them, in order
        if isinstance(metric, FixedMetric):
            metric, target = (metric if everyone else metric.select(rows)), None
        elif target is not None and not everyone:
            target = target[rows]
        if everyone:
            self._full += 1
        else:
            self._partial[rows.cpu()] += 1
        with saturation_recorded():  # the walk records the rank at every point
            return pullback_spectrum(
                self.forward,
                self.structure(flat),
                output_metric=metric,
                target=target,
                additional_forward_args=self._args(rows),
                free=None if self.free is None else self.free[rows],
                **self.geometry,
            )
