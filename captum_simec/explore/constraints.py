"""Domain constraints for walks: a box `lower <= x <= upper`, frozen coordinates, short steps.

Data usually live in a box (pixels in `[lo, hi]`, min-max scaled tabular data in `[0, 1]`).
Two ways to keep a walk inside it:

- ``"freeze"`` (default): a coordinate that the proposed step would push out of the box
  (from a bound, or across one) is frozen for that step; the direction is then recomputed
  from the null (or range) space of `J` restricted to the free coordinates, so a SiMEC step
  stays on the class. A step that still crosses a bound is shortened to land on it.
- ``"clamp"``: take the step and clip every coordinate to the box (the papers' choice); the
  clipped part of a null step leaves the class.

Setting ``lower == upper`` for a feature pins it: it never moves.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["CONSTRAINTS", "BoundBox", "Box", "as_box"]

CONSTRAINTS = ("freeze", "clamp")

BoundType = float | int | Tensor
BoundsType = BoundType | tuple[BoundType, ...]


def _as_parts(bound: BoundsType, count: int, name: str) -> tuple[Tensor, ...]:
    """One tensor per input from a scalar, a tensor, or a tuple (one bound per input)."""
    if isinstance(bound, tuple):
        if len(bound) != count:
            raise ValueError(
                f"`domain` {name} is a tuple of {len(bound)} bounds but there are {count} "
                "inputs: give one bound (scalar or tensor) per input, or a single scalar."
            )
        parts = bound
    else:
        parts = (bound,) * count
    tensors = []
    for part in parts:
        if isinstance(part, bool) or not isinstance(part, float | int | Tensor):
            raise TypeError(
                f"`domain` {name} must be a number, a tensor or a tuple of them, "
                f"got {type(part).__name__}."
            )
        tensor = torch.as_tensor(part).detach()
        if tensor.is_complex() or not torch.isfinite(tensor.double()).all():
            raise ValueError(f"`domain` {name} must be finite real numbers.")
        tensors.append(tensor.double())
    return tuple(tensors)


class Box:
    """The box `lower <= x <= upper` of admissible inputs, per feature or for all features.

    Args:
        lower: a number, a tensor broadcastable to one example's input shape, or (for tuple
            inputs) a tuple with one such bound per input.
        upper: same forms as `lower`; `lower <= upper` everywhere (equal pins a feature).
        constraint: ``"freeze"`` (freeze coordinates on a bound that a step would push
            outward, shorten steps that would cross a bound) or ``"clamp"`` (clip after each
            step, as in the papers).

    Raises:
        ValueError: `lower > upper` somewhere, non-finite bounds, an unknown `constraint`.
    """

    def __init__(self, lower: BoundsType, upper: BoundsType, constraint: str = "freeze") -> None:
        if constraint not in CONSTRAINTS:
            raise ValueError(f"Box constraint={constraint!r}; choose one of {CONSTRAINTS}.")
        count = max(len(b) if isinstance(b, tuple) else 1 for b in (lower, upper))
        for lo, hi in zip(
            _as_parts(lower, count, "lower"), _as_parts(upper, count, "upper"), strict=True
        ):
            try:
                ordered = bool((lo <= hi).all())
            except RuntimeError as error:
                raise ValueError(
                    f"`domain` lower {tuple(lo.shape)} and upper {tuple(hi.shape)} do not "
                    "broadcast together; give bounds of compatible shapes."
                ) from error
            if not ordered:
                raise ValueError(
                    "`domain` has lower > upper for some feature; every lower bound must be "
                    "<= its upper bound (swap them, or use lower == upper to pin a feature)."
                )
        self.lower = lower
        self.upper = upper
        self.constraint = constraint

    def bind(
        self, input_shapes: tuple[torch.Size, ...], dtype: torch.dtype, device: torch.device
    ) -> BoundBox:
        """Flattens the bounds to the walk's flat coordinates (length n)."""

        def flat(bound: BoundsType, name: str) -> Tensor:
            pieces = []
            for part, shape in zip(
                _as_parts(bound, len(input_shapes), name), input_shapes, strict=True
            ):
                try:
                    pieces.append(part.broadcast_to(shape).reshape(-1))
                except RuntimeError as error:
                    raise ValueError(
                        f"`domain` {name} of shape {tuple(part.shape)} does not broadcast to "
                        f"the per-example input shape {tuple(shape)}."
                    ) from error
            return torch.cat(pieces).to(device=device, dtype=dtype)

        return BoundBox(flat(self.lower, "lower"), flat(self.upper, "upper"), self.constraint)

    def __repr__(self) -> str:
        def show(bound: BoundsType) -> str:
            return repr(bound) if not isinstance(bound, Tensor) else f"tensor{tuple(bound.shape)}"

        return f"Box({show(self.lower)}, {show(self.upper)}, constraint={self.constraint!r})"


