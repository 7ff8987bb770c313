"""`SiMECAttribution`: per-feature scores of the singular pullback metric, as a Captum method.

For one example with Jacobian `J` and output metric `G = C^T C`, the pullback metric is
`g = J^T G J = A^T A` with `A = C J` (method.md section 1). The scores, per input feature `i`:

- ``relevance``: `rho_i = sqrt(g_ii) = ||A e_i||`, how far the output (measured by `G`) moves
  per unit move of feature `i`; with a target and the default metric this is exactly
  `Saliency(abs=True)`;
- ``robustness``: `kappa_i = ||P_N e_i||^2 = 1 - sum_{k<=r} v_ki^2` in [0, 1], the share of a
  move of feature `i` that the equivalence class absorbs (1: locally invariant);
- ``flip``: `|x_flip,i - x_0,i|`, the displacement of a SiMExp walk that changes the model's
  decision about `target` (what the model needs changed);
- ``class_extent``: `max_k |x_k,i - x_0,i|` over a seeded SiMEC walk inside the class;
- ``boundary``: `a_i = int_{x_end}^{x} df_t/dx_i dgamma_i` along the SiMExp path out of the
  class (`captum_simec.attr.boundary`), with a convergence delta.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from captum.attr import GradientAttribution
from captum.log import log_usage
from torch import Tensor, nn

from captum_simec import _compat
from captum_simec.attr.binary import BinaryLogit
from captum_simec.attr.boundary import boundary_scores
from captum_simec.attr.robustness import TopOutputsMetric, box_robustness
from captum_simec.explore import simec, simexp
from captum_simec.geometry import (
    OutputMetric,
    PullbackSpectrum,
    TargetMetric,
    pullback_spectrum,
    resolve_output_metric,
)

__all__ = [
    "DELTA_SCORES",
    "GEOMETRIC_SCORES",
    "SCORES",
    "WALK_SCORES",
    "Explanation",
    "SiMECAttribution",
    "default_output_metric",
    "explain",
]

GEOMETRIC_SCORES = ("relevance", "robustness")
WALK_SCORES = ("flip", "class_extent")
#: scores with a completeness property, hence a convergence delta.
DELTA_SCORES = ("boundary",)
SCORES = GEOMETRIC_SCORES + WALK_SCORES + DELTA_SCORES
#: keyword options of `attribute` passed to `pullback_spectrum` for the geometric scores.
GEOMETRY_OPTIONS = ("rtol", "atol", "solver", "jacobian_method")

#: walk settings used unless `attribute(**options)` overrides them.
WALK_DEFAULTS: dict[str, dict[str, Any]] = {
    "flip": {"steps": 500, "step_size": 0.05, "progress": False},
    "class_extent": {"steps": 100, "step_size": 0.01, "seed": 0, "progress": False},
}

MetricSpec = str | OutputMetric | Tensor | Callable[[Tensor], Tensor]
InputsType = Tensor | tuple[Tensor, ...]
BaselinesType = None | int | float | Tensor | tuple[int | float | Tensor, ...]


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


def times_distance(scores: Tensor, distances: Tensor, signed: bool) -> Tensor:
    """`scores * (x - baseline)` when `signed`, else `scores * |x - baseline|` (flat, same shape).

    Signed, the target relevance of a linear model times `x - b` is IG's `w * (x - b)`.
    """
    return scores * (distances if signed else distances.abs()).to(scores.dtype)


def _check_signed(score: str, signed: bool) -> None:
    if signed and score not in ("relevance", "flip"):
        raise ValueError(
            f"signed=True applies to score='relevance' and 'flip'; {score} has no sign (a "
            "share in [0, 1] for robustness, a distance for class_extent): drop signed=True."
        )


def spectrum_scores(
    forward_func: Callable[..., Any],
    inputs: tuple[Tensor, ...],
    *,
    score: str,
    target: Any,
    additional_forward_args: Any,
    output_metric: MetricSpec | None,
    signed: bool,
    internal_batch_size: int | None,
    layer: nn.Module | None = None,
    attribute_to_layer_input: bool = False,
    geometry_options: dict[str, Any] | None = None,
) -> tuple[Tensor, PullbackSpectrum]:
    """Flat relevance or robustness (batch, n) and the spectrum it came from.

    The metric is `default_output_metric(output_metric, target)` for relevance and
    `TopOutputsMetric` for robustness; with `layer`, `n` counts the layer's neurons. A
    ``domain`` in `geometry_options` makes robustness box-aware (`box_robustness`).
    ``signed`` relevance is `rho_i sign(df_t/dx_i)`; the target gradient
    is the factor itself for the ``"target"`` metric, else one more backward pass.
    """
    _check_signed(score, signed)
    options = dict(geometry_options or {})
    domain = options.pop("domain", None)
    if domain is not None and layer is not None:
        raise ValueError(
            "`domain` (box-aware robustness) applies to input features, not to a layer's "
            "neurons: drop it for LayerSiMECAttribution."
        )
    if score == "robustness" and output_metric is None:
        output_metric = TopOutputsMetric()
    metric = resolve_output_metric(default_output_metric(output_metric, target))
    common = dict(
        target=target,
        additional_forward_args=additional_forward_args,
        layer=layer,
        attribute_to_layer_input=attribute_to_layer_input,
        internal_batch_size=internal_batch_size,
        **options,
    )
    spectrum = pullback_spectrum(forward_func, inputs, output_metric=metric, **common)
    if score == "robustness" and domain is not None:
        return box_robustness(spectrum.relevance(), inputs, domain), spectrum
    if score == "robustness":
        return spectrum.robustness(), spectrum
    relevance = spectrum.relevance()
    if signed:
        outputs = spectrum.outputs
        if target is None and outputs[0].numel() > 1:
            raise ValueError(
                "signed=True takes the sign of the target output's derivative, but `target` "
                f"is None and the model has {outputs[0].numel()} outputs per example: pass "
                "target=..."
            )
        gradient_of = (
            spectrum
            if isinstance(metric, TargetMetric)
            else pullback_spectrum(forward_func, inputs, output_metric="target", **common)
        )
        relevance = relevance * gradient_of.factor[:, 0].sign().to(relevance.dtype)
    return relevance, spectrum


def check_options(score: str, options: dict[str, Any]) -> None:
    """Refuses extra keyword options that `score` does not take (geometry vs walk options)."""
    if score in GEOMETRIC_SCORES:
        allowed = GEOMETRY_OPTIONS + (("domain",) if score == "robustness" else ())
        unknown = sorted(set(options) - set(allowed))
        if unknown:
            raise TypeError(
                f"attribute() got option(s) {unknown} that score={score!r} does not take; "
                f"the geometric scores accept {GEOMETRY_OPTIONS} (robustness also `domain`), "
                "walk options (steps, step_size, domain, seed, ...) belong to the scores "
                f"{WALK_SCORES + DELTA_SCORES}."
            )


def check_request(
    score: str, allowed: tuple[str, ...], return_convergence_delta: bool, options: dict[str, Any]
) -> None:
    """Refuses a score not in `allowed`, a convergence delta, and options `score` does not take.

    Only the scores in `DELTA_SCORES` have a completeness property, hence a convergence
    delta. Captum's methods without one (Saliency, InputXGradient) do not accept the argument
    at all; these accept it so that code written for IG runs, and fail clearly when asked.
    """
    if score not in allowed:
        raise ValueError(f"score={score!r} is not supported here; choose one of {allowed}.")
    if return_convergence_delta and score not in DELTA_SCORES:
        raise ValueError(
            f"return_convergence_delta=True: score={score!r} has no convergence delta (it "
            "does not sum to an output difference); only score='boundary' has one. Call "
            "attribute(..., return_convergence_delta=False) or use score='boundary'."
        )
    check_options(score, options)


class SiMECMethod:
    """What the input and the layer SiMEC attributions share beyond Captum's base classes.

    No convergence delta, no `attribute_future`, and `multiply_by_inputs`: the scores times
    the distance `_DISTANCE` to a baseline; baselines are refused where they are not used.
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
        """False: the scores carry no completeness property, hence no convergence delta."""
        return False

    def attribute_future(self) -> None:
        """Not implemented: SiMEC attributions are computed synchronously."""
        raise NotImplementedError(f"attribute_future is not implemented for {type(self).__name__}.")

    def _baselines(
        self, baselines: BaselinesType, inputs: tuple[Tensor, ...]
    ) -> tuple[Tensor, ...] | None:
        """Full baselines when the scores are multiplied by inputs, else None.

        Raises:
            ValueError: `baselines` given to an instance that does not multiply by inputs.
        """
        if self.multiplies_by_inputs:
            return format_baselines(baselines, inputs)
        if baselines is not None:
            raise ValueError(
                f"`baselines` are used only to multiply by {self._DISTANCE}; this instance "
                f"has multiply_by_inputs=False. Create {self._CONSTRUCTOR} or drop `baselines`."
            )
        return None


