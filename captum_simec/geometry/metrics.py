"""Output metrics G on the model's (flattened) output space.

Every metric is given by a factor: rows `C` (p x m, per example) with `G = C^T C`. The pulled
back factor is then `A = C J` (p x n), so that `g = J^T G J = A^T A`, and `A` costs p
vector-Jacobian products with the rows of `C` as cotangents, never m when p < m.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from captum_simec.geometry.decisions import num_classes, runner_up

__all__ = [
    "CallableMetric",
    "EuclideanMetric",
    "FisherMetric",
    "FixedMetric",
    "MarginMetric",
    "MatrixMetric",
    "MetricSpec",
    "OutputMetric",
    "TargetMetric",
    "TopKMetric",
    "as_probabilities",
    "resolve_output_metric",
]


def as_probabilities(outputs: Tensor) -> Tensor:
    """Class probabilities along the last dim from logits, log-probabilities or probabilities.

    Outputs that already are probabilities (non-negative rows summing to 1) pass through;
    anything else goes through a softmax (log-probabilities are logits up to a shift, so
    both give the same result).
    """
    sums = outputs.sum(dim=-1)
    if (outputs >= 0).all() and torch.allclose(sums, torch.ones_like(sums), atol=1e-4):
        return outputs
    return torch.softmax(outputs, dim=-1)


class OutputMetric:
    """A positive semi-definite metric `G(y) = C(y)^T C(y)` on the flattened output y.

    Subclasses implement `cotangents`, returning the rows of `C` for a batch of outputs.
    """

    name: str = "metric"
    #: whether the metric needs a `target` (Captum target semantics) to be defined.
    requires_target: bool = False
    #: whether every output carries weight, so that the metric does not depend on `target`.
    class_agnostic: bool = False

    def cotangents(self, outputs: Tensor, target: Tensor | None) -> Tensor:
        """Rows of the factor `C` (batch, p, m) at the flattened `outputs` (batch, m)."""
        raise NotImplementedError

    def for_output(self, output_shape: tuple[int, ...]) -> OutputMetric:
        """This metric for outputs of `output_shape` per example (most metrics: itself)."""
        return self

    def matrix(self, outputs: Tensor, target: Tensor | None = None) -> Tensor:
        """The dense metric `G = C^T C` (batch, m, m), for checks and small cases."""
        rows = self.cotangents(outputs, target)
        return rows.transpose(1, 2) @ rows

    def freeze(self, outputs: Tensor, target: Tensor | None = None) -> FixedMetric:
        """This metric with its factor fixed at `outputs` (e.g. the start point of a walk).

        Data-dependent choices (the runner-up of `margin`, the top-k set, Fisher's
        probabilities) then stay those of the start point.
        """
        return FixedMetric(self.cotangents(outputs, target), name=f"{self.name}@start")

    def _require_target(self, target: Tensor | None, outputs: Tensor) -> Tensor:
        if target is None:
            if outputs.shape[1] == 1:
                return torch.zeros(outputs.shape[0], dtype=torch.long, device=outputs.device)
            raise ValueError(
                f"output_metric={self.name!r} needs `target` (the model has {outputs.shape[1]} "
                "outputs per example): pass target=..., or use output_metric='euclidean'."
            )
        return target

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _one_hot(index: Tensor, size: int, like: Tensor) -> Tensor:
    return torch.nn.functional.one_hot(index, size).to(like.dtype)


class EuclideanMetric(OutputMetric):
    """`G = I` on all outputs (the papers' choice): class-agnostic, ignores `target`."""

    name = "euclidean"
    class_agnostic = True

    def cotangents(self, outputs: Tensor, target: Tensor | None) -> Tensor:
        batch, m = outputs.shape
        return torch.eye(m, dtype=outputs.dtype, device=outputs.device).expand(batch, m, m)


class TargetMetric(OutputMetric):
    """`G = e_t e_t^T`: only the target output; `sqrt(g_ii) = |df_t/dx_i|` (Saliency)."""

    name = "target"
    requires_target = True

    def cotangents(self, outputs: Tensor, target: Tensor | None) -> Tensor:
        target = self._require_target(target, outputs)
        return _one_hot(target, outputs.shape[1], outputs).unsqueeze(1)


class MarginMetric(OutputMetric):
    """`G = (e_t - e_r)(e_t - e_r)^T`: the decision margin of the target over the runner-up.

    The runner-up `r` is the largest output other than the target at the given point, among
    the classes of the target's position (`captum_simec.geometry.decisions`): with
    `classes=V` on a (T, V) output and the target `(t, v)`, the other tokens at position t.

    Args:
        classes: classes per decision (the output's last dimension); None: all outputs.
    """

    name = "margin"
    requires_target = True

    def __init__(self, classes: int | None = None) -> None:
        self.classes = classes

    def cotangents(self, outputs: Tensor, target: Tensor | None) -> Tensor:
        target = self._require_target(target, outputs)
        m = outputs.shape[1]
        if m < 2:
            raise ValueError("output_metric='margin' needs at least two outputs per example.")
        other = runner_up(outputs, target, m if self.classes is None else self.classes)
        rows = _one_hot(target, m, outputs) - _one_hot(other, m, outputs)
        return rows.unsqueeze(1)

    def for_output(self, output_shape: tuple[int, ...]) -> OutputMetric:
        """The margin among the classes of one position (the output's last dimension)."""
        return self if self.classes is not None else MarginMetric(num_classes(output_shape))

    def __repr__(self) -> str:
        return "MarginMetric()" if self.classes is None else f"MarginMetric(classes={self.classes})"


class TopKMetric(OutputMetric):
    """`G = I` on the k largest outputs at the point, zero elsewhere."""

    name = "topk"
    class_agnostic = True

    def __init__(self, k: int = 3) -> None:
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"TopKMetric k must be a positive int, got {k!r}.")
        self.k = k

    def cotangents(self, outputs: Tensor, target: Tensor | None) -> Tensor:
        m = outputs.shape[1]
        if self.k > m:
            raise ValueError(
                f"output_metric topk k={self.k} exceeds the {m} outputs per example; "
                f"choose k <= {m}."
            )
        top = outputs.detach().topk(self.k, dim=1).indices
        return _one_hot(top, m, outputs)

    def __repr__(self) -> str:
        return f"TopKMetric(k={self.k})"


