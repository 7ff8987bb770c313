"""Figures of SiMEC / SiMExp walks: image strips, class scatters, drift and rank traces.

Every function builds a `matplotlib.figure.Figure` without pyplot, so it works on any
backend (Agg included) and never opens a window; save it with `fig.savefig(path)`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from torch import Tensor

if TYPE_CHECKING:
    from captum_simec.explore import Walk

__all__ = ["plot_class_scatter", "plot_image_strip", "plot_traces"]


def _check_example(walk: Walk, example: int) -> None:
    if isinstance(example, bool) or not isinstance(example, int):
        raise TypeError(f"`example` must be an int, got {type(example).__name__}.")
    if not 0 <= example < walk.batch_size:
        raise ValueError(
            f"`example` = {example} is out of range for a walk of {walk.batch_size} example(s)."
        )


def _as_image(tensor: Tensor) -> np.ndarray:
    """(H, W), (1, H, W), (C, H, W) with C in {3, 4}, or (H, W, C) to a displayable array."""
    array = tensor.detach().double().cpu().numpy()
    if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
        array = np.moveaxis(array, 0, -1)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 1:
        side = int(round(np.sqrt(array.size)))
        if side * side != array.size:
            raise ValueError(
                f"A flat input of {array.size} features is not a square image; pass "
                "inputs shaped (H, W) or (C, H, W)."
            )
        array = array.reshape(side, side)
    if array.ndim not in (2, 3):
        raise ValueError(
            f"Cannot show an input of shape {tuple(tensor.shape)} as an image; expected "
            "(H, W), (C, H, W) or (H, W, C)."
        )
    return array


def plot_image_strip(
    walk: Walk,
    example: int = 0,
    *,
    max_images: int = 8,
    input_index: int = 0,
    class_names: Sequence[str] | None = None,
    cmap: str = "gray",
    image_width: float = 1.6,
) -> Figure:
    """The input at evenly spaced saved points of one example, titled by class and probability.

    All images share one colour scale (the strip's min and max), so changes between them
    are visible whatever the value range (pixels in [0, 1], normalised, or raw).

    Args:
        walk: a `Walk` over image inputs (per-example shape (H, W), (C, H, W) or (H, W, C)).
        example: which example of the batch.
        max_images: most images shown (the start and the end always are).
        input_index: which input, for tuple inputs.
        class_names: names of the classes for the titles.
        cmap: colour map for single-channel images.
        image_width: width of one image in inches.

    Returns:
        The figure.
    """
    _check_example(walk, example)
    if max_images < 2:
        raise ValueError(f"`max_images` must be at least 2, got {max_images}.")
    points = walk.points
    if isinstance(points, tuple):
        points = points[input_index]
    saves = points.shape[0]
    chosen = np.unique(np.linspace(0, saves - 1, min(max_images, saves)).round().astype(int))
    images = [_as_image(points[i, example]) for i in chosen]
    low = min(float(image.min()) for image in images)
    high = max(float(image.max()) for image in images)
    scale = high - low if high > low else 1.0
    probabilities = walk.probabilities()[:, example]
    figure = Figure(figsize=(image_width * len(chosen), image_width + 0.6), layout="constrained")
    axes = figure.subplots(1, len(chosen), squeeze=False)[0]
    for ax, index, image in zip(axes, chosen, images, strict=True):
        if image.ndim == 3:
            ax.imshow(np.clip((image - low) / scale, 0.0, 1.0))
        else:
            ax.imshow(image, cmap=cmap, vmin=low, vmax=low + scale)
        step = int(walk.saved_steps[index])
        if walk.outputs.shape[-1] > 1:
            label = int(probabilities[index].argmax())
            name = class_names[label] if class_names is not None else str(label)
            title = f"step {step}\n{name} (p={float(probabilities[index, label]):.2f})"
        else:
            title = f"step {step}\nf={float(walk.outputs[index, example, 0]):.4g}"
        ax.set_title(title, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    figure.suptitle(f"{walk.kind}, example {example}", fontsize=9)
    return figure


def plot_class_scatter(
    walk: Walk,
    dims: Sequence[int] = (0, 1),
    level_set: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    *,
    examples: Sequence[int] | None = None,
    feature_names: Sequence[str] | None = None,
    grid: int = 200,
) -> Figure:
    """Saved points of the walk projected on two or three input features, coloured by step.

    Args:
        walk: any `Walk` (features are indexed in the flattened input).
        dims: two or three flat feature indices.
        level_set: optional `level_set(X, Y) -> Z` on a 2-D grid; its contour through each
            start point is drawn (e.g. the exact class of a 2 -> 1 model). 2-D plots only.
        examples: which examples to show (default: all).
        feature_names: names of all flat features, for the axis labels.
        grid: grid resolution of the level-set contour.

    Returns:
        The figure.
    """
    dims = tuple(dims)
    n = walk.points_flat.shape[-1]
    if len(dims) not in (2, 3) or not all(isinstance(d, int) and 0 <= d < n for d in dims):
        raise ValueError(f"`dims` must be 2 or 3 feature indices in [0, {n}), got {dims}.")
    if level_set is not None and len(dims) != 2:
        raise ValueError("`level_set` contours are drawn on 2-D plots only: pass two `dims`.")
    chosen = range(walk.batch_size) if examples is None else list(examples)
    for example in chosen:
        _check_example(walk, example)
    points = walk.points_flat.detach().double().cpu().numpy()
    figure = Figure(figsize=(5.5, 4.5), layout="constrained")
    ax = figure.add_subplot(projection="3d" if len(dims) == 3 else None)
    colour = None
    for example in chosen:
        last = int(torch.searchsorted(walk.saved_steps, walk.stopped_at[example], right=True))
        track = points[:last, example][:, dims]
        colour = ax.scatter(*track.T, c=walk.saved_steps[:last].numpy(), s=6, cmap="viridis")
        ax.scatter(*track[0], marker="x", color="red", s=40)
    if colour is not None:
        figure.colorbar(colour, ax=ax, label="step")
    if level_set is not None:
        shown = points[:, list(chosen)][..., dims]
        low, high = shown.reshape(-1, 2).min(axis=0), shown.reshape(-1, 2).max(axis=0)
        pad = 0.1 * np.maximum(high - low, 1e-12)
        xs = np.linspace(low[0] - pad[0], high[0] + pad[0], grid)
        ys = np.linspace(low[1] - pad[1], high[1] + pad[1], grid)
        grid_x, grid_y = np.meshgrid(xs, ys)
        values = np.asarray(level_set(grid_x, grid_y))
        starts = np.asarray(level_set(shown[0, :, 0], shown[0, :, 1]))
        ax.contour(grid_x, grid_y, values, levels=np.unique(starts), colors="grey")
    names = feature_names if feature_names is not None else [f"x[{d}]" for d in range(n)]
    ax.set_xlabel(names[dims[0]])
    ax.set_ylabel(names[dims[1]])
    if len(dims) == 3:
        ax.set_zlabel(names[dims[2]])
    ax.set_title(f"{walk.kind}: saved points", fontsize=9)
    return figure


def plot_traces(walk: Walk, examples: Sequence[int] | None = None) -> Figure:
    """Metric drift `||C (f(x_k) - f(x_0))||` and rank per step, one line per example.

    Args:
        walk: any `Walk`.
        examples: which examples (default: at most the first 10).

    Returns:
        The figure (two stacked panels sharing the step axis).
    """
    chosen = range(min(walk.batch_size, 10)) if examples is None else list(examples)
    for example in chosen:
        _check_example(walk, example)
    steps = np.arange(walk.num_steps + 1)
    figure = Figure(figsize=(6.5, 4.5), layout="constrained")
    drift_ax, rank_ax = figure.subplots(2, 1, sharex=True)
    for example in chosen:
        drift = walk.drift[:, example].numpy()
        rank = walk.rank[:, example].numpy().astype(float)
        rank[rank < 0] = np.nan
        drift_ax.plot(steps, drift, lw=1, label=f"example {example}")
        rank_ax.step(steps, rank, where="post", lw=1)
    drift_ax.set_yscale("symlog", linthresh=1e-12)
    drift_ax.set_ylabel(f"drift ({walk.metric})")
    rank_ax.set_ylabel("rank")
    shown = walk.rank[:, list(chosen)]
    if (shown >= 0).any():  # integer ticks, half a unit of room above and below
        ranks = shown[shown >= 0]
        rank_ax.set_ylim(int(ranks.min()) - 0.5, int(ranks.max()) + 0.5)
        rank_ax.yaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    rank_ax.set_xlabel("step")
    if len(chosen) <= 10:
        drift_ax.legend(fontsize=7)
    drift_ax.set_title(walk.kind, fontsize=9)
    return figure
