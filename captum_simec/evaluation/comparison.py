"""`Comparison`: the maps, timings and metrics of several attribution methods on one batch."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from captum_simec.evaluation._common import InputsType, mean_finite
from captum_simec.evaluation.invariance import InvarianceCurve
from captum_simec.evaluation.perturbation import PerturbationCurve

__all__ = ["LOWER_IS_BETTER", "Comparison"]

#: metric-name prefixes for which lower is better (higher is better for the others).
LOWER_IS_BETTER = (
    "infidelity",
    "sensitivity",
    "deletion_auc",
    "road_morf_auc",
    "randomisation",
    "random_logit",
)


@dataclass
class Comparison:
    """Maps, timings and metrics of several attribution methods on one batch.

    Attributes:
        inputs: the inputs (detached).
        target: flat target class per example (batch,).
        predicted: the model's predicted class per example (batch,), or None.
        labels: the true class per example (batch,), when given, or None.
        maps: method name -> map (input structure).
        seconds: method name -> wall time of the attribution of the batch.
        scores: method name -> metric name -> per-example values (batch,).
        curves: method name -> "deletion/black"-style key (ROAD: "road_morf/road") ->
            `PerturbationCurve`.
        invariance: method name -> `InvarianceCurve` (least relevant features noised first).
        randomisation: method name -> [(layer, Spearman per example)] from the top layer down.
        correlation: (k, k) mean Spearman between the methods' maps (None if not computed).
        class_agnostic: method name -> whether its map ignores the target by construction.
        notes: caveats recorded while computing (skipped checks, class-agnostic methods).
    """

    inputs: InputsType
    target: Tensor
    maps: dict[str, InputsType]
    seconds: dict[str, float]
    scores: dict[str, dict[str, Tensor]] = field(default_factory=dict)
    curves: dict[str, dict[str, PerturbationCurve]] = field(default_factory=dict)
    invariance: dict[str, InvarianceCurve] = field(default_factory=dict)
    randomisation: dict[str, list[tuple[str, Tensor]]] = field(default_factory=dict)
    correlation: Tensor | None = None
    class_agnostic: dict[str, bool] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    predicted: Tensor | None = None
    labels: Tensor | None = None

    @property
    def methods(self) -> list[str]:
        """Method names in the order they ran."""
        return list(self.maps)

    def identical_maps(self) -> dict[str, str]:
        """Method -> the first earlier method whose map is bit for bit the same.

        E.g. ``"Saliency" -> "SiMEC relevance"``: with a target, SiMEC relevance is
        `Saliency(abs=True)` exactly.
        """
        same: dict[str, str] = {}
        for i, name in enumerate(self.methods):
            for earlier in self.methods[:i]:
                if earlier not in same and _equal_maps(self.maps[earlier], self.maps[name]):
                    same[name] = earlier
                    break
        return same

    def winners(self) -> dict[str, list[str]]:
        """Metric -> the methods with the best mean over examples (ties: all of them).

        Lower is better for the metrics in `LOWER_IS_BETTER`, higher for the others; NaN
        means are ignored and a metric no method has a finite mean for is left out.
        """
        summary = self.summary()
        metrics = dict.fromkeys(m for row in summary.values() for m in row if m != "seconds")
        best: dict[str, list[str]] = {}
        for metric in metrics:
            sign = -1.0 if metric.startswith(LOWER_IS_BETTER) else 1.0
            values = {
                name: sign * row[metric]
                for name, row in summary.items()
                if metric in row and math.isfinite(row[metric])
            }
            if values:
                top = max(values.values())
                best[metric] = [name for name, value in values.items() if value == top]
        return best

    def summary(self) -> dict[str, dict[str, float]]:
        """Method -> metric -> mean over examples (NaN entries ignored), plus `seconds`."""
        return {
            name: {
                "seconds": self.seconds[name],
                **{
                    metric: mean_finite(values)
                    for metric, values in self.scores.get(name, {}).items()
                },
            }
            for name in self.methods
        }

    def to_records(self) -> list[dict[str, Any]]:
        """One flat dict per method: name, class-agnostic flag, seconds and metric means."""
        return [
            {"method": name, "class_agnostic": self.class_agnostic.get(name, False), **row}
            for name, row in self.summary().items()
        ]

    def to_markdown(self, digits: int = 3) -> str:
        """The metric table (and the method-correlation table) as GitHub markdown.

        Args:
            digits: significant digits of every number.
        """
        records = self.to_records()
        columns = list(dict.fromkeys(key for row in records for key in row if key != "method"))
        lines = [
            "| method | " + " | ".join(columns) + " |",
            "|---|" + "---|" * len(columns),
        ]
        for row in records:
            cells = [_cell(row.get(column), digits) for column in columns]
            lines.append(f"| {row['method']} | " + " | ".join(cells) + " |")
        lines.append("")
        lines.append(
            "Lower is better for infidelity, sensitivity, deletion AUC, ROAD MoRF AUC and the "
            "sanity correlations (randomisation_*, random_logit); higher is better for insertion "
            "AUC, ROAD LeRF AUC and invariance AUC."
        )
        if self.correlation is not None:
            names = self.methods
            lines += ["", "Spearman correlation between methods (mean over examples):", ""]
            lines.append("| | " + " | ".join(names) + " |")
            lines.append("|---|" + "---|" * len(names))
            for i, name in enumerate(names):
                cells = [_cell(float(v), digits) for v in self.correlation[i]]
                lines.append(f"| {name} | " + " | ".join(cells) + " |")
        if self.notes:
            lines += ["", *[f"- {note}" for note in self.notes]]
        return "\n".join(lines)

    def mean_ranks(self, metrics: Sequence[str]) -> dict[str, float]:
        """Method -> its mean rank over `metrics` (1 = best on every one; ties share the
        average rank); methods without a finite mean for a metric rank last on it.

        Raises:
            ValueError: a metric no method has.
        """
        summary = self.summary()
        ranks = dict.fromkeys(self.methods, 0.0)
        for metric in metrics:
            if not any(metric in row for row in summary.values()):
                raise ValueError(f"No method has the metric {metric!r}; see `summary()`.")
            sign = 1.0 if metric.startswith(LOWER_IS_BETTER) else -1.0
            keys = {name: sign * row.get(metric, math.nan) for name, row in summary.items()}
            values = torch.tensor([math.inf if math.isnan(v) else v for v in keys.values()])
            below = (values.unsqueeze(1) > values.unsqueeze(0)).sum(dim=1)
            ties = (values.unsqueeze(1) == values.unsqueeze(0)).sum(dim=1)
            for name, rank in zip(keys, (below + (ties + 1) / 2).tolist(), strict=True):
                ranks[name] += rank / len(metrics)
        return ranks

    def plot(
        self,
        examples: int | Sequence[int] | None = None,
        kind: str = "auto",
        input_index: int = 0,
    ) -> Any:
        """`captum_simec.viz.plot_comparison(self, ...)`: the maps, methods x examples, with
        true, predicted and target classes in the titles (a Figure)."""
        from captum_simec.viz import plot_comparison

        return plot_comparison(self, examples=examples, kind=kind, input_index=input_index)

    def plot_curves(self, mode: str = "deletion", baseline: str = "black") -> Any:
        """`captum_simec.viz.plot_comparison_curves(self, mode, baseline)`: the mean curves
        of every method for one removal baseline (a Figure)."""
        from captum_simec.viz import plot_comparison_curves

        return plot_comparison_curves(self, mode, baseline)

    def plot_invariance(self) -> Any:
        """`captum_simec.viz.plot_invariance(self)`: the mean invariance curve of every
        method, AUC in the legend (a Figure)."""
        from captum_simec.viz import plot_invariance

        return plot_invariance(self)


def _equal_maps(first: InputsType, second: InputsType) -> bool:
    pairs = zip(_as_tuple(first), _as_tuple(second), strict=False)
    return len(_as_tuple(first)) == len(_as_tuple(second)) and all(
        a.shape == b.shape and torch.equal(a, b) for a, b in pairs
    )


def _as_tuple(value: InputsType) -> tuple[Tensor, ...]:
    return value if isinstance(value, tuple) else (value,)


def _cell(value: Any, digits: int) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.{digits}g}"
    return "" if value is None else str(value)
