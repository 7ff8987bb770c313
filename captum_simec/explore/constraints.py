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

Start points may sit a rounding error outside the box: data normalised in float32 as
``(x - mean) / std`` and bounds computed the same way in Python floats differ by an ulp. A
start point within `ULPS` units in the last place of a bound (in the coarser of the input's
and the bound's precision, at the box's scale `max(|lower|, |upper|)`) is clipped onto it;
one farther out is refused, with how far out it lies.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from itertools import accumulate

import torch
from torch import Tensor

__all__ = ["CONSTRAINTS", "ULPS", "BoundBox", "Box", "as_box", "rounding_tolerance"]

CONSTRAINTS = ("freeze", "clamp")

ULPS = 4
"""Start points within this many units in the last place of a bound count as on it."""

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
        # Python numbers keep their float64 precision (the default dtype would round them)
        tensor = (
            part.detach() if isinstance(part, Tensor) else torch.tensor(part, dtype=torch.float64)
        )
        if tensor.is_complex() or not torch.isfinite(tensor.double()).all():
            raise ValueError(f"`domain` {name} must be finite real numbers.")
        tensors.append(tensor.double())
    return tuple(tensors)


def rounding_tolerance(
    lower: Tensor | None, upper: Tensor | None, dtype: torch.dtype, bound_eps: float = 0.0
) -> Tensor:
    """How far outside a bound a point may lie and count as on it: `ULPS` units in the last
    place of the box's scale `max(|lower|, |upper|)`, in the coarser of `dtype` and the
    bounds' own precision `bound_eps` (a missing side counts as 0).
    """
    eps = max(torch.finfo(dtype).eps, bound_eps)
    sides = [side.abs() for side in (lower, upper) if side is not None]
    scale = torch.maximum(*sides) if len(sides) == 2 else sides[0]
    return ULPS * eps * scale


def _precision(bound: BoundsType) -> float:
    """Machine epsilon of the coarsest part of `bound` (Python numbers are float64)."""
    parts = bound if isinstance(bound, tuple) else (bound,)
    return max(
        torch.finfo(part.dtype).eps
        if isinstance(part, Tensor) and part.is_floating_point()
        else torch.finfo(torch.float64).eps
        for part in parts
    )


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
        """Flattens the bounds to the walk's flat coordinates (length n).

        The start-point tolerance is `ULPS * eps * max(|lower|, |upper|)` per feature, with
        `eps` the machine epsilon of the coarser of `dtype` and the bounds' own precision.
        """

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

        lower, upper = flat(self.lower, "lower"), flat(self.upper, "upper")
        precision = max(_precision(self.lower), _precision(self.upper))
        tolerance = rounding_tolerance(lower, upper, dtype, precision)
        return BoundBox(lower, upper, self.constraint, tolerance, tuple(input_shapes))

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
    every later step short. A start point within `tolerance` (n,) outside a bound is clipped
    onto it by `check_inside`; `shapes`, the per-example input shapes, name the features of
    points farther out.
    """

    lower: Tensor
    upper: Tensor
    constraint: str = "freeze"
    tolerance: Tensor | None = None
    shapes: tuple[torch.Size, ...] | None = None

    @property
    def freezes(self) -> bool:
        return self.constraint == "freeze"

    @property
    def slack(self) -> Tensor:
        scale = torch.maximum(self.lower.abs(), self.upper.abs()).clamp_min(1.0)
        return 64 * torch.finfo(self.lower.dtype).eps * scale

    def outside(self, flat: Tensor) -> Tensor:
        """Which points (batch, n) lie farther than `tolerance` outside the box (batch,)."""
        excess = torch.maximum(self.lower - flat, flat - self.upper)
        allowed = 0.0 if self.tolerance is None else self.tolerance
        return (excess > allowed).any(dim=1)

    def check_inside(self, flat: Tensor) -> Tensor:
        """Start points (batch, n) clipped onto the box, if they lie within `tolerance` of it.

        Raises:
            ValueError: some coordinate lies farther than `tolerance` outside the box; the
                message names the examples, their farthest feature and how far out it lies.
        """
        outside = self.outside(flat)
        if outside.any():
            excess = torch.maximum(self.lower - flat, flat - self.upper)
            raise ValueError(self._outside_message(flat, excess, outside))
        return self.clamp(flat)

    def _outside_message(self, flat: Tensor, excess: Tensor, outside: Tensor) -> str:
        examples = outside.nonzero().flatten().tolist()
        worst = excess.argmax(dim=1)
        lines = []
        for example in examples[:5]:
            i = int(worst[example])
            below = bool(flat[example, i] < self.lower[i])
            side, value = (
                ("below the lower", self.lower[i]) if below else ("above the upper", self.upper[i])
            )
            lines.append(
                f"example {example}, {self._feature_name(i)}: {float(excess[example, i]):.4g} "
                f"{side} bound {float(value):.6g}"
            )
        more = f" (and {len(examples) - 5} more examples)" if len(examples) > 5 else ""
        tolerance = 0.0 if self.tolerance is None else float(self.tolerance.max())
        return (
            f"`inputs` lie outside the `domain` box: {'; '.join(lines)}{more}. Points within "
            f"{tolerance:.2g} ({ULPS} ulps: rounding) of a bound are clipped onto it; these are "
            "farther out. Start inside the box (clip the inputs to it first) or widen the box."
        )

    def _feature_name(self, index: int) -> str:
        """`feature (c, h, w)` of a flat coordinate, with `of input k` for tuple inputs."""
        if self.shapes is None:
            return f"flat feature {index}"
        starts = list(accumulate((shape.numel() for shape in self.shapes), initial=0))
        k = bisect_right(starts, index) - 1
        position = torch.unravel_index(torch.tensor(index - starts[k]), self.shapes[k])
        name = f"feature {tuple(int(p) for p in position)}"
        return name if len(self.shapes) == 1 else f"{name} of input {k}"

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
