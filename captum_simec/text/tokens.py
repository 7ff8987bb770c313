"""Token-level summaries of maps over embeddings: one score per token from (batch, T, H).

A map on the embedding coordinates of each token (from `LayerSiMECAttribution` on the
embedding layer, or `SiMECAttribution` on ``inputs_embeds``) has H values per token. The
summary of token `t`:

- ``"norm"``: `||a_t||_2` over the H coordinates (>= 0). For relevance with a one-row
  metric (``"target"``, ``"margin"``) it is `||d f_t / d e_t||`, the rate of change of the
  output along the token's fastest direction; with more rows, the Frobenius norm of the
  token's block of `A`, an upper bound of that rate;
- ``"sum"``: `sum_j a_tj`, signed (for signed relevance, signed flips, Captum's LayerIG:
  the usual token attribution of text tutorials);
- ``"mean"``: `(1/H) sum_j a_tj` (for robustness: the share of a random move of the
  token's embedding that the class absorbs, on average over its coordinates).

Padded positions (attention mask 0) score exactly 0.
"""

from __future__ import annotations

import torch
from torch import Tensor

from captum_simec._validation import check_choice

__all__ = ["TOKEN_REDUCTIONS", "token_scores"]

TOKEN_REDUCTIONS = ("norm", "sum", "mean")


def token_scores(
    attributions: Tensor, attention_mask: Tensor | None = None, reduce: str = "norm"
) -> Tensor:
    """One score per token (batch, T) from a map over token embeddings (batch, T, ...).

    Args:
        attributions: the map, batch first, positions second, embedding dims after.
        attention_mask: (batch, T), 1 for a token and 0 for padding; padded positions score
            exactly 0. None: every position is a token.
        reduce: ``"norm"`` (L2 over the embedding dims), ``"sum"`` (signed) or ``"mean"``.

    Raises:
        TypeError: `attributions` is not a floating-point tensor.
        ValueError: fewer than three dims, an unknown `reduce`, or a mask of another shape.
    """
    if not isinstance(attributions, Tensor) or not attributions.is_floating_point():
        raise TypeError("`attributions` must be a floating-point tensor (batch, T, H).")
    if attributions.dim() < 3:
        raise ValueError(
            f"`attributions` has shape {tuple(attributions.shape)}: a token-level summary needs "
            "(batch, T, H) maps over token embeddings (from the embedding layer's attribution)."
        )
    check_choice(reduce, "reduce", TOKEN_REDUCTIONS)
    values = attributions.flatten(start_dim=2)
    if reduce == "norm":
        scores = torch.linalg.vector_norm(values, dim=2)
    elif reduce == "sum":
        scores = values.sum(dim=2)
    else:
        scores = values.mean(dim=2)
    if attention_mask is None:
        return scores
    if tuple(attention_mask.shape) != tuple(scores.shape):
        raise ValueError(
            f"`attention_mask` has shape {tuple(attention_mask.shape)}; the map's positions "
            f"are {tuple(scores.shape)} (batch, T)."
        )
    return torch.where(attention_mask.to(scores.device).bool(), scores, 0.0)
