"""Figures of attribution maps (images, time series, tabular inputs) and of an `Explanation`.

Captum 0.9's `visualize_image_attr` asserts on an all-zero map and mis-plots channels-first
arrays, and `visualize_timeseries_attr` breaks with matplotlib >= 3.9; nothing here uses
them. Every grid is methods x examples on one colour scale: each panel is divided by its
largest `|value|` (``scale="panel"``) or by its method's largest `|value|` over the examples
shown (``scale="method"``); an all-zero map stays zero. All panels then share [-1, 1] (or
[0, 1] when no map is negative) and one colour bar. Figures are
built with `matplotlib.figure.Figure`, without pyplot's global state; save them with
`fig.savefig(path)`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from torch import Tensor

from captum_simec.viz.labels import format_value

__all__ = [
    "KINDS",
    "infer_kind",
    "plot_attributions",
    "plot_curves",
    "plot_explanation",
    "select_examples",
]

KINDS = ("image", "timeseries", "tabular")
CHANNEL_REDUCTIONS = ("sum", "abs_sum", "mean", "max_abs")
SCALES = ("panel", "method")
_PANEL = 2.2


def infer_kind(per_example_shape: Sequence[int]) -> str:
    """``"image"`` for (C, H, W), ``"timeseries"`` for (T, d), ``"tabular"`` for (d,)."""
    dims = len(per_example_shape)
    if dims == 3:
        return "image"
    if dims == 2:
        return "timeseries"
    if dims == 1:
        return "tabular"
    raise ValueError(
        f"Cannot plot per-example shape {tuple(per_example_shape)}: expected (C, H, W) images, "
        "(T, d) time series or (d,) tabular features; pass kind= for (H, W) images."
    )


def select_examples(batch: int, examples: int | Sequence[int] | None, default: int = 4) -> list:
    """Indices of the examples to draw: the first `examples`, the given list, or the default."""
    if examples is None:
        return list(range(min(batch, default)))
    if isinstance(examples, int):
        if examples < 1:
            raise ValueError(f"`examples` must be positive, got {examples}.")
        return list(range(min(batch, examples)))
    chosen = [int(i) for i in examples]
    if any(not -batch <= i < batch for i in chosen):
        raise ValueError(f"`examples` {chosen} out of range for a batch of {batch}.")
    return chosen


def _pick(values: Tensor | tuple[Tensor, ...], input_index: int) -> Tensor:
    if isinstance(values, tuple):
        if not -len(values) <= input_index < len(values):
            raise ValueError(f"input_index={input_index} but the maps hold {len(values)} tensors.")
        values = values[input_index]
    if not isinstance(values, Tensor):
        raise TypeError(f"Expected a tensor or a tuple of tensors, got {type(values).__name__}.")
    return values.detach().cpu().double()


def _map_panel(values: Tensor, kind: str, channel_reduce: str) -> np.ndarray:
    """One example's map as a 2-D array (image: H x W; time series: d x T) or 1-D (tabular)."""
    if kind == "image" and values.dim() == 3:
        if channel_reduce == "sum":
            values = values.sum(dim=0)
        elif channel_reduce == "abs_sum":
            values = values.abs().sum(dim=0)
        elif channel_reduce == "mean":
            values = values.mean(dim=0)
        else:
            values = values.gather(0, values.abs().argmax(dim=0, keepdim=True)).squeeze(0)
    elif kind == "timeseries":
        values = values.transpose(0, 1)
    return values.numpy()


def _input_panel(values: Tensor, kind: str) -> np.ndarray:
    """An input for display: images as H x W (grey) or H x W x 3 in [0, 1]; else as is."""
    if kind != "image":
        return values.numpy()
    if values.dim() == 3:
        values = values.permute(1, 2, 0) if values.shape[0] == 3 else values.mean(dim=0)
    low, high = values.min(), values.max()
    return ((values - low) / (high - low) if high > low else torch.zeros_like(values)).numpy()


def _normalised(panels: list[np.ndarray]) -> list[np.ndarray]:
    scale = max((float(np.abs(p).max()) for p in panels), default=0.0)
    return [p / scale if scale > 0 else p for p in panels]