class FisherMetric(OutputMetric):
    """Fisher-Rao metric of softmax(y) on logits y: `G = diag(p) - p p^T`.

    Factor rows `sqrt(p_k) (e_k - p)`, since `sum_k p_k (e_k - p)(e_k - p)^T = diag(p) - p p^T`.
    """

    name = "fisher"
    class_agnostic = True

    def cotangents(self, outputs: Tensor, target: Tensor | None) -> Tensor:
        probs = torch.softmax(outputs.detach(), dim=1)
        m = outputs.shape[1]
        eye = torch.eye(m, dtype=outputs.dtype, device=outputs.device)
        return probs.sqrt().unsqueeze(2) * (eye.unsqueeze(0) - probs.unsqueeze(1))


def _psd_factor(matrices: Tensor, argument: str) -> Tensor:
    """Rows C with C^T C = G for a batch of symmetric PSD matrices (batch, m, m)."""
    if not torch.isfinite(matrices).all():
        raise ValueError(f"`{argument}` contains NaN or inf.")
    work = matrices.double()
    scale = work.abs().amax(dim=(1, 2)).clamp_min(torch.finfo(torch.float64).tiny)
    asym = (work - work.transpose(1, 2)).abs().amax(dim=(1, 2))
    symmetry_tol = 1e-6 if matrices.dtype != torch.float64 else 1e-10
    if (asym > symmetry_tol * scale).any():
        raise ValueError(
            f"`{argument}` must be a symmetric matrix (G = G^T); symmetrise it with (G + G.T) / 2."
        )
    values, vectors = torch.linalg.eigh((work + work.transpose(1, 2)) / 2)
    psd_tol = 1e-6 * scale.unsqueeze(1) * matrices.shape[-1]
    if (values < -psd_tol).any():
        raise ValueError(
            f"`{argument}` is not positive semi-definite (smallest eigenvalue "
            f"{values.min().item():.3g}); an output metric needs G = L L^T."
        )
    rows = values.clamp_min(0).sqrt().unsqueeze(2) * vectors.transpose(1, 2)
    return rows.to(matrices.dtype)


