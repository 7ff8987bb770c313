"""The settings every walk shares, with their defaults in one place (`WalkOptions`).

`simec`, `simexp` and `preimage` keep explicit keyword signatures (for help() and IDEs); their
defaults are read from `DEFAULTS`, and each collects its arguments into one
`WalkOptions` that travels to the walk loop, instead of the same keyword list being repeated
at every call.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from captum_simec import _compat
from captum_simec.explore.constraints import Box
from captum_simec.explore.corrector import Corrector
from captum_simec.geometry.metrics import MetricSpec

__all__ = ["DEFAULTS", "ON_RANK_CHANGE", "WalkOptions"]

ON_RANK_CHANGE = ("continue", "warn", "stop")


@dataclass(frozen=True)
class WalkOptions:
    """Settings of one walk (see `simec` for each one's meaning).

    Attributes:
        steps: most steps per example.
        step_size: nominal step length in input units.
        output_metric: the output metric (name, matrix, callable or `OutputMetric`).
        target: Captum target, for the metrics and walk modes that need one.
        additional_forward_args: extra model arguments, as in Captum.
        domain: a `Box` or a `(lower, upper)` pair the walk stays in, or None.
        corrector: True or a `Corrector`: Gauss-Newton steps back onto the level set.
        on_rank_change: "continue", "warn" or "stop" when the rank changes between points.
        max_drift: stop an example once its metric drift exceeds this (None: never).
        drift_reason: the name of that option in the public function (`max_drift`,
            `max_output_change`), used in error messages and as the stop reason.
        save_every: keep every this-many points (the start and the end always).
        seed: base seed (example `i` uses `seed + i`) or one seed per example.
        generator: draws the base seed when `seed` is None.
        progress: tqdm bar over steps (None: only on a terminal).
        jacobian_method: Jacobian path (see `captum_simec.geometry.jacobian`).
        internal_batch_size: most (example, metric row) pairs per backward pass.
        rtol: relative rank tolerance; atol: its absolute floor.
        free: which coordinates may move: a bool tensor broadcastable to the inputs
            (batch, *input_shape) or flat (batch, n); the others stay fixed (e.g. padded
            tokens). None: all.

    Raises:
        TypeError / ValueError: on construction, for a bad `steps`, `save_every`,
            `step_size`, `on_rank_change`, `max_drift` or `progress`.
    """

    steps: int = 1000
    step_size: float = 0.05
    output_metric: MetricSpec = "euclidean"
    target: _compat.TargetType = None
    additional_forward_args: Any = None
    domain: Box | tuple[Any, Any] | None = None
    corrector: bool | Corrector = False
    on_rank_change: str = "continue"
    max_drift: float | None = None
    drift_reason: str = "max_drift"
    save_every: int = 1
    seed: int | Sequence[int] | None = None
    generator: torch.Generator | None = None
    progress: bool | None = None
    jacobian_method: str = "auto"
    internal_batch_size: int | None = None
    rtol: float | None = None
    atol: float = 0.0
    free: Tensor | tuple[Tensor, ...] | None = None

    def __post_init__(self) -> None:
        for name in ("steps", "save_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"`{name}` must be an int, got {type(value).__name__}.")
            if value <= 0:
                raise ValueError(f"`{name}` must be a positive int, got {value}.")
        step = self.step_size
        if isinstance(step, bool) or not isinstance(step, float | int):
            raise TypeError(f"`step_size` must be a float, got {type(step).__name__}.")
        if not (math.isfinite(step) and step > 0):
            raise ValueError(f"`step_size` must be a positive finite number, got {step}.")
        if self.on_rank_change not in ON_RANK_CHANGE:
            raise ValueError(
                f"on_rank_change={self.on_rank_change!r}; choose one of {ON_RANK_CHANGE}."
            )
        drift = self.max_drift
        if drift is not None and not (isinstance(drift, float | int) and drift > 0):
            raise ValueError(
                f"`{self.drift_reason}` must be a positive number or None, got {drift!r}."
            )
        if self.progress is not None and not isinstance(self.progress, bool):
            raise TypeError(f"`progress` must be None, True or False, got {self.progress!r}.")

    @classmethod
    def collect(cls, arguments: Mapping[str, Any], **overrides: Any) -> WalkOptions:
        """The options among a public function's `arguments` (its `locals()`), then `overrides`."""
        names = {f.name for f in dataclasses.fields(cls)}
        chosen = {name: value for name, value in arguments.items() if name in names}
        return cls(**{**chosen, **overrides})


#: the defaults the public walk functions show in their signatures.
DEFAULTS = WalkOptions()