class SiMECAttribution(SiMECMethod, GradientAttribution):
    r"""Per-feature scores of the singular Riemannian pullback metric (Benfenati & Marta).

    For an example `x` with Jacobian `J = df/dx` and an output metric `G = C^T C`, the pullback
    metric is `g = J^T G J = A^T A` with `A = C J` (thin, never the n x n matrix). Scores:

    - ``"relevance"`` `rho_i = sqrt(g_ii) = ||A e_i||`: output motion (in `G`) per unit move
      of feature `i`. ``signed=True`` multiplies by `sign(df_t/dx_i)`. **With a target and
      the default metric this is Saliency**: `|df_t/dx_i|`, bit for bit
      `Saliency(abs=True)`; the geometry adds nothing to it.
    - ``"robustness"`` `kappa_i = ||P_N e_i||^2 = 1 - sum_{k<=r} v_ki^2` in [0, 1], with
      `v_k` the right singular vectors of `A` above the rank tolerance: the share of a move of
      feature `i` absorbed by the equivalence class (1 = locally invariant, 0 = every move
      changes the output); `sum_i (1 - kappa_i) = rank g`. High means *unimportant*. Its
      default metric is `TopOutputsMetric` (`G = I` on the predicted class and its two
      runners-up), with or without a target; ``domain=(lo, hi)`` gives the box-aware score
      `1 - r_i / max_j r_j`, `r_i = sqrt(g_ii E[(u_i - x_i)^2])` for `u_i` uniform in the box
      (`captum_simec.attr.robustness`).
    - ``"flip"`` `|x_flip,i - x_0,i|`: what the model needs changed to change its decision
      about `target`. Where `target` is the predicted class (or None), a SiMExp walk goes
      down its margin `f_t - max_{j != t} f_j` (the top non-null direction of the margin
      metric) until the predicted class changes; for another class, up that class's margin
      until it is predicted. The crossing is refined by bisection. ``signed=True`` returns
      `x_flip - x_0`. A one-output model is read as a binary logit (decision `f > 0`).
    - ``"class_extent"`` `max_k |x_k,i - x_0,i|`: how far each feature travels on a short
      seeded SiMEC walk inside the class (output fixed); like robustness, high means the
      class absorbs that feature (*unimportant*).
    - ``"boundary"`` `a_i = int_{x_end}^{x} df_t/dx_i dgamma_i` along the SiMExp path that
      leaves the class (down the target's margin, inside ``domain``) to just across the
      decision boundary: `sum_i a_i = f_t(x) - f_t(x_end)`, and
      ``return_convergence_delta=True`` returns the quadrature gap. Signed, like IG (the
      ``signed`` flag does not change it). Options: ``n_steps`` (32), ``max_steps``,
      ``max_step_size``, ``domain`` (see `captum_simec.attr.boundary.boundary_path`).

    Which score for what:

    - cheap sensitivity: ``"relevance"`` (one backward pass; Saliency with a target);
    - faithful relevance: ``"boundary"`` (1.4x the time of IG with 50 steps on the digits
      CNN; in ``benchmarks/bench_evaluation.py`` it beats Saliency and IG on deletion and
      insertion with uniform-noise and training-mean baselines on all three models and on
      ROAD on two of them; IG from black wins deletion to black, its own baseline);
    - invariance, which features the prediction ignores: ``"robustness"``, box-aware with
      ``domain`` (the invariance curve in `captum_simec.evaluation` measures it);
    - what must change to change the decision: ``"flip"``.

    Class-agnostic versus target-specific. The default ``output_metric=None`` resolves to
    ``"target"`` (`G = e_t e_t^T`) when `target` is given and to ``"euclidean"`` (`G = I` on
    all outputs, the papers' choice) when not, so a Captum user who passes `target` gets a
    target-specific map; with ``"target"``, relevance equals ``Saliency(abs=True)`` exactly.
    With a metric on all outputs (``"euclidean"``, ``"fisher"``, ``"topk"``) relevance and
    robustness do not depend on `target`: they say how much the *whole* output moves, and
    Adebayo et al.'s random-logit sanity check cannot pass for them, by construction.
    ``"target"``, ``"margin"`` (target minus runner-up) and ``flip`` are target-specific;
    ``class_extent`` follows its metric (class-agnostic with the default ``"euclidean"``).

    Why ``"target"`` is the default (deletion AUC, `captum_simec.evaluation`, softmax
    probability of the predicted class, 20 steps, 64 test digits; black / uniform / mean
    baselines; lower is better):

    ==================  =========================  ==========================
    map                 MLP 64-64-64, 8x8 digits   PaperMNISTCNN, 28x28 digits
    ==================  =========================  ==========================
    "target" (Saliency) 0.126 / 0.235 / 0.170      0.205 / 0.453 / 0.375
    "margin"            0.218 / 0.302 / 0.325      0.202 / 0.451 / 0.377
    "euclidean"         0.252 / 0.275 / 0.325      0.167 / 0.409 / 0.331
    "fisher"            0.196 / 0.282 / 0.285      0.193 / 0.430 / 0.362
    flip                0.148 / 0.196 / 0.140      0.194 / 0.401 / 0.327
    IG, black baseline  0.039 / 0.353 / 0.137      0.040 / 0.500 / 0.096
    random order        0.499 / 0.505 / 0.585      0.605 / 0.720 / 0.777
    ==================  =========================  ==========================

    Of the target-specific metrics ``"target"`` is best or tied, and is exactly Saliency, a
    built-in cross-check. IG wins with the black baseline it integrates from (deletion to
    black favours it) and loses with a uniform-noise baseline, where flip does best.

    ``multiply_by_inputs=True`` multiplies every score by `|x - baseline|` (baselines default
    to 0), as IntegratedGradients' global attribution does, and by `x - baseline` with
    ``signed=True``: on a linear model the signed target relevance then equals IG's
    `w * (x - b)` and the unsigned one `|IG|`. ``"boundary"`` is already a path integral and
    refuses it.
    """

    def __init__(self, forward_func: Callable[..., Any], multiply_by_inputs: bool = False) -> None:
        """
        Args:
            forward_func: the model or any function of the inputs returning a tensor with the
                batch as dim 0 (logits or log-probabilities are best, see method.md).
            multiply_by_inputs: multiply the scores by `|x - baseline|` (`x - baseline` with
                ``signed=True``).
        """
        GradientAttribution.__init__(self, forward_func)
        self._multiply_by_inputs = bool(multiply_by_inputs)

    def has_convergence_delta(self) -> bool:
        """True: ``score="boundary"`` returns a delta (the other scores raise if asked for one)."""
        return True

    def _check_path_request(self, output_metric: MetricSpec | None) -> None:
        """Refuses what ``score="boundary"`` cannot honour: a metric or `multiply_by_inputs`."""
        if output_metric is not None:
            raise ValueError(
                "score='boundary' walks down the target's margin and integrates the target's "
                f"gradient; output_metric={output_metric!r} does not apply: drop it."
            )
        if self.multiplies_by_inputs:
            raise ValueError(
                "score='boundary' is already a path integral from x_end to x (it sums to "
                "f_t(x) - f_t(x_end)), so multiply_by_inputs does not apply: use "
                "SiMECAttribution(model) for it."
            )

    @log_usage()
    def attribute(
        self,
        inputs: InputsType,
        target: _compat.TargetType = None,
        additional_forward_args: Any = None,
        score: str = "relevance",
        output_metric: MetricSpec | None = None,
        baselines: BaselinesType = None,
        signed: bool = False,
        internal_batch_size: int | None = None,
        return_convergence_delta: bool = False,
        **options: Any,
    ) -> InputsType:
        """Per-feature SiMEC scores, in the structure and shape of `inputs`.

        Args:
            inputs: a tensor or a tuple of tensors, batch first (1-D allowed: a batch of
                scalars).
            target: Captum target: int, tuple (multi-dimensional outputs), tensor, list of
                ints or list of tuples. Selects the target output of ``"target"`` /
                ``"margin"`` metrics, the decision a ``flip`` walk changes, and the sign of
                ``signed`` relevance.
            additional_forward_args: extra arguments of `forward_func`, as in Captum.
            score: ``"relevance"``, ``"robustness"``, ``"flip"``, ``"class_extent"`` or
                ``"boundary"``.
            output_metric: `G` on the outputs: None (``"target"`` with a target, else
                ``"euclidean"``), ``"euclidean"``, ``"target"``, ``"margin"``, ``"topk"``,
                ``"fisher"``, an (m, m) PSD tensor, a callable or an `OutputMetric`.
            baselines: reference for ``multiply_by_inputs`` (None = 0, number, tensor, or a
                tuple for tuple inputs); only allowed when the instance multiplies by inputs.
            signed: relevance times `sign(df_t/dx_i)`; flip as `x_flip - x_0`.
            internal_batch_size: most (example, output row) pairs per backward pass.
            return_convergence_delta: with ``score="boundary"``, also return the delta
                `sum_i a_i - (f_t(x) - f_t(x_end))` per example; other scores raise.
            **options: for relevance/robustness `rtol`, `atol`, `solver`, `jacobian_method`
                (see `pullback_spectrum`), and `domain` for box-aware robustness; for
                flip/class_extent the options of `captum_simec.explore.simexp` / `simec`
                (`steps`, `step_size` in input units, `domain`, `seed`, ...), defaults in
                `WALK_DEFAULTS`; for boundary those of `boundary_path`.

        Returns:
            A tensor (tensor inputs) or a tuple of tensors (tuple inputs), each of its
            input's shape; with ``return_convergence_delta=True``, `(attributions, delta)`.
        """
        check_request(score, SCORES, return_convergence_delta, options)
        is_tuple = _compat.is_tuple(inputs)
        formatted = _compat.format_inputs(inputs)
        references = self._baselines(baselines, formatted)
        common = dict(
            score=score,
            target=target,
            additional_forward_args=additional_forward_args,
            output_metric=output_metric,
            signed=signed,
        )
        delta = None
        if score in GEOMETRIC_SCORES:
            flat, _ = spectrum_scores(
                self.forward_func,
                formatted,
                **common,
                internal_batch_size=internal_batch_size,
                geometry_options=options,
            )
        elif score in DELTA_SCORES:
            self._check_path_request(output_metric)
            flat, delta = boundary_scores(
                self.forward_func, formatted, target, additional_forward_args, options
            )
        else:
            flat = walk_score(self.forward_func, formatted, **common, options=options)
        if references is not None:
            distances = _compat.flatten_features(formatted) - _compat.flatten_features(references)
            flat = times_distance(flat, distances, signed)
        shaped = _compat.unflatten_features(flat, _compat.feature_shapes(formatted))
        attributions = _compat.format_output(is_tuple, shaped)
        return (attributions, delta) if return_convergence_delta else attributions


