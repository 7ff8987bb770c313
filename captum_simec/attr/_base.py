"""What the input and the layer SiMEC attributions share: score names, checks, baselines.

- the score names (`SCORES`: the geometric ones from one spectrum, the walk ones from a walk,
  the path ones integrated along a walk, with a convergence delta) and the keyword options
  each takes;
- `check_request`: the checks every `attribute` call makes first, and `ScoreRequest`: its
  arguments as the score implementations read them;
- `default_output_metric`: ``"target"`` with a target, ``"euclidean"`` without (robustness:
  `TopOutputsMetric`);
- `SiMECMethod`: the Captum-facing behaviour beyond Captum's base classes (no convergence
  delta, no `attribute_future`, `multiply_by_inputs` with Captum's baselines, `times_distance`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from captum_simec.attr._robustness import TopOutputsMetric
from captum_simec.geometry.metrics import MetricSpec

__all__ = [
    "ESTIMATOR_OPTIONS",
    "GEOMETRIC_SCORES",
    "GEOMETRY_OPTIONS",
    "PATH_SCORES",
    "SCORES",
    "SCORE_OPTIONS",
    "WALK_SCORES",
    "BaselinesType",
    "InputsType",
    "ScoreRequest",
    "SiMECMethod",
    "check_options",
    "check_request",
    "check_signed",
    "default_output_metric",
    "format_baselines",
    "position_mask",
    "times_distance",
]

GEOMETRIC_SCORES = ("relevance", "robustness")
WALK_SCORES = ("flip", "class_extent")
#: scores integrated along a path: they sum to an output difference, hence a convergence delta.
PATH_SCORES = ("boundary",)
SCORES = GEOMETRIC_SCORES + WALK_SCORES + PATH_SCORES
#: keyword options of `attribute` passed to `pullback_spectrum` for the geometric scores.
GEOMETRY_OPTIONS = ("rtol", "atol", "solver", "jacobian_method")
#: the keyword options each score takes (the walk scores pass theirs to `simexp` / `simec`,
#: which check them).
#: options of the relevance's Hutchinson estimator (`captum_simec.geometry.hutchinson_relevance`).
ESTIMATOR_OPTIONS = ("estimator", "probes", "deflation_rank", "power_iterations", "seed")
SCORE_OPTIONS: dict[str, tuple[str, ...]] = {
    "relevance": GEOMETRY_OPTIONS + ESTIMATOR_OPTIONS,
    # "estimator" only to refuse it with a pointer to what works instead
    "robustness": (*GEOMETRY_OPTIONS, "domain", "estimator"),
    "boundary": (
        "n_steps",
        "max_steps",
        "max_step_size",
        "domain",
        "boundary_tol",
        "progress",
        "jacobian_method",
    ),
}

InputsType = Tensor | tuple[Tensor, ...]
BaselinesType = None | int | float | Tensor | tuple[int | float | Tensor, ...]


@dataclass(frozen=True)
class ScoreRequest:
    """One attribution request, as the score implementations read it.

    Attributes:
        forward_func: the model.
        inputs: the formatted inputs (a tuple of tensors, batch first).
        score: the score's name.
        target, additional_forward_args: as given to `attribute` (Captum's forms).
        output_metric: as given (None: `default_output_metric`).
        signed: relevance with the sign of the target derivative; flip as `x_flip - x_0`.
        internal_batch_size: most (example, output row) pairs per backward pass.
        free: bool (batch, n): the coordinates that are scored and may move (padded
            tokens are not); None: all.
        options: the score's keyword options (geometry or walk options).
    """

    forward_func: Callable[..., Any]
    inputs: tuple[Tensor, ...]
    score: str
    target: Any = None
    additional_forward_args: Any = None
    output_metric: MetricSpec | None = None
    signed: bool = False
    internal_batch_size: int | None = None
    free: Tensor | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def collect(cls, arguments: Mapping[str, Any], **overrides: Any) -> ScoreRequest:
        """The request among a method's `arguments` (its `locals()`), then `overrides`."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{**{k: v for k, v in arguments.items() if k in names}, **overrides})

    @property
    def metric(self) -> MetricSpec:
        """The output metric: `output_metric`, or its default for `target` (for robustness,
        `TopOutputsMetric` with or without a target)."""
        if self.output_metric is None and self.score == "robustness":
            return TopOutputsMetric()
        return default_output_metric(self.output_metric, self.target)


def default_output_metric(output_metric: MetricSpec | None, target: Any) -> MetricSpec:
    """The output metric used when `output_metric` is None: target-specific iff `target` is given.

    ``"target"`` (`G = e_t e_t^T`, relevance = `|df_t/dx|`) with a `target`, ``"euclidean"``
    (`G = I` on all outputs, the papers' choice) without one.
    """
    if output_metric is not None:
        return output_metric
    return "euclidean" if target is None else "target"


def format_baselines(
    baselines: BaselinesType, inputs: tuple[Tensor, ...], name: str = "baselines"
) -> tuple[Tensor, ...]:
    """Captum baselines (None = 0, a number, a tensor, or a tuple of them) as full tensors.

    Each baseline is broadcast to its input's shape: a number, a per-example tensor, a
    `(1, ...)` tensor or a tensor of the input's shape all work.

    Raises:
        ValueError: a tuple of the wrong length, or a tensor that does not broadcast.
        TypeError: a baseline that is neither a number nor a tensor.
    """
    if baselines is None:
        return tuple(torch.zeros_like(x) for x in inputs)
    parts = baselines if isinstance(baselines, tuple) else (baselines,)
    if len(parts) != len(inputs):
        raise ValueError(
            f"`{name}` has {len(parts)} element(s) for {len(inputs)} input tensor(s): give one "
            "baseline (a number or a tensor) per input."
        )
    formatted = []
    for i, (baseline, x) in enumerate(zip(parts, inputs, strict=True)):
        where = name if len(inputs) == 1 else f"{name}[{i}]"
        if isinstance(baseline, bool) or not isinstance(baseline, int | float | Tensor):
            raise TypeError(
                f"`{where}` must be a number or a tensor, got {type(baseline).__name__}."
            )
        if isinstance(baseline, Tensor):
            try:
                baseline = torch.broadcast_to(baseline.to(x.dtype), x.shape)
            except RuntimeError as error:
                raise ValueError(
                    f"`{where}` of shape {tuple(baseline.shape)} does not broadcast to the input "
                    f"shape {tuple(x.shape)}: pass a tensor of the input's shape, of shape "
                    f"(1, *{tuple(x.shape[1:])}), or a number."
                ) from error
            formatted.append(baseline.detach())
        else:
            formatted.append(torch.full_like(x, float(baseline)))
    return tuple(formatted)


def position_mask(attention_mask: Tensor | None, inputs: tuple[Tensor, ...]) -> Tensor | None:
    """The coordinates of real tokens (batch, n) from a (batch, T) attention mask, or None.

    The mask (1 or True: a token, 0: padding, as Hugging Face's `attention_mask`) marks the
    positions of a (batch, T, ...) tensor; every feature of a padded position is held fixed
    and scores 0.

    Raises:
        TypeError: a mask that is not a bool or integer tensor.
        ValueError: tuple inputs, or a mask whose shape is not the first two of the input's.
    """
    if attention_mask is None:
        return None
    if not isinstance(attention_mask, Tensor) or attention_mask.is_floating_point():
        raise TypeError(
            "`attention_mask` must be a bool or integer tensor (batch, T): 1 for a token, 0 "
            f"for padding; got {type(attention_mask).__name__}"
            + (f" of dtype {attention_mask.dtype}." if isinstance(attention_mask, Tensor) else ".")
        )
    shape = tuple(inputs[0].shape)
    if len(inputs) != 1 or len(shape) < 2 or tuple(attention_mask.shape) != shape[:2]:
        shapes = [tuple(x.shape) for x in inputs]
        raise ValueError(
            f"`attention_mask` has shape {tuple(attention_mask.shape)}, but the scored "
            f"tensor(s) have shape(s) {shapes}: the mask needs one (batch, T) entry per "
            "position of a single (batch, T, ...) tensor (the token ids, or the embeddings)."
        )
    keep = attention_mask.to(device=inputs[0].device).bool()
    return keep.reshape(*shape[:2], *([1] * (len(shape) - 2))).expand(shape).reshape(shape[0], -1)


def times_distance(scores: Tensor, distances: Tensor, signed: bool) -> Tensor:
    """`scores * (x - baseline)` when `signed`, else `scores * |x - baseline|` (flat).

    Signed, the target relevance of a linear model times `x - b` is IG's `w * (x - b)`.
    """
    return scores * (distances if signed else distances.abs()).to(scores.dtype)


def check_signed(score: str, signed: bool) -> None:
    """Refuses `signed=True` for the scores that have no sign."""
    if signed and score not in ("relevance", "flip"):
        raise ValueError(
            f"signed=True applies to score='relevance' and 'flip'; {score} has no sign (a "
            "share in [0, 1] for robustness, a distance for class_extent): drop signed=True."
        )


def check_options(
    score: str, options: dict[str, Any], allowed: tuple[str, ...] | None = None
) -> None:
    """Refuses extra keyword options that `score` does not take (`allowed`, by default
    `SCORE_OPTIONS`)."""
    allowed = SCORE_OPTIONS.get(score) if allowed is None else allowed
    unknown = [] if allowed is None else sorted(set(options) - set(allowed))
    if unknown:
        raise TypeError(
            f"attribute() got option(s) {unknown} that score={score!r} does not take; it "
            f"accepts {allowed}. Walk options (steps, step_size, seed, ...) belong to the "
            f"scores {WALK_SCORES}, the options of captum_simec.explore.boundary_path to "
            "'boundary'."
        )


def check_request(
    score: str, allowed: tuple[str, ...], return_convergence_delta: bool, options: dict[str, Any]
) -> None:
    """Refuses a score not in `allowed`, a convergence delta, and options `score` does not take.

    Only the path scores (`PATH_SCORES`) have a completeness property, hence a convergence
    delta. Captum's methods without one (Saliency, InputXGradient) do not accept the argument
    at all; these accept it so that code written for IG runs, and fail clearly when asked.
    """
    if score not in allowed:
        raise ValueError(f"score={score!r} is not supported here; choose one of {allowed}.")
    if return_convergence_delta and score not in PATH_SCORES:
        raise ValueError(
            f"return_convergence_delta=True: score={score!r} has no convergence delta (it "
            "does not sum to an output difference); only score='boundary' has one. Call "
            "attribute(..., return_convergence_delta=False) or use score='boundary'."
        )
    check_options(score, options)


class SiMECMethod:
    """What the input and the layer SiMEC attributions share beyond Captum's base classes.

    A convergence delta for the path scores (the others raise if asked for one), no
    `attribute_future`, and `multiply_by_inputs`: the scores times the distance `_DISTANCE`
    to a baseline (signed with ``signed=True``); baselines are refused where they are not
    used.
    """

    #: the distance to the baseline that `multiply_by_inputs` multiplies the scores by.
    _DISTANCE = "|x - baseline|"
    #: how to create an instance that multiplies by inputs (for the error message).
    _CONSTRUCTOR = "SiMECAttribution(model, multiply_by_inputs=True)"
    _multiply_by_inputs: bool

    @property
    def multiplies_by_inputs(self) -> bool:
        """Whether the scores are multiplied by their distance to the baseline."""
        return self._multiply_by_inputs

    def has_convergence_delta(self) -> bool:
        """True: ``score="boundary"`` returns a delta (the other scores raise if asked for one)."""
        return True

    def attribute_future(self) -> None:
        """Not implemented: SiMEC attributions are computed synchronously."""
        raise NotImplementedError(f"attribute_future is not implemented for {type(self).__name__}.")

    def _baselines(
        self, baselines: BaselinesType, inputs: tuple[Tensor, ...], score: str
    ) -> tuple[Tensor, ...] | None:
        """Full baselines when the scores are multiplied by inputs, else None.

        Raises:
            ValueError: `baselines` given to an instance that does not multiply by inputs; a
                path score (already an integral from its own baseline) on an instance that
                does.
        """
        if self.multiplies_by_inputs and score in PATH_SCORES:
            raise ValueError(
                f"score={score!r} is already a path integral from x_end to x (it sums to "
                "f_t(x) - f_t(x_end)), so multiply_by_inputs does not apply: use an instance "
                "created with multiply_by_inputs=False for it."
            )
        if self.multiplies_by_inputs:
            return format_baselines(baselines, inputs)
        if baselines is not None:
            raise ValueError(
                f"`baselines` are used only to multiply by {self._DISTANCE}; this instance "
                f"has multiply_by_inputs=False. Create {self._CONSTRUCTOR} or drop `baselines`."
            )
        return None
