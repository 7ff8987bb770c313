"""Figures for text: token maps of several methods, and a walk read back as tokens.

- `plot_token_scores`: per example, one row per method of coloured word cells (one colour
  scale per row: each row divided by its largest `|value|`, red positive, blue negative;
  padded positions are left out);
- `plot_token_walk`: a `TokenReading` as a table of sentences, one row per saved point where
  a token or the prediction changed, changed words highlighted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from torch import Tensor

from captum_simec.viz.attributions import select_examples

if TYPE_CHECKING:
    from captum_simec.text import TokenReading

__all__ = ["plot_token_scores", "plot_token_walk"]

Vocabulary = Sequence[str] | Callable[[list[int]], list[str]] | None


def _row_values(scores: Tensor, example: int, length: int) -> tuple[np.ndarray, bool]:
    values = scores[example, :length].detach().cpu().double().numpy()
    largest = np.abs(values).max()
    return (values / largest if largest > 0 else values), bool((values < 0).any())


def plot_token_scores(
    words: Sequence[Sequence[str]],
    scores: Mapping[str, Tensor],
    examples: int | Sequence[int] | None = None,
    attention_mask: Tensor | None = None,
) -> Figure:
    """Token scores (batch, T) of several methods, as rows of coloured words per example.

    Args:
        words: the words of each example (batch lists; padding may be left out).
        scores: method name -> (batch, T) token scores (e.g. from `token_scores`).
        examples: which examples (default: the first four).
        attention_mask: (batch, T); only its real tokens are drawn (default: all of `words`).

    Raises:
        ValueError: no methods, or a score tensor that is not (batch, T).
    """
    if not scores:
        raise ValueError("`scores` is empty: pass at least one method's token scores.")
    batch = len(words)
    for name, values in scores.items():
        if values.dim() != 2 or values.shape[0] != batch:
            raise ValueError(f"scores[{name!r}] must be (batch, T) for {batch} examples.")
    chosen = select_examples(batch, examples)
    width = max(len(words[b]) for b in chosen)
    fig = Figure(figsize=(1.0 + 0.75 * width, 0.45 * len(scores) * len(chosen) + 0.6))
    axes = fig.subplots(len(chosen), 1, squeeze=False)[:, 0]
    for ax, b in zip(axes, chosen, strict=True):
        length = len(words[b]) if attention_mask is None else int(attention_mask[b].sum())
        grid, signed = zip(*(_row_values(v, b, length) for v in scores.values()), strict=True)
        cmap, norm = ("RdBu_r", Normalize(-1, 1)) if any(signed) else ("Reds", Normalize(0, 1))
        ax.imshow(np.stack(grid), cmap=cmap, norm=norm, aspect="auto")
        for row, values in enumerate(grid):
            for col in range(length):
                light = abs(values[col]) < 0.6
                ax.text(col, row, words[b][col], ha="center", va="center", fontsize=8,
                        color="black" if light else "white")  # fmt: skip
        ax.set_yticks(range(len(scores)), list(scores), fontsize=8)
        ax.set_xticks([])
        ax.set_title(f"example {b}", fontsize=9, loc="left")
    fig.tight_layout()
    return fig


def _rows_to_show(reading: TokenReading, example: int, distance: str, limit: int) -> list[int]:
    """The saved points where example `example`'s tokens or prediction changed (and the ends),
    up to its last step."""
    walked = int((reading.saved_steps < int(reading.stopped_at[example])).sum()) + 1
    tokens = reading.tokens(distance)[:walked, example]
    predictions = reading.predictions[:walked, example]
    changes = torch.ones(tokens.shape[0], dtype=torch.bool)
    changes[1:] = (tokens[1:] != tokens[:-1]).any(dim=1).cpu() | (
        predictions[1:] != predictions[:-1]
    ).cpu()
    changes[-1] = True
    rows = changes.nonzero().flatten().tolist()
    if len(rows) > limit:  # keep the first, the last, and evenly spread ones between
        keep = np.linspace(0, len(rows) - 1, limit).round().astype(int)
        rows = [rows[i] for i in sorted(set(keep.tolist()))]
    return rows


def plot_token_walk(
    reading: TokenReading,
    vocabulary: Vocabulary = None,
    example: int = 0,
    distance: str = "l2",
    max_rows: int = 12,
) -> Figure:
    """One example of a walk read back as tokens: a sentence per saved point that changed.

    Words that differ from the start are highlighted (orange), with the distance of the
    point to that word below it; a row where the prediction differs from the start is marked.

    Args:
        reading: from `captum_simec.text.read_tokens`.
        vocabulary: a list of words by id, a function of a list of ids, or None (ids).
        example: which example of the batch.
        distance: ``"l2"`` or ``"cosine"``.
        max_rows: most sentences shown (the start, the end and evenly spread ones).
    """
    rows = _rows_to_show(reading, example, distance, max_rows)
    real = reading.attention_mask[example].cpu()
    nearest = reading.nearest(distance)
    tokens = nearest.tokens[:, example, :, 0].cpu()[:, real]
    gaps = nearest.distances[:, example, :, 0].cpu()[:, real]
    start = reading.input_ids[example].cpu()[real]
    width = tokens.shape[1]
    fig = Figure(figsize=(1.6 + 0.85 * width, 0.5 * len(rows) + 0.8))
    ax = fig.subplots()
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    first_prediction = int(reading.predictions[0, example])
    sentences = reading.sentences(vocabulary, distance, example)
    for y, save in enumerate(rows):
        for x, word in enumerate(sentences[save]):
            changed = bool(tokens[save, x] != start[x])
            if changed:
                ax.add_patch(_cell(x, y, "#fdbf6f"))
            ax.text(x, y - 0.1, word, ha="center", va="center", fontsize=8)
            ax.text(x, y + 0.25, f"{float(gaps[save, x]):.2f}", ha="center", va="center",
                    fontsize=5, color="0.45")  # fmt: skip
        prediction = int(reading.predictions[save, example])
        flag = "" if prediction == first_prediction else "  (changed)"
        step = int(reading.saved_steps[save])
        ax.text(-0.6, y, f"step {step}, class {prediction}{flag}", ha="right", va="center",
                fontsize=7, color="black" if not flag else "#b2182b")  # fmt: skip
    ax.axis("off")
    ax.set_title(
        f"{reading.kind}, example {example}: nearest tokens ({distance}) at the saved points",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


def _cell(x: float, y: float, colour: str) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((x - 0.45, y - 0.4), 0.9, 0.8, color=colour, zorder=0)
