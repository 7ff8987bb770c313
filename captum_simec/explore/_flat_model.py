"""The model as a walk sees it: flat points in, flat outputs and spectra of any rows out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from captum_simec import _compat
from captum_simec.geometry import model_outputs
from captum_simec.geometry.metrics import FixedMetric, OutputMetric
from captum_simec.geometry.pullback import pullback_spectrum
from captum_simec.geometry.spectrum import PullbackSpectrum
from captum_simec.geometry.tolerance import saturation_recorded

__all__ = ["FlatModel", "FlatOutputs"]


class FlatOutputs:
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


class FlatModel:
    """Outputs and spectra of the model at flat points (rows of the walk's batch).

    Args:
        forward_func: the user's model or function.
        shapes: per-example shapes of the inputs the flat points are made of.
        args: formatted additional forward arguments (tensors with the batch as dim 0 are
            indexed by rows).
        batch: the walk's batch size.
        rtol, atol, jacobian_method, internal_batch_size: as in `pullback_spectrum`.
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
    ) -> None:
        self.forward = FlatOutputs(forward_func)
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
                **self.geometry,
            )
