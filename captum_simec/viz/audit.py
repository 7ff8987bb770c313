"""Figures of a robustness audit (an `AuditResult`): histograms, flip distance against PGD,
and strips of the most and least robust examples with their maps."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from captum_simec.viz.attributions import plot_attributions
from captum_simec.viz.labels import format_value

if TYPE_CHECKING:
    from captum_simec.audit import AuditResult

__all__ = ["audit_figures"]


def _finite(values: np.ndarray) -> np.ndarray:
    return values[np.isfinite(values)]


def _flip_histogram(result: AuditResult) -> Figure:
    fig = Figure(figsize=(9.0, 3.2), layout="constrained")
    axes = fig.subplots(1, 2)
    found = result.column("flip_found")  # float with NaN where the walk did not run
    missing = int(np.sum(found == 0))
    for ax, norm in zip(axes, ("l2", "linf"), strict=True):
        values = _finite(result.column(f"flip_{norm}"))
        if values.size:
            ax.hist(values, bins=min(30, max(5, values.size // 2)), color="tab:blue")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        label = "L2" if norm == "l2" else "L-inf"
        ax.set_xlabel(f"SiMExp flip distance ({label} displacement)")
        ax.set_ylabel("examples")
    computed = int(np.sum(~np.isnan(found.astype(np.float64))))
    title = (
        f"{len(result)} examples, {missing} without a flip within the budget"
        if computed
        else f"{len(result)} examples: SiMExp flips not computed (the walk did not run)"
    )
    fig.suptitle(title, fontsize=10)
    return fig


def _null_dim_histogram(result: AuditResult) -> Figure:
    fig = Figure(figsize=(5.0, 3.2), layout="constrained")
    ax = fig.subplots()
    values = result.column("null_dim")
    low, high = int(values.min()), int(values.max())
    ax.hist(values, bins=np.arange(low - 0.5, high + 1.5), color="tab:green", rwidth=0.9)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax.set_xlabel("null dimension n - r (dimension of the equivalence class)")
    ax.set_ylabel("examples")
    gaps = result.column("spectral_gap")
    gaps = gaps[~np.isnan(gaps)]
    if gaps.size:
        ax.set_title(
            f"spectral gap s_r / s_(r+1): min {format_value(float(gaps.min()), 3)}, "
            f"median {format_value(float(np.median(gaps)), 3)}",
            fontsize=9,
        )
    return fig


def _flip_vs_attack(result: AuditResult) -> Figure:
    fig = Figure(figsize=(9.0, 4.0), layout="constrained")
    axes = fig.subplots(1, 2)
    classes = result.column("prediction")
    for ax, norm in zip(axes, ("l2", "linf"), strict=True):
        walk, attack = result.column(f"flip_{norm}"), result.column(f"pgd_{norm}_eps")
        both = np.isfinite(walk) & np.isfinite(attack)
        label = "L2" if norm == "l2" else "L-inf"
        if both.any():
            points = ax.scatter(
                attack[both], walk[both], c=classes[both], cmap="tab10", vmin=-0.5, vmax=9.5, s=18
            )
            top = float(max(walk[both].max(), attack[both].max())) * 1.05
            ax.plot([0, top], [0, top], color="black", linewidth=0.8, label="y = x")
            ax.set_xlim(0, top)
            ax.set_ylim(0, top)
            ax.legend(loc="upper left", fontsize=8)
            if norm == "linf":
                fig.colorbar(points, ax=ax, label="predicted class")
        ax.set_xlabel(f"smallest flipping PGD radius ({label})")
        ax.set_ylabel(f"SiMExp flip distance ({label})")
        ax.set_title(f"{int(both.sum())} of {len(result)} with both finite", fontsize=9)
    return fig


def _strip(result: AuditResult, rows: np.ndarray, title: str) -> Figure:
    """Inputs, leverage `1 - kappa` and `|flip displacement|` of the records at `rows`."""
    maps = result.maps
    where = {int(index): k for k, index in enumerate(maps["index"].tolist())}
    picked = torch.tensor([where[int(result.records[r]["index"])] for r in rows])
    titles = []
    for r in rows:
        record = result.records[r]
        truth = f" true {record['label']}," if record["label"] >= 0 else ""
        titles.append(
            f"#{record['index']}{truth} pred {record['prediction']}\n"
            f"flip L2 {format_value(record['flip_l2'], 3)}"
        )
    fig = plot_attributions(
        {
            "leverage 1 - kappa": 1.0 - maps["robustness"][picked],
            "|flip displacement|": maps["flip"][picked].abs(),
        },
        maps["input"][picked],
        examples=list(range(len(rows))),
        example_titles=titles,
    )
    fig.suptitle(title, fontsize=10)
    return fig


def audit_figures(result: AuditResult, strip_size: int = 4) -> dict[str, tuple[Figure, str]]:
    """The audit's figures: name -> (figure, caption).

    Always: ``flip_distance`` and ``null_dimension`` histograms; with attack radii: the
    ``flip_vs_pgd`` scatter; with kept maps: ``most_robust`` and ``least_robust`` strips
    (ranked by the L2 flip distance, no flip counting as the most robust).
    """
    if len(result) == 0:
        raise ValueError("the audit result has no records; audit at least one example.")
    figures = {
        "flip_distance": (
            _flip_histogram(result),
            "SiMExp flip distance per example (flipped examples only).",
        ),
        "null_dimension": (
            _null_dim_histogram(result),
            "Null dimension of the pullback metric per example.",
        ),
    }
    if np.isfinite(result.column("pgd_l2_eps")).any():
        figures["flip_vs_pgd"] = (
            _flip_vs_attack(result),
            "SiMExp flip distance against the smallest flipping PGD radius, per example "
            "(points above y = x: the walk's flip is longer than the attack's).",
        )
    if result.maps:
        order = np.argsort(result.column("flip_l2"), kind="stable")
        k = min(strip_size, len(order))
        caption = (
            "Top: input; middle: leverage 1 - kappa (dark: the class absorbs moves of that "
            "pixel); bottom: |SiMExp flip displacement|."
        )
        figures["most_robust"] = (
            _strip(result, order[::-1][:k], "most robust (largest flip distance)"),
            "Most robust examples. " + caption,
        )
        figures["least_robust"] = (
            _strip(result, order[:k], "least robust (smallest flip distance)"),
            "Least robust examples. " + caption,
        )
    return figures
