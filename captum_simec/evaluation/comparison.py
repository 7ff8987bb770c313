"""`Comparison`: the maps, timings and metrics of several attribution methods on one batch."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

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

    @property
    def methods(self) -> list[str]:
        """Method names in the order they ran."""
        return list(self.maps)

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

    def plot(
        self,
        examples: int | Sequence[int] | None = None,
        kind: str = "auto",
        input_index: int = 0,
    ) -> Any:
        """Methods x examples grid of the maps on a shared colour scale (a Figure).

        Images, time series (B, T, d) and tabular (B, d) inputs are all handled; see
        `captum_simec.viz.plot_attributions`.
        """
        from captum_simec.viz import plot_attributions, select_examples

        chosen = select_examples(self.target.shape[0], examples)
        return plot_attributions(
            self.maps,
            self.inputs,
            examples=chosen,
            kind=kind,
            input_index=input_index,
            example_titles=[f"#{i} target {int(self.target[i])}" for i in chosen],
        )

    def plot_curves(self, mode: str = "deletion", baseline: str = "black") -> Any:
        """Mean `mode` curves of every method for one removal baseline (a Figure).

        Args:
            mode: ``"deletion"``, ``"insertion"``, ``"road_morf"`` or ``"road_lerf"``.
            baseline: the removal baseline; ``"road"`` for the ROAD modes.
        """
        from captum_simec.viz import plot_curves

        key = f"{mode}/{baseline}"
        curves = {name: c[key] for name, c in self.curves.items() if key in c}
        if not curves:
            raise ValueError(f"No {key!r} curves were computed; check `metrics` and `baselines`.")
        title = None
        if mode.startswith("road_"):
            order = "most" if mode == "road_morf" else "least"
            title = f"ROAD, {order} relevant removed first (noisy linear imputation)"
        return plot_curves(curves, title=title)

    def plot_invariance(self) -> Any:
        """Mean invariance curve of every method, AUC in the legend (a Figure)."""
        from matplotlib.figure import Figure

        if not self.invariance:
            raise ValueError("No invariance curves were computed; add 'invariance' to `metrics`.")
        figure = Figure(figsize=(5.0, 3.5), layout="constrained")
        ax = figure.subplots()
        for name, curve in self.invariance.items():
            label = f"{name} (AUC {float(curve.auc.mean()):.3f})"
            ax.plot(
                curve.fractions.cpu().numpy(), curve.shares.mean(dim=0).cpu().numpy(), label=label
            )
        ax.set_xlabel("fraction of features replaced by noise (least relevant first)")
        ax.set_ylabel("share of unchanged predictions")
        ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=7)
        return figure


def _cell(value: Any, digits: int) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.{digits}g}"
    return "" if value is None else str(value)
