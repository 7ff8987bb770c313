"""Input checks shared by the attacks (and the audit), and the validated rows an attack runs on.

A value of the wrong type raises `TypeError`, a wrong value `ValueError` (the rule of
:mod:`captum_simec._validation`, whose checks are used here).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from captum_simec import _compat
from captum_simec._validation import (
    check_callable,
    check_choice,
    check_input_tensor,
    check_labels,
)
from captum_simec.explore.constraints import ULPS, rounding_tolerance
from captum_simec.geometry import model_outputs
from captum_simec.geometry.jacobian import check_eval_mode

NORMS = ("L2", "Linf")


def check_norm(norm: Any) -> str:
    """``"L2"`` or ``"Linf"`` from any capitalisation of either."""
    return check_choice(norm, "norm", NORMS, ignore_case=True)


def check_classifier(model: Any) -> None:
    """A callable model, and not a module in training mode (the numbers describe it deployed).

    Raises:
        TypeError: `model` cannot be called.
        ValueError: `model` is a module in training mode.
    """
    check_callable(model, "model")
    check_eval_mode(model, strict=True)


def classifier_logits(model: Callable[..., Tensor], x: Tensor, args: tuple[Any, ...]) -> Tensor:
    """``model(x, *args)``, detached, checked to be finite ``(batch, classes)`` scores.

    Evaluated as the gradients are (`model_outputs`: grad mode, so that a fused inference
    path cannot decide differently), refusing layers in training mode.

    Raises:
        ValueError: the model returns something else than a finite (batch, classes >= 2)
            tensor.
    """
    logits = model_outputs(model, (x,), args)
    batch = x.shape[0]
    if (
        not isinstance(logits, Tensor)
        or logits.dim() != 2
        or logits.shape[0] != batch
        or logits.shape[1] < 2
    ):
        shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise ValueError(
            f"`model` returned {shape} for a batch of {batch}; it must return (batch, classes) "
            "scores with classes >= 2: wrap the model so that it returns logits."
        )
    if not bool(torch.isfinite(logits).all()):
        raise ValueError("`model` returned NaN or inf scores on the clean inputs.")
    return logits


def check_bound(bound: float | Tensor | None, x0: Tensor, name: str) -> Tensor | None:
    """A domain bound as a tensor that broadcasts to the inputs' shape (None stays None).

    Raises:
        TypeError: neither None, a number nor a tensor.
        ValueError: a shape that does not broadcast to the inputs, or NaN.
    """
    if bound is None:
        return None
    if isinstance(bound, bool) or not isinstance(bound, int | float | Tensor):
        raise TypeError(f"`{name}` must be None, a number or a tensor, got {type(bound).__name__}.")
    b = torch.as_tensor(bound, dtype=x0.dtype, device=x0.device)
    try:
        shape = torch.broadcast_shapes(b.shape, x0.shape)
    except RuntimeError:
        shape = None
    if shape != x0.shape:
        raise ValueError(
            f"`{name}` of shape {tuple(b.shape)} does not broadcast to the inputs' shape "
            f"{tuple(x0.shape)}; pass a scalar, a per-feature tensor of shape "
            f"{tuple(x0.shape[1:])}, or one of the inputs' shape."
        )
    if bool(torch.isnan(b).any()):
        raise ValueError(f"`{name}` contains NaN.")
    return b.detach()


def check_box(x0: Tensor, lower: Tensor | None, upper: Tensor | None) -> Tensor:
    """The clean inputs clipped onto the box ``[lower, upper]``, checked to lie in it.

    Inputs within a rounding error of a bound (`rounding_tolerance`, as the walks accept
    their start points) are clipped onto it.

    Raises:
        ValueError: ``lower > upper`` somewhere, or inputs farther outside the box.
    """
    if lower is not None and upper is not None and bool((lower > upper).any()):
        raise ValueError("`lower_bound` exceeds `upper_bound` somewhere; swap or fix the bounds.")
    if lower is None and upper is None:
        return x0
    tolerance = rounding_tolerance(lower, upper, x0.dtype)
    excess = torch.zeros_like(x0)
    if lower is not None:
        excess = torch.maximum(excess, lower - x0)
    if upper is not None:
        excess = torch.maximum(excess, x0 - upper)
    if bool((excess > tolerance).any()):
        raise ValueError(
            f"`inputs` lie outside [lower_bound, upper_bound] (by up to {float(excess.max()):.3g}, "
            f"more than rounding: {ULPS} ulps of the bounds); clip the inputs or widen the "
            "bounds."
        )
    return clip(x0, lower, upper)


def predictions(model: Callable[..., Tensor], x: Tensor, args: tuple[Any, ...]) -> Tensor:
    """The predicted classes at ``x`` (n,), from outputs computed as the gradients are."""
    return model_outputs(model, (x,), args).argmax(dim=1)


def clip(x: Tensor, lower: Tensor | None, upper: Tensor | None) -> Tensor:
    """``x`` clipped to the box ``[lower, upper]`` (None: unbounded on that side)."""
    if lower is not None:
        x = torch.maximum(x, lower)
    if upper is not None:
        x = torch.minimum(x, upper)
    return x


def per_example(v: Tensor, like: Tensor) -> Tensor:
    """A ``(n,)`` per-example vector reshaped to broadcast over ``like`` of shape (n, ...)."""
    return v.view(-1, *([1] * (like.dim() - 1)))


def _take_bound(bound: Tensor | None, index: Tensor, x0: Tensor) -> Tensor | None:
    """Rows ``index`` of a bound broadcast against the full batch ``x0``."""
    if bound is None:
        return None
    if bound.dim() == x0.dim() and bound.shape[0] == x0.shape[0] and x0.shape[0] > 1:
        return bound[index]
    return bound


@dataclass
class Rows:
    """What an attack runs on: the examples, or (example, target class) pairs, with their data.

    Attributes:
        example: index into the batch of each row (R,).
        x0: clean inputs (R, ...).
        labels: classes to move away from (R,).
        clean_pred: predictions on ``x0`` (R,).
        targets: the class each row ascends towards (R,), or None (untargeted).
        args: additional forward arguments; tensors with a batch dimension follow the rows.
        lower: domain lower bound, per row where it was given per example, or None.
        upper: domain upper bound, same forms as ``lower``.
    """

    example: Tensor
    x0: Tensor
    labels: Tensor
    clean_pred: Tensor
    targets: Tensor | None
    args: tuple[Any, ...]
    lower: Tensor | None
    upper: Tensor | None

    def take(self, index: Tensor) -> Rows:
        """The rows ``index`` (a long tensor into these rows)."""
        return Rows(
            example=self.example[index],
            x0=self.x0[index],
            labels=self.labels[index],
            clean_pred=self.clean_pred[index],
            targets=None if self.targets is None else self.targets[index],
            args=_compat.index_additional_forward_args(self.args, index, self.x0.shape[0]),
            lower=_take_bound(self.lower, index, self.x0),
            upper=_take_bound(self.upper, index, self.x0),
        )


def prepare_rows(
    model: Callable[..., Tensor],
    inputs: Tensor,
    labels: Tensor | Sequence[int] | None,
    lower_bound: float | Tensor | None,
    upper_bound: float | Tensor | None,
    additional_forward_args: Any,
) -> tuple[Rows, Tensor]:
    """The validated batch, one row per example, and its clean logits.

    The labels default to the model's predictions on the clean inputs.

    Raises:
        TypeError / ValueError: from the checks above, or an empty batch.
    """
    check_classifier(model)
    x0 = check_input_tensor(inputs, "inputs").detach().clone()
    if x0.shape[0] == 0:
        raise ValueError("`inputs` has an empty batch (dim 0); pass at least one example.")
    args = _compat.format_additional_forward_args(additional_forward_args) or ()
    lower = check_bound(lower_bound, x0, "lower_bound")
    upper = check_bound(upper_bound, x0, "upper_bound")
    x0 = check_box(x0, lower, upper)
    logits = classifier_logits(model, x0, args)
    clean_pred = logits.argmax(dim=1)
    labels = check_labels(labels, x0.shape[0], num_classes=logits.shape[1])
    batch = Rows(
        example=torch.arange(x0.shape[0], device=x0.device),
        x0=x0,
        labels=clean_pred if labels is None else labels.to(x0.device),
        clean_pred=clean_pred,
        targets=None,
        args=args,
        lower=lower,
        upper=upper,
    )
    return batch, logits