def _draw_map(ax: Axes, panel: np.ndarray, kind: str, norm: Normalize, cmap: str) -> None:
    if kind == "tabular":
        colours = ScalarMappable(norm=norm, cmap=cmap).to_rgba(panel)
        ax.bar(np.arange(panel.shape[0]), panel, color=colours)
        ax.set_ylim(norm.vmin, norm.vmax)
        ax.axhline(0.0, color="black", linewidth=0.5)
        return
    ax.imshow(panel, cmap=cmap, norm=norm, aspect="auto" if kind == "timeseries" else "equal")
    if kind == "image":
        ax.set_xticks([])
        ax.set_yticks([])


def _draw_input(ax: Axes, panel: np.ndarray, kind: str) -> None:
    if kind == "image":
        ax.imshow(panel, cmap="gray" if panel.ndim == 2 else None)
        ax.set_xticks([])
        ax.set_yticks([])
    elif kind == "timeseries":
        ax.plot(panel, linewidth=0.8)
    else:
        ax.bar(np.arange(panel.shape[0]), panel, color="grey")


def _scale(signed: bool, cmap: str | None) -> tuple[Normalize, str]:
    norm = Normalize(-1.0, 1.0) if signed else Normalize(0.0, 1.0)
    return norm, cmap or ("RdBu_r" if signed else "viridis")


def plot_attributions(
    maps: Mapping[str, Tensor | tuple[Tensor, ...]],
    inputs: Tensor | tuple[Tensor, ...] | None = None,
    *,
    examples: int | Sequence[int] | None = None,
    kind: str = "auto",
    input_index: int = 0,
    channel_reduce: str = "sum",
    example_titles: Sequence[str] | None = None,
    scale: str = "panel",
    cmap: str | None = None,
) -> Figure:
    """A methods x examples grid of maps (first row: the inputs, when given).

    Images (C, H, W) are drawn as heat maps (channels reduced by `channel_reduce`), time
    series (T, d) as feature x time heat maps under the inputs' lines, tabular (d,) as bar
    charts. Each panel (or each method, over the examples shown) is scaled by its largest
    `|value|`, so all panels share one colour scale, safe on all-zero maps.

    Args:
        maps: method name -> map (batch first, a tensor or a tuple of tensors).
        inputs: the inputs, drawn in the first row.
        examples: how many (from the first) or which examples; default up to 4.
        kind: ``"auto"`` (by per-example dims: 3 image, 2 time series, 1 tabular),
            ``"image"`` (also (H, W)), ``"timeseries"`` or ``"tabular"``.
        input_index: which tensor of tuple maps/inputs to draw.
        channel_reduce: ``"sum"``, ``"abs_sum"``, ``"mean"`` or ``"max_abs"`` over image
            channels.
        example_titles: one title per drawn example (e.g. the predicted class).
        scale: ``"panel"`` (each map by its own max `|value|`: shapes compare) or
            ``"method"`` (by the method's max over the examples: magnitudes compare too).
        cmap: colour map (default diverging for signed maps, viridis otherwise).

    Returns:
        A matplotlib Figure.
    """
    if not maps:
        raise ValueError("`maps` is empty: pass at least one method's map.")
    if channel_reduce not in CHANNEL_REDUCTIONS:
        raise ValueError(f"channel_reduce={channel_reduce!r}; choose one of {CHANNEL_REDUCTIONS}.")
    if scale not in SCALES:
        raise ValueError(f"scale={scale!r}; choose one of {SCALES}.")
    tensors = {name: _pick(value, input_index) for name, value in maps.items()}
    first = next(iter(tensors.values()))
    kind = infer_kind(first.shape[1:]) if kind == "auto" else kind
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}; choose 'auto' or one of {KINDS}.")
    chosen = select_examples(first.shape[0], examples)
    if example_titles is not None and len(example_titles) != len(chosen):
        raise ValueError(f"`example_titles` needs {len(chosen)} titles, got {len(example_titles)}.")
    panels = {}
    for name, values in tensors.items():
        raw = [_map_panel(values[i], kind, channel_reduce) for i in chosen]
        panels[name] = _normalised(raw) if scale == "method" else [_normalised([p])[0] for p in raw]
    signed = any(float(p.min()) < 0 for rows in panels.values() for p in rows)
    norm, cmap = _scale(signed, cmap)
    rows = len(panels) + (inputs is not None)
    fig = Figure(figsize=(_PANEL * len(chosen) + 1.0, _PANEL * rows), layout="constrained")
    axes = np.asarray(fig.subplots(rows, len(chosen), squeeze=False))
    row = 0
    if inputs is not None:
        shown = _pick(inputs, input_index)
        for col, i in enumerate(chosen):
            _draw_input(axes[0, col], _input_panel(shown[i], kind), kind)
            title = f"example {i}" if example_titles is None else example_titles[col]
            axes[0, col].set_title(title, fontsize=9)
        axes[0, 0].set_ylabel("input", fontsize=9)
        row = 1
    for name, method_panels in panels.items():
        for col, panel in enumerate(method_panels):
            _draw_map(axes[row, col], panel, kind, norm, cmap)
        axes[row, 0].set_ylabel(name, fontsize=9)
        row += 1
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=axes, shrink=0.6, label="map / max|map|")
    return fig