def as_box(domain: Box | tuple[BoundsType, BoundsType] | None) -> Box | None:
    """Accepts None, a `Box`, or a `(lower, upper)` pair (then with the "freeze" constraint)."""
    if domain is None or isinstance(domain, Box):
        return domain
    if isinstance(domain, tuple) and len(domain) == 2:
        return Box(*domain)
    raise TypeError(
        f"`domain` must be None, a Box or a (lower, upper) pair, got {type(domain).__name__}."
    )


@dataclass(frozen=True)
class BoundBox:
    """A `Box` bound to the flat coordinates of a walk: `lower`, `upper` of shape (n,).

    A coordinate within `slack` (a few ulps of the bound's magnitude) of a bound counts as on
    it, so that rounding never leaves a coordinate a hair inside a bound, where it would cut
    every later step short.
    """

    lower: Tensor
    upper: Tensor
    constraint: str = "freeze"

    @property
    def freezes(self) -> bool:
        return self.constraint == "freeze"

    @property
    def slack(self) -> Tensor:
        scale = torch.maximum(self.lower.abs(), self.upper.abs()).clamp_min(1.0)
        return 64 * torch.finfo(self.lower.dtype).eps * scale

    def check_inside(self, flat: Tensor) -> None:
        """Raises ValueError if some start point lies outside the box."""
        outside = ((flat < self.lower) | (flat > self.upper)).any(dim=1)
        if outside.any():
            examples = outside.nonzero().flatten().tolist()[:10]
            raise ValueError(
                f"`inputs` {examples} lie outside the `domain` box; start inside it (clip the "
                "inputs to the box first) or widen the box."
            )

    def _at_lower(self, x: Tensor) -> Tensor:
        return x <= self.lower + self.slack

    def _at_upper(self, x: Tensor) -> Tensor:
        return x >= self.upper - self.slack

    def at_bound(self, x: Tensor) -> Tensor:
        """Coordinates on a bound (batch, n)."""
        return self._at_lower(x) | self._at_upper(x)

    def outward(self, x: Tensor, step: Tensor) -> Tensor:
        """Coordinates on a bound that `step` would push out of the box (batch, n)."""
        return (self._at_lower(x) & (step < 0)) | (self._at_upper(x) & (step > 0))

    def leaving(self, x: Tensor, step: Tensor) -> Tensor:
        """Coordinates that `step` pushes out of the box, from a bound or across one (batch, n)."""
        moved = x + step
        return self.outward(x, step) | (moved < self.lower) | (moved > self.upper)

    def clamp(self, x: Tensor) -> Tensor:
        return torch.maximum(torch.minimum(x, self.upper), self.lower)

    def advance(self, x: Tensor, step: Tensor) -> tuple[Tensor, Tensor]:
        """Takes `step` from `x` inside the box.

        "freeze": the step is scaled by the largest `t <= 1` with `x + t step` in the box, and
        the coordinates that reach a bound (within `slack`) are set exactly on it. "clamp":
        `x + step` is clipped to the box.

        Returns:
            The new points (batch, n) and the fraction `t` of the step taken (batch,); for
            "clamp", `t` is 0 where clipping changed the step, else 1.
        """
        moved = x + step
        if not self.freezes:
            clamped = self.clamp(moved)
            return clamped, (clamped == moved).all(dim=1).to(x.dtype)
        room = torch.where(step > 0, self.upper - x, torch.where(step < 0, self.lower - x, 0.0))
        ratio = torch.where(step != 0, room / step, torch.inf).clamp_min(0.0)
        fraction = ratio.amin(dim=1, keepdim=True).clamp(0.0, 1.0)
        moved = x + fraction * step
        moved = torch.where(self._at_lower(moved) & (step < 0), self.lower, moved)
        moved = torch.where(self._at_upper(moved) & (step > 0), self.upper, moved)
        return self.clamp(moved), fraction.squeeze(1)
