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
  class (`captum_simec.explore.boundary_path`), with a convergence delta.

The scores live beside this module: `_spectrum_scores`, `_walk_scores`, `_path_scores`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from captum.attr import GradientAttribution
from captum.log import log_usage
from torch import Tensor

from captum_simec import _compat
from captum_simec._outputs import OutputSpec, select_output
from captum_simec.attr._base import (
    SCORES,
    BaselinesType,
    InputsType,
    ScoreRequest,
    SiMECMethod,
    check_request,
    position_mask,
    times_distance,
)
from captum_simec.attr._scores import score_maps
from captum_simec.geometry.metrics import MetricSpec

__all__ = ["SiMECAttribution"]


class SiMECAttribution(SiMECMethod, GradientAttribution):
    r"""Per-feature scores of the singular Riemannian pullback metric (Benfenati & Marta).

    For an example `x` with Jacobian `J = df/dx` and an output metric `G = C^T C`, the pullback
    metric is `g = J^T G J = A^T A` with `A = C J` (thin, never the n x n matrix). Scores:

    - ``"relevance"`` `rho_i = sqrt(g_ii) = ||A e_i||`: output motion (in `G`) per unit move
      of feature `i`. ``signed=True`` multiplies by `sign(df_t/dx_i)`. **With a target and
      the default metric this is Saliency**: `|df_t/dx_i|`, bit for bit
      `Saliency(abs=True)`; the geometry adds nothing to it. For models with many outputs
      and a metric on all of them, ``estimator="hutchinson"`` estimates it from a few
      dozen random probes (relative standard error about `1 / sqrt(2 probes)`).
    - ``"robustness"`` `kappa_i = ||P_N e_i||^2 = 1 - sum_{k<=r} v_ki^2` in [0, 1], with
      `v_k` the right singular vectors of `A` above the rank tolerance: the share of a move of
      feature `i` absorbed by the equivalence class (1 = locally invariant, 0 = every move
      changes the output); `sum_i (1 - kappa_i) = rank g`. High means *unimportant*. Its
      default metric is `G = I` on the predicted class and its two runners-up, with or
      without a target; ``domain=(lo, hi)`` gives the box-aware score
      `1 - r_i / max_j r_j`, `r_i = sqrt(g_ii E[(u_i - x_i)^2])` for `u_i` uniform in the box:
      1 where noise in the feature moves nothing.
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
      ``max_step_size``, ``domain``, ``boundary_tol`` (see
      `captum_simec.explore.boundary_path`).

    Which score for what (measured in ``benchmarks/bench_evaluation.py``, README):

    - faithful relevance: ``"boundary"`` (1.5x the time of IG with 50 steps on the digits
      CNN; it beats Saliency and IG from black on deletion and insertion with uniform-noise
      and training-mean baselines on all three benchmark models; GradientShap, averaging
      over noise baselines, ranks above it on two of them);
    - invariance, which features the prediction ignores: ``"robustness"``, box-aware with
      ``domain`` (the invariance curve of `captum_simec.evaluation` measures it);
    - cheap sensitivity: ``"relevance"`` (one backward pass; Saliency with a target);
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

    =================== =========================  ==========================
    map                 MLP 64-64-64, 8x8 digits   PaperMNISTCNN, 28x28 digits
    =================== =========================  ==========================
    "target" (Saliency) 0.126 / 0.235 / 0.170      0.205 / 0.453 / 0.375
    "margin"            0.218 / 0.302 / 0.325      0.202 / 0.451 / 0.377
    "euclidean"         0.252 / 0.275 / 0.325      0.167 / 0.409 / 0.331
    "fisher"            0.196 / 0.282 / 0.285      0.193 / 0.430 / 0.362
    flip                0.148 / 0.196 / 0.140      0.194 / 0.401 / 0.327
    IG, black baseline  0.039 / 0.353 / 0.137      0.040 / 0.500 / 0.096
    random order        0.499 / 0.505 / 0.585      0.605 / 0.720 / 0.777
    =================== =========================  ==========================

    Of the target-specific metrics ``"target"`` is best or tied, and is exactly Saliency, a
    built-in cross-check. IG wins with the black baseline it integrates from (deletion to
    black favours it) and loses with a uniform-noise baseline, where flip does best.

    ``multiply_by_inputs=True`` multiplies every score by `|x - baseline|` (baselines default
    to 0), as IntegratedGradients' global attribution does, and by `x - baseline` with
    ``signed=True``: on a linear model the signed target relevance then equals IG's
    `w * (x - b)` and the unsigned one `|IG|`. ``"boundary"`` is already a path integral and
    refuses it.
    """

    def __init__(
        self,
        forward_func: Callable[..., Any],
        multiply_by_inputs: bool = False,
        output: OutputSpec = None,
    ) -> None:
        """
        Args:
            forward_func: the model or any function of the inputs returning a tensor with the
                batch as dim 0 (logits or log-probabilities are best, see method.md).
            multiply_by_inputs: multiply the scores by `|x - baseline|` (`x - baseline` with
                ``signed=True``).
            output: the tensor to explain when the model returns a ModelOutput, dict or
                tuple: a key or attribute (``output="logits"``), a position, or a callable
                of the output; `forward_func` is then `select_output(model, output)`.
        """
        GradientAttribution.__init__(self, select_output(forward_func, output))
        self._multiply_by_inputs = bool(multiply_by_inputs)

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
        attention_mask: Tensor | None = None,
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
            attention_mask: for a (batch, T, ...) input of token embeddings, (batch, T) with
                1 for a token and 0 for padding (Hugging Face's mask): padded positions are
                held fixed by the walks and score exactly 0. Pass the mask to the model
                through `additional_forward_args` as well.
            **options: for relevance/robustness `rtol`, `atol`, `solver`, `jacobian_method`
                (see `pullback_spectrum`), and `domain` for box-aware robustness; for
                relevance `estimator` (``"exact"``, or ``"hutchinson"`` for many outputs:
                `probes` (100) vector-Jacobian products instead of one per metric row,
                `deflation_rank` (0), `power_iterations` (0), `seed` (0); each example is
                estimated alone, and `captum_simec.geometry.hutchinson_relevance` on it
                returns the same estimate with its standard error); for
                flip/class_extent the options of `captum_simec.explore.simexp` / `simec`
                (`steps`, `step_size` in input units, `domain`, `seed`, ...), defaults in
                `WALK_DEFAULTS`; for boundary those of `captum_simec.explore.boundary_path`.

        Returns:
            A tensor (tensor inputs) or a tuple of tensors (tuple inputs), each of its
            input's shape; with ``return_convergence_delta=True``, `(attributions, delta)`.
        """
        check_request(score, SCORES, return_convergence_delta, options)
        is_tuple = _compat.is_tuple(inputs)
        formatted = _compat.format_inputs(inputs)
        references = self._baselines(baselines, formatted, score)
        request = ScoreRequest.collect(
            locals(),
            forward_func=self.forward_func,
            inputs=formatted,
            free=position_mask(attention_mask, formatted),
            options=options,
        )
        flat, delta = score_maps(request)
        if references is not None:
            distances = _compat.flatten_features(formatted) - _compat.flatten_features(references)
            flat = times_distance(flat, distances, signed)
        shaped = _compat.unflatten_features(flat, _compat.feature_shapes(formatted))
        attributions = _compat.format_output(is_tuple, shaped)
        return (attributions, delta) if return_convergence_delta else attributions
