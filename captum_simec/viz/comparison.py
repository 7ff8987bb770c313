"""Figures of a `Comparison` (`captum_simec.evaluation.compare_attributions`'s result).

- `plot_comparison`: the maps, methods x examples, with each example's true, predicted and
  target class in its title; methods whose maps are bit for bit the same share one row;
- `plot_comparison_curves`: the mean deletion / insertion / ROAD curves of every method;
- `plot_invariance`: the mean invariance curve of every method.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from matplotlib.figure import Figure

from captum_simec.viz.attributions import plot_attributions, plot_curves, select_examples

if TYPE_CHECKING:
    from captum_simec.evaluation import Comparison

__all__ = ["example_title", "plot_comparison", "plot_comparison_curves", "plot_invariance"]


def example_title(comparison: Comparison, example: int) -> str:
    """``"#3 true 1, pred 7"``, and the target on a second line where it is not the prediction.

    Without true labels the title names the predicted class only.
    """
    parts = [f"#{example}"]
    if comparison.labels is not None:
        parts.append(f"true {int(comparison.labels[example])},")
    target = int(comparison.target[example])
    predicted = None if comparison.predicted is None else int(comparison.predicted[example])
    if predicted is not None:
        parts.append(f"pred {predicted}")
    title = " ".join(parts).rstrip(",")
    if predicted is None or target != predicted:
        title += f"\ntarget {target}"
    return title


def plot_comparison(
    comparison: Comparison,
    examples: int | Sequence[int] | None = None,
    kind: str = "auto",
    input_index: int = 0,
    merge_identical: bool = True,
) -> Figure:
    """The maps of every method on the same examples (first row: the inputs).

    Each panel is scaled by its largest `|value|` (see `plot_attributions`); the titles carry
    each example's true class (when the comparison has labels), predicted class, and target
    where it differs from the prediction.

    Args:
        comparison: a `Comparison`.
        examples: how many (from the first) or which examples; default up to 4.
        kind: ``"auto"``, ``"image"``, ``"timeseries"`` or ``"tabular"``.
        input_index: which tensor of tuple inputs to draw.
        merge_identical: draw methods with bit-for-bit identical maps once, in one row
            labelled ``"A = B"`` (with a target, SiMEC relevance is Saliency exactly).

    Returns:
        A matplotlib Figure.
    """
    chosen = select_examples(comparison.target.shape[0], examples)
    same = comparison.identical_maps() if merge_identical else {}
    labels = {name: name for name in comparison.methods if name not in same}
    for name, earlier in same.items():  # `earlier` is never itself in `same`
        labels[earlier] += f"\n= {name}"
    maps = {label: comparison.maps[name] for name, label in labels.items()}
    return plot_attributions(
        maps,
        comparison.inputs,
        examples=chosen,
        kind=kind,
        input_index=input_index,
        example_titles=[example_title(comparison, i) for i in chosen],
    )


def plot_comparison_curves(
    comparison: Comparison, mode: str = "deletion", baseline: str = "black"
) -> Figure:
    """Mean `mode` curves of every method for one removal baseline, AUC in the legend.

    Args:
        comparison: a `Comparison` with curves.
        mode: ``"deletion"``, ``"insertion"``, ``"road_morf"`` or ``"road_lerf"``.
        baseline: the removal baseline; ``"road"`` for the ROAD modes.

    Raises:
        ValueError: no such curves were computed.
    """
    key = f"{mode}/{baseline}"
    curves = {name: c[key] for name, c in comparison.curves.items() if key in c}
    if not curves:
        raise ValueError(f"No {key!r} curves were computed; check `metrics` and `baselines`.")
    title = None
    if mode.startswith("road_"):
        order = "most" if mode == "road_morf" else "least"
        title = f"ROAD, {order} relevant removed first (noisy linear imputation)"
    return plot_curves(curves, title=title)


def plot_invariance(comparison: Comparison) -> Figure:
    """Mean invariance curve of every method (least relevant features noised first).

    Raises:
        ValueError: the comparison has no invariance curves.
    """
    if not comparison.invariance:
        raise ValueError("No invariance curves were computed; add 'invariance' to `metrics`.")
    figure = Figure(figsize=(5.0, 3.5), layout="constrained")
    ax = figure.subplots()
    for name, curve in comparison.invariance.items():
        label = f"{name} (AUC {float(curve.auc.mean()):.3f})"
        ax.plot(curve.fractions.cpu().numpy(), curve.shares.mean(dim=0).cpu().numpy(), label=label)
    ax.set_xlabel("fraction of features replaced by noise (least relevant first)")
    ax.set_ylabel("share of unchanged predictions")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=7)
    return figure