def plot_curves(
    curves: Mapping[str, Any], title: str | None = None, ax: Axes | None = None
) -> Figure:
    """Mean deletion or insertion curve per method, AUC in the legend.

    Args:
        curves: method name -> `captum_simec.evaluation.PerturbationCurve`.
        title: axes title (default: the curves' mode and baseline).
        ax: draw into these axes instead of a new figure.
    """
    if not curves:
        raise ValueError("`curves` is empty.")
    fig = Figure(figsize=(5.0, 3.5), layout="constrained") if ax is None else ax.figure
    ax = ax or fig.subplots()
    for name, curve in curves.items():
        mean = curve.scores.mean(dim=0).cpu().numpy()
        auc = float(curve.auc.mean())
        ax.plot(curve.fractions.cpu().numpy(), mean, label=f"{name} (AUC {auc:.3f})")
    some = next(iter(curves.values()))
    ax.set_xlabel(f"fraction of features {'restored' if some.mode == 'insertion' else 'removed'}")
    ax.set_ylabel("target score")
    ax.set_title(title or f"{some.mode} to a {some.baseline} baseline", fontsize=10)
    ax.legend(fontsize=7)
    return fig


def plot_explanation(
    explanation: Any, examples: int | Sequence[int] | None = None, input_index: int = 0
) -> Figure:
    """Per example: the input, its relevance, its robustness and the spectrum of `g`.

    Args:
        explanation: a `captum_simec.attr.Explanation`.
        examples: how many (from the first) or which examples; default up to 4.
        input_index: which tensor of tuple inputs to draw.
    """
    inputs = _pick(explanation.inputs, input_index)
    relevance = _pick(explanation.relevance, input_index)
    robustness = _pick(explanation.robustness, input_index)
    kind = infer_kind(inputs.shape[1:])
    chosen = select_examples(inputs.shape[0], examples)
    fig = Figure(figsize=(4 * _PANEL, _PANEL * len(chosen)), layout="constrained")
    axes = np.asarray(fig.subplots(len(chosen), 4, squeeze=False))
    unit = Normalize(0.0, 1.0)
    for row, i in enumerate(chosen):
        _draw_input(axes[row, 0], _input_panel(inputs[i], kind), kind)
        axes[row, 0].set_title(
            f"example {i}: predicted {int(explanation.predicted[i])}", fontsize=9
        )
        (rel,) = _normalised([_map_panel(relevance[i], kind, "sum")])
        _draw_map(axes[row, 1], rel, kind, unit, "viridis")
        axes[row, 1].set_title("relevance / max", fontsize=9)
        kappa = _map_panel(robustness[i], kind, "mean")
        low, high = float(kappa.min()), float(kappa.max())
        _draw_map(axes[row, 2], kappa, kind, Normalize(low, max(high, low + 1e-12)), "magma")
        axes[row, 2].set_title(f"robustness in [{low:.3g}, {high:.3g}]", fontsize=9)
        values = explanation.eigenvalues[i].cpu().numpy()
        rank = int(explanation.rank[i])
        positive = values[values > 0]
        ax = axes[row, 3]
        if positive.size:
            ax.semilogy(np.arange(1, positive.size + 1), positive, "o-", markersize=3)
            ax.axvline(rank + 0.5, color="red", linewidth=0.8, linestyle="--")
            ax.set_xlim(0.5, max(positive.size, rank) + 1)
        ax.set_title(
            f"eigenvalues: rank {rank}, null {int(explanation.null_dim[i])}\n"
            f"gap {format_value(float(explanation.spectral_gap[i]), 3)}, rank margin "
            f"{format_value(float(explanation.rank_margin[i]), 3)}",
            fontsize=9,
        )
        ax.set_xlabel("k", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    return fig