def _subset(
    inputs: tuple[Tensor, ...], args: tuple[Any, ...] | None, rows: Tensor
) -> tuple[tuple[Tensor, ...], tuple[Any, ...]]:
    batch = inputs[0].shape[0]
    return tuple(x[rows] for x in inputs), _compat.index_additional_forward_args(args, rows, batch)


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
    binary logit (`[0, f]`, decision `f > 0`).
    """
    batch = outputs.shape[0]
    if outputs[0].numel() == 1:
        forward_func, target = BinaryLogit(forward_func), None
    predicted = outputs.reshape(batch, -1).argmax(dim=1)
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
        points, extra = _subset(inputs, args, rows)
        chosen = None if target is None else target[rows]
        classes = {"target": chosen} if mode == "leave_class" else {"target_class": chosen}
        walk = simexp(
            forward_func, points, mode=mode, additional_forward_args=extra, **classes, **settings
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


def walk_score(
    forward_func: Callable[..., Any],
    inputs: tuple[Tensor, ...],
    *,
    score: str,
    target: Any,
    additional_forward_args: Any,
    output_metric: MetricSpec | None,
    signed: bool,
    options: dict[str, Any],
) -> Tensor:
    """Flip displacement or class extent (batch, n); any Captum target form is accepted.

    For the flip, the target is resolved to flat output indices (classes); `options`
    override `WALK_DEFAULTS`.
    """
    _check_signed(score, signed)
    settings = {**WALK_DEFAULTS[score], **options}
    if output_metric is not None:
        settings["output_metric"] = output_metric
    args = _compat.format_additional_forward_args(additional_forward_args)
    if score == "class_extent":
        return class_extent(forward_func, inputs, args, target, settings)
    with torch.no_grad():
        outputs = forward_func(*inputs, *(args or ()))
    flat_target = _compat.target_to_flat_indices(target, outputs.shape, inputs[0].device)
    displacement = flip_displacement(forward_func, inputs, args, outputs, flat_target, settings)
    return displacement if signed else displacement.abs()


@dataclass
class Explanation:
    """Geometry of the pullback metric at each example, in one object.

    Attributes:
        inputs: the inputs, detached (input structure).
        relevance: `rho_i = ||A e_i||` (input structure).
        robustness: `kappa_i = ||P_N e_i||^2` (input structure).
        eigenvalues: the largest `p` eigenvalues `s_k^2` of `g` (batch, p), float64,
            descending; the other `n - p` are 0.
        rank: rank of `g` per example (batch,).
        null_dim: dimension `n - rank` of the null space (the class's tangent space).
        outputs: model outputs (batch, *output_shape), detached.
        predicted: arg-max of each example's flattened output (batch,).
        target: flat target index per example, or None.
        output_metric: name of the output metric used.
    """

    inputs: InputsType
    relevance: InputsType
    robustness: InputsType
    eigenvalues: Tensor
    rank: Tensor
    null_dim: Tensor
    outputs: Tensor
    predicted: Tensor
    target: Tensor | None
    output_metric: str

    def plot(self, examples: int | list[int] | None = None, input_index: int = 0) -> Any:
        """Input, relevance, robustness and eigenvalue spectrum per example (a Figure).

        Args:
            examples: how many (from the first) or which examples; default up to 4.
            input_index: which tensor of tuple inputs to draw.
        """
        from captum_simec.viz import plot_explanation

        return plot_explanation(self, examples=examples, input_index=input_index)


def explain(
    forward_func: Callable[..., Any],
    inputs: InputsType,
    target: _compat.TargetType = None,
    *,
    additional_forward_args: Any = None,
    output_metric: MetricSpec | None = None,
    internal_batch_size: int | None = None,
    **geometry_options: Any,
) -> Explanation:
    """Relevance, robustness and the spectrum of `g = J^T G J` in one call.

    Relevance, eigenvalues and rank come from the metric `output_metric`; robustness from
    the same spectrum when `output_metric` is given, else from the robustness default
    `TopOutputsMetric` (one more Jacobian), so that it equals
    ``SiMECAttribution.attribute(..., score="robustness")``.

    Args:
        forward_func: the model.
        inputs: a tensor or a tuple of tensors, batch first.
        target: Captum target; with the default metric it makes the maps target-specific.
        additional_forward_args: extra arguments of `forward_func`.
        output_metric: as in `SiMECAttribution.attribute` (None: "target" with a target,
            else "euclidean").
        internal_batch_size: most (example, output row) pairs per backward pass.
        **geometry_options: `rtol`, `atol`, `solver`, `jacobian_method`.

    Returns:
        An `Explanation`.
    """
    check_options("relevance", geometry_options)
    is_tuple = _compat.is_tuple(inputs)
    formatted = _compat.format_inputs(inputs)
    metric = resolve_output_metric(default_output_metric(output_metric, target))
    common = dict(
        target=target,
        additional_forward_args=additional_forward_args,
        internal_batch_size=internal_batch_size,
        **geometry_options,
    )
    spectrum = pullback_spectrum(forward_func, formatted, output_metric=metric, **common)
    robust = spectrum
    if output_metric is None:
        robust = pullback_spectrum(
            forward_func, formatted, output_metric=TopOutputsMetric(), **common
        )

    def structured(flat: Tensor) -> InputsType:
        shaped = _compat.unflatten_features(flat, _compat.feature_shapes(formatted))
        return _compat.format_output(is_tuple, shaped)

    outputs = spectrum.outputs
    return Explanation(
        inputs=_compat.format_output(is_tuple, tuple(x.detach() for x in formatted)),
        relevance=structured(spectrum.relevance()),
        robustness=structured(robust.robustness()),
        eigenvalues=spectrum.eigenvalues,
        rank=spectrum.rank,
        null_dim=spectrum.null_dim,
        outputs=outputs,
        predicted=outputs.reshape(outputs.shape[0], -1).argmax(dim=1),
        target=spectrum.target,
        output_metric=metric.name,
    )
