"""The walk scores: what a walk from the example says about each feature (method.md §4).

- ``flip``: `|x_flip,i - x_0,i|`, the displacement of a SiMExp walk that changes the model's
  decision about `target` (what the model needs changed);
- ``class_extent``: `max_k |x_k,i - x_0,i|` over a seeded SiMEC walk inside the class.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from captum_simec import _compat
from captum_simec._outputs import check_output
from captum_simec.attr._base import ScoreRequest, check_signed
from captum_simec.attr._binary import BinaryLogit
from captum_simec.explore import simec, simexp
from captum_simec.geometry import model_outputs
from captum_simec.geometry.decisions import num_classes, predicted_class

__all__ = ["WALK_DEFAULTS", "class_extent", "flip_displacement", "walk_score"]

#: walk settings used unless `attribute(**options)` overrides them.
WALK_DEFAULTS: dict[str, dict[str, Any]] = {
    "flip": {"steps": 500, "step_size": 0.05, "progress": False},
    "class_extent": {"steps": 100, "step_size": 0.01, "seed": 0, "progress": False},
}


def _subset(
    inputs: tuple[Tensor, ...], args: tuple[Any, ...] | None, settings: dict[str, Any], rows: Tensor
) -> tuple[tuple[Tensor, ...], tuple[Any, ...], dict[str, Any]]:
    """The examples `rows`: their inputs, additional arguments and walk settings."""
    batch = inputs[0].shape[0]
    extra = _compat.index_additional_forward_args(args, rows, batch)
    if settings.get("free") is not None:
        settings = {**settings, "free": settings["free"][rows]}
    return tuple(x[rows] for x in inputs), extra, settings


def _captum_targets(flat: Tensor, output_shape: tuple[int, ...]) -> list[Any]:
    """Flat output indices as Captum targets: ints, or tuples for multi-dimensional outputs."""
    if len(output_shape) <= 1:
        return flat.tolist()
    return list(zip(*(i.tolist() for i in torch.unravel_index(flat, output_shape)), strict=True))


def flip_displacement(
    forward_func: Callable[..., Any],
    inputs: tuple[Tensor, ...],
    args: tuple[Any, ...] | None,
    outputs: Tensor,
    target: Tensor | None,
    settings: dict[str, Any],
) -> Tensor:
    """`x_flip - x_0` (batch, n): the change that flips the model's decision about `target`.

    Examples whose target is the predicted class (or without a target) walk down its margin
    until the class changes (SiMExp ``"leave_class"``); the others walk up the margin of
    their target until it is predicted (``"to_class"``). Both walks are deterministic, so the
    batch splits without changing any example's result. A one-output model is read as a
    binary logit (`[0, f]`, decision `f > 0`). For (T, V) sequence outputs and a target
    `(t, v)` the decision is the argmax at position t (`captum_simec.geometry.decisions`).
    """
    batch, shape = outputs.shape[0], tuple(outputs.shape[1:])
    if outputs[0].numel() == 1:
        forward_func, target, shape = BinaryLogit(forward_func), None, (2,)
    predicted = predicted_class(outputs.reshape(batch, -1), num_classes(shape), target)
    leave = torch.ones_like(predicted, dtype=torch.bool) if target is None else target == predicted
    displacement = torch.zeros(
        batch, sum(x[0].numel() for x in inputs), dtype=inputs[0].dtype, device=inputs[0].device
    )
    unfinished: set[str] = set()
    for mode, rows, done in (
        ("leave_class", leave.nonzero().flatten(), "class_change"),
        ("to_class", (~leave).nonzero().flatten(), "class_reached"),
    ):
        if rows.numel() == 0:
            continue
        points, extra, chosen_settings = _subset(inputs, args, settings, rows)
        chosen = None if target is None else _captum_targets(target[rows], shape)
        classes = {"target": chosen} if mode == "leave_class" else {"target_class": chosen}
        walk = simexp(
            forward_func,
            points,
            mode=mode,
            additional_forward_args=extra,
            **classes,
            **chosen_settings,
        )
        displacement[rows] = walk.points_flat[-1] - walk.points_flat[0]
        unfinished |= {reason for reason in walk.stop_reason if reason != done}
    if unfinished:
        warnings.warn(
            f"score='flip': some examples stopped before their decision changed (stop reasons "
            f"{sorted(unfinished)}; steps={settings['steps']}, step_size="
            f"{settings['step_size']}); their score is the displacement so far, a lower bound "
            "along this path. Raise `steps` or `step_size` (or check `domain`).",
            stacklevel=4,
        )
    return displacement


def class_extent(
    forward_func: Callable[..., Any],
    inputs: tuple[Tensor, ...],
    args: tuple[Any, ...] | None,
    target: _compat.TargetType,
    settings: dict[str, Any],
) -> Tensor:
    """`max_k |x_k - x_0|` (batch, n) over a seeded SiMEC walk inside each example's class.

    The walk is random: every example walks with the same `seed`, so that its score does
    not depend on the rest of the batch.
    """
    batch = inputs[0].shape[0]
    seed = settings.get("seed")
    if seed is not None and not isinstance(seed, list | tuple):
        settings = {**settings, "seed": [seed] * batch}
    walk = simec(forward_func, inputs, target=target, additional_forward_args=args, **settings)
    return walk.max_abs_flat


def walk_score(request: ScoreRequest) -> Tensor:
    """Flip displacement or class extent (batch, n); any Captum target form is accepted.

    For the flip, the target is resolved to flat output indices (classes);
    `request.options` override `WALK_DEFAULTS`.
    """
    check_signed(request.score, request.signed)
    settings = {**WALK_DEFAULTS[request.score], **request.options, "free": request.free}
    if request.output_metric is not None:
        settings["output_metric"] = request.output_metric
    model, inputs, target = request.forward_func, request.inputs, request.target
    args = _compat.format_additional_forward_args(request.additional_forward_args)
    if request.score == "class_extent":
        return class_extent(model, inputs, args, target, settings)
    outputs = check_output(model_outputs(model, inputs, args), inputs[0].shape[0])  # as the walk
    flat_target = _compat.target_to_flat_indices(target, outputs.shape, inputs[0].device)
    displacement = flip_displacement(model, inputs, args, outputs, flat_target, settings)
    return displacement if request.signed else displacement.abs()
