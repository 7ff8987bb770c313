"""The path scores: the target's gradient integrated along a walk, with a convergence delta.

- ``boundary``: `a_i = int_{x_end}^{x} df_t/dx_i dgamma_i` along the SiMExp walk out of the
  class (`captum_simec.explore.boundary_path`); `sum_i a_i = f_t(x) - f_t(x_end)` up to the
  quadrature error, returned as the convergence delta.
"""

from __future__ import annotations

import warnings

from torch import Tensor

from captum_simec import _compat
from captum_simec._outputs import check_output
from captum_simec.attr._base import ScoreRequest
from captum_simec.attr._binary import BinaryLogit
from captum_simec.explore import boundary_path
from captum_simec.geometry import model_outputs

__all__ = ["boundary_score"]


def boundary_score(request: ScoreRequest) -> tuple[Tensor, Tensor]:
    """Flat boundary-path relevance (batch, n) and its convergence delta (batch,).

    A one-output model is read as the binary logit `[0, f]` and `f` is integrated (from
    either side of `f = 0`). Warns where a walk stopped before the decision changed: its map
    is the integral so far.

    Raises:
        ValueError: an `output_metric` (the walk follows the target's margin).
    """
    if request.output_metric is not None:
        raise ValueError(
            "score='boundary' walks down the target's margin and integrates the target's "
            f"gradient; output_metric={request.output_metric!r} does not apply: drop it."
        )
    model, inputs, target = request.forward_func, request.inputs, request.target
    args = _compat.format_additional_forward_args(request.additional_forward_args)
    outputs = check_output(model_outputs(model, inputs, args), inputs[0].shape[0])
    if outputs[0].numel() == 1:
        model, target = BinaryLogit(model), 1
    path = boundary_path(
        model,
        inputs,
        target,
        additional_forward_args=args,
        internal_batch_size=request.internal_batch_size,
        free=request.free,
        **{"progress": False, **request.options},
    )
    if not path.reached.all():
        reasons = sorted({r for r in path.walk.stop_reason if r != "class_change"})
        warnings.warn(
            f"score='boundary': {int((~path.reached).sum())} example(s) stopped before their "
            f"decision changed (stop reasons {reasons}); their map is the integral along the "
            "path so far and sums to f_t(x) - f_t(x_stop). Raise `max_steps` (or check "
            "`domain`).",
            stacklevel=4,
        )
    return _compat.flatten_features(_compat.format_inputs(path.attributions)), path.delta