class MatrixMetric(OutputMetric):
    """A fixed user matrix `G` (m x m, symmetric PSD), the same for every example."""

    name = "matrix"

    def __init__(self, matrix: Tensor) -> None:
        if (
            not isinstance(matrix, Tensor)
            or matrix.dim() != 2
            or matrix.shape[0] != matrix.shape[1]
        ):
            shape = tuple(matrix.shape) if isinstance(matrix, Tensor) else type(matrix).__name__
            raise ValueError(f"`output_metric` matrix must be square (m, m), got {shape}.")
        self.matrix_value = matrix.detach()
        self._rows = _psd_factor(self.matrix_value.unsqueeze(0), "output_metric")[0]
        self.class_agnostic = bool((self.matrix_value.diagonal() > 0).all())

    def cotangents(self, outputs: Tensor, target: Tensor | None) -> Tensor:
        m = outputs.shape[1]
        if self.matrix_value.shape[0] != m:
            raise ValueError(
                f"`output_metric` is {tuple(self.matrix_value.shape)} but the model has {m} "
                f"outputs per example: pass an ({m}, {m}) matrix."
            )
        rows = self._rows.to(device=outputs.device, dtype=outputs.dtype)
        return rows.expand(outputs.shape[0], m, m)

    def __repr__(self) -> str:
        return f"MatrixMetric(shape={tuple(self.matrix_value.shape)})"


class CallableMetric(OutputMetric):
    """`G(y)` from a user function of the flattened output: (m, m) or (batch, m, m)."""

    name = "callable"

    def __init__(self, function: Callable[[Tensor], Tensor]) -> None:
        self.function = function

    def cotangents(self, outputs: Tensor, target: Tensor | None) -> Tensor:
        batch, m = outputs.shape
        value = self.function(outputs.detach())
        if not isinstance(value, Tensor):
            raise TypeError("`output_metric` callable must return a tensor G of shape (m, m).")
        if value.dim() == 2:
            value = value.unsqueeze(0).expand(batch, -1, -1)
        if value.shape != (batch, m, m):
            raise ValueError(
                f"`output_metric` callable returned shape {tuple(value.shape)}; expected "
                f"({m}, {m}) or ({batch}, {m}, {m}) for outputs of shape {(batch, m)}."
            )
        return _psd_factor(value, "output_metric").to(outputs.dtype)


class FixedMetric(OutputMetric):
    """A per-example factor fixed in advance, rows (batch, p, m); see `OutputMetric.freeze`."""

    def __init__(self, rows: Tensor, name: str = "fixed") -> None:
        self.rows = rows.detach()
        self.name = name

    def cotangents(self, outputs: Tensor, target: Tensor | None) -> Tensor:
        if outputs.shape[0] != self.rows.shape[0] or outputs.shape[1] != self.rows.shape[2]:
            raise ValueError(
                f"This fixed metric was made for outputs of shape "
                f"{(self.rows.shape[0], self.rows.shape[2])}, got {tuple(outputs.shape)}."
            )
        return self.rows.to(outputs.dtype)

    def select(self, index: Tensor) -> FixedMetric:
        """The metric of the examples `index` (to follow a shrinking batch)."""
        return FixedMetric(self.rows[index], self.name)


#: what an `output_metric` argument accepts (see `resolve_output_metric`).
MetricSpec = str | OutputMetric | Tensor | Callable[[Tensor], Tensor]

_NAMED = {
    "euclidean": EuclideanMetric,
    "target": TargetMetric,
    "margin": MarginMetric,
    "topk": TopKMetric,
    "fisher": FisherMetric,
}


def resolve_output_metric(spec: MetricSpec, k: int | None = None) -> OutputMetric:
    """Turns a metric name, a PSD matrix, a callable or an `OutputMetric` into a metric.

    Args:
        spec: "euclidean", "target", "margin", "topk" (with `k`, default 3), "fisher", an
            (m, m) PSD tensor, a callable mapping outputs (batch, m) to G, or a metric.
        k: number of outputs for "topk".
    """
    if isinstance(spec, OutputMetric):
        return spec
    if isinstance(spec, str):
        if spec not in _NAMED:
            raise ValueError(
                f"Unknown output_metric {spec!r}; choose one of {sorted(_NAMED)}, a PSD "
                "matrix, or a callable returning G."
            )
        if spec == "topk":
            return TopKMetric(3 if k is None else k)
        return _NAMED[spec]()
    if isinstance(spec, Tensor):
        return MatrixMetric(spec)
    if callable(spec):
        return CallableMetric(spec)
    raise TypeError(
        f"`output_metric` of type {type(spec).__name__} is not supported; pass a name, a "
        "PSD matrix, a callable or an OutputMetric."
    )
