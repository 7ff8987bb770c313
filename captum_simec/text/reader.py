"""Reading the points of a walk in embedding space back as tokens: `read_tokens`.

Every saved point holds one embedding per position, `e` (H,). Its nearest vocabulary tokens
are the rows `w_v` of the embedding matrix `W` (V, H) closest to it:

- L2: `||e - w_v||^2 = ||e||^2 - 2 e . w_v + ||w_v||^2`;
- cosine: `1 - e . w_v / (||e|| ||w_v||)`.

Both come from the same products `e . w_v`: one matrix product per block of points and of
the vocabulary (`chunk_size` rows of `W` at a time, so memory stays bounded for any V), with
a running top-k. The `TokenReading` then says which positions changed token while the
prediction stayed the same (a SiMEC walk: words the model treats as interchangeable here),
and which had changed when it changed (a SiMExp walk).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from captum_simec._validation import check_choice, check_int
from captum_simec.explore import Walk

__all__ = ["DISTANCES", "NearestTokens", "TokenReading", "read_tokens"]

DISTANCES = ("l2", "cosine")
#: most (point, token) products held at once by `read_tokens` (4 MB in float32: blocks that
#: stay in cache were 2x faster than 64 MB ones, measured at V = 30,522, H = 64).
_BLOCK_ELEMENTS = 1 << 20


@dataclass
class NearestTokens:
    """The `k` nearest vocabulary tokens of every saved point, per position, for one distance.

    Attributes:
        tokens: token ids (saves, batch, T, k), nearest first.
        distances: their distances (saves, batch, T, k): L2, or `1 - cosine similarity`.
    """

    tokens: Tensor
    distances: Tensor


@dataclass
class TokenReading:
    """A walk in embedding space read back as tokens (see `read_tokens`).

    Attributes:
        l2: nearest tokens by Euclidean distance.
        cosine: nearest tokens by cosine distance.
        input_ids: the walk's start tokens (batch, T).
        attention_mask: the real tokens (batch, T), bool; padded positions never count as
            changed.
        predictions: the model's decision at each saved point (saves, batch), from the walk:
            the class (for (T, V) language-model outputs, the token at the target's
            position).
        saved_steps: the step of each saved point (saves,).
        stopped_at: the steps each example took (batch,); its later saved points repeat
            its final point.
        kind: the walk's kind ("simec/isotropic", "simexp/leave_class", ...).
    """

    l2: NearestTokens
    cosine: NearestTokens
    input_ids: Tensor
    attention_mask: Tensor
    predictions: Tensor
    saved_steps: Tensor
    stopped_at: Tensor
    kind: str

    def nearest(self, distance: str = "l2") -> NearestTokens:
        """The `NearestTokens` of ``"l2"`` or ``"cosine"``."""
        return getattr(self, check_choice(distance, "distance", DISTANCES))

    def tokens(self, distance: str = "l2") -> Tensor:
        """The nearest token at every saved point and position (saves, batch, T)."""
        return self.nearest(distance).tokens[..., 0]

    def changed(self, distance: str = "l2") -> Tensor:
        """Whether each real position's nearest token differs from its start token
        (saves, batch, T)."""
        return (self.tokens(distance) != self.input_ids) & self.attention_mask

    @property
    def kept(self) -> Tensor:
        """Whether the prediction at each saved point is the one at the start (saves, batch)."""
        return self.predictions == self.predictions[0]

    @property
    def first_change(self) -> Tensor:
        """Index of the first saved point whose prediction differs from the start (batch,);
        -1 where it never changes."""
        changed = ~self.kept
        first = changed.to(torch.int8).argmax(dim=0)
        return torch.where(changed.any(dim=0), first, -1)

    def changed_while_kept(self, distance: str = "l2") -> Tensor:
        """Positions whose token changed at some saved point before the prediction changed
        (batch, T): what a SiMEC walk shows the model to treat as interchangeable."""
        before = torch.cumprod(self.kept.to(torch.int8), dim=0).bool()  # kept so far
        return (self.changed(distance) & before.unsqueeze(2)).any(dim=0)

    def changed_at_flip(self, distance: str = "l2") -> Tensor:
        """Positions whose token differs from the start at the first saved point with another
        prediction (batch, T); all False where the prediction never changes (SiMExp)."""
        first = self.first_change
        changed = self.changed(distance)
        index = first.clamp_min(0).to(changed.device)
        at = changed[index, torch.arange(changed.shape[1], device=changed.device)]
        return at & (first >= 0).to(at.device).unsqueeze(1)

    def plot(
        self,
        vocabulary: Sequence[str] | Callable[[list[int]], list[str]] | None = None,
        example: int = 0,
        distance: str = "l2",
    ) -> Any:
        """`captum_simec.viz.plot_token_walk(self, ...)`: the sentences at the saved points
        where a token or the prediction changed (a Figure). Imports the presentation layer."""
        from captum_simec.viz import plot_token_walk

        return plot_token_walk(self, vocabulary, example=example, distance=distance)

    def sentences(
        self,
        vocabulary: Sequence[str] | Callable[[list[int]], list[str]] | None = None,
        distance: str = "l2",
        example: int = 0,
    ) -> list[list[str]]:
        """Example `example`'s tokens at every saved point, decoded by `vocabulary`.

        Args:
            vocabulary: a list of words indexed by id, a function of a list of ids (e.g. a
                tokenizer's ``convert_ids_to_tokens``), or None (ids as text).
            distance: ``"l2"`` or ``"cosine"``.
            example: which example of the batch.
        """
        ids = self.tokens(distance)[:, example]
        real = self.attention_mask[example]
        return [_decode(row[real].tolist(), vocabulary) for row in ids]

    def describe(
        self,
        vocabulary: Sequence[str] | Callable[[list[int]], list[str]] | None = None,
        distance: str = "l2",
        examples: Sequence[int] | None = None,
    ) -> str:
        """A few lines per example: the start sentence, the tokens that changed while the
        prediction stayed, and the sentence where the prediction changed (if it did).

        Args:
            vocabulary: as in `sentences`.
            distance: ``"l2"`` or ``"cosine"``.
            examples: which examples (default: all).
        """
        lines = []
        changed, kept = self.changed(distance), self.changed_while_kept(distance)
        for b in range(self.input_ids.shape[0]) if examples is None else examples:
            text = self.sentences(vocabulary, distance, b)
            lines.append(f"example {b} ({self.kind}): {' '.join(text[0])!r}")
            positions = kept[b].nonzero().flatten().tolist()
            words = [self._first_word(changed, b, t, vocabulary, distance) for t in positions]
            lines.append(
                f"  prediction {int(self.predictions[0, b])} kept; tokens that changed: "
                + (", ".join(words) if words else "none")
            )
            first = int(self.first_change[b])
            if first >= 0:
                lines.append(
                    f"  prediction {int(self.predictions[0, b])} -> "
                    f"{int(self.predictions[first, b])} at step {int(self.saved_steps[first])}: "
                    f"{' '.join(text[first])!r}"
                )
        return "\n".join(lines)

    def _first_word(self, changed: Tensor, b: int, t: int, vocabulary: Any, distance: str) -> str:
        """`'start' -> 'new' (step k)` for the first change of position t of example b."""
        save = int(changed[:, b, t].to(torch.int8).argmax())
        old = _decode([int(self.input_ids[b, t])], vocabulary)[0]
        new = _decode([int(self.tokens(distance)[save, b, t])], vocabulary)[0]
        return f"{old!r} -> {new!r} (step {int(self.saved_steps[save])})"


def _decode(ids: list[int], vocabulary: Any) -> list[str]:
    if vocabulary is None:
        return [str(i) for i in ids]
    if callable(vocabulary):
        return list(vocabulary(ids))
    return [vocabulary[i] for i in ids]


def _vocabulary_matrix(embedding: nn.Module | Tensor) -> Tensor:
    weight = embedding.weight if isinstance(embedding, nn.Module) else embedding
    if not isinstance(weight, Tensor) or weight.dim() != 2 or not weight.is_floating_point():
        raise TypeError(
            "`embedding` must be an nn.Embedding (or a module with a (V, H) `weight`) or a "
            "(V, H) floating-point tensor of token vectors."
        )
    return weight.detach()


def _merge(
    best: tuple[Tensor, Tensor] | None, scores: Tensor, offset: int, k: int, largest: bool
) -> tuple[Tensor, Tensor]:
    """The `k` best of the running best and a new block of `scores` (rows, chunk)."""
    values, index = scores.topk(min(k, scores.shape[1]), dim=1, largest=largest)
    index = index + offset
    if best is not None:
        values, order = torch.cat([best[0], values], 1).topk(k, dim=1, largest=largest)
        index = torch.cat([best[1], index], 1).gather(1, order)
    return values, index


def _nearest_rows(
    points: Tensor, weight: Tensor, k: int, chunk_size: int
) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """The k nearest rows of `weight` to each row of `points`: (distances, indices) by L2
    and by cosine.

    Per row of `points` its own norm is a constant, so the search ranks `||w||^2 - 2 p.w`
    (L2) and `p.w / ||w||` (cosine) from the one product `p.w`; the distances are completed
    for the k found only.
    """
    points = points.to(weight.dtype)
    weight_norm = weight.square().sum(dim=1)
    inverse_norm = 1.0 / weight_norm.sqrt().clamp_min(torch.finfo(weight.dtype).tiny)
    l2 = cosine = None
    for start in range(0, weight.shape[0], chunk_size):
        block = slice(start, start + chunk_size)
        products = points @ weight[block].T  # the one product per block of points and tokens
        l2 = _merge(l2, torch.add(weight_norm[block], products, alpha=-2), start, k, False)
        cosine = _merge(cosine, products * inverse_norm[block], start, k, True)
    point_norm = points.square().sum(dim=1, keepdim=True)
    l2_distance = (l2[0] + point_norm).clamp_min(0).sqrt()
    cosine_distance = 1 - cosine[0] / point_norm.sqrt().clamp_min(torch.finfo(weight.dtype).tiny)
    return (l2_distance, l2[1]), (cosine_distance, cosine[1])


def read_tokens(
    walk: Walk,
    embedding: nn.Module | Tensor,
    input_ids: Tensor,
    attention_mask: Tensor | None = None,
    *,
    k: int = 1,
    chunk_size: int = 4096,
) -> TokenReading:
    """Reads every saved point of a walk in embedding space back as its nearest tokens.

    Args:
        walk: a walk whose points are token embeddings (batch, T, H), e.g. from
            `embedding_simec` / `embedding_simexp`.
        embedding: the embedding module (its `weight` (V, H) is the vocabulary) or the
            (V, H) matrix itself.
        input_ids: the walk's start tokens (batch, T).
        attention_mask: (batch, T), 1 for a token, 0 for padding (None: all tokens).
        k: how many nearest tokens to keep per position.
        chunk_size: vocabulary rows per matrix product (bounds the memory).

    Returns:
        A `TokenReading`.

    Raises:
        TypeError: an `embedding` without a (V, H) weight.
        ValueError: a walk whose points are not (T, H) per example with H the vocabulary's
            width, ids or a mask of another shape, or `k` above the vocabulary size.
    """
    weight = _vocabulary_matrix(embedding)
    vocabulary, width = weight.shape
    check_int(k, "k")
    check_int(chunk_size, "chunk_size")
    if k > vocabulary:
        raise ValueError(f"`k`={k} exceeds the {vocabulary} tokens of the vocabulary.")
    shapes = walk.input_shapes
    if len(shapes) != 1 or len(shapes[0]) != 2 or shapes[0][1] != width:
        raise ValueError(
            f"The walk's points have per-example shape(s) {[tuple(s) for s in shapes]}; reading "
            f"them as tokens needs (T, {width}): one embedding of the vocabulary's width per "
            "position (walk with embedding_simec / embedding_simexp)."
        )
    length = shapes[0][0]
    batch = walk.batch_size
    mask = _reading_mask(input_ids, attention_mask, (batch, length))
    points = walk.points_flat.reshape(-1, width)
    rows_per_block = max(1, _BLOCK_ELEMENTS // min(chunk_size, vocabulary))
    l2_parts, cosine_parts = [], []
    for start in range(0, points.shape[0], rows_per_block):
        l2, cosine = _nearest_rows(points[start : start + rows_per_block], weight, k, chunk_size)
        l2_parts.append(l2)
        cosine_parts.append(cosine)
    shape = (walk.points_flat.shape[0], batch, length, k)

    def nearest(parts: list[tuple[Tensor, Tensor]]) -> NearestTokens:
        distances, tokens = (torch.cat(p).reshape(shape) for p in zip(*parts, strict=True))
        return NearestTokens(tokens=tokens, distances=distances)

    return TokenReading(
        l2=nearest(l2_parts),
        cosine=nearest(cosine_parts),
        input_ids=input_ids.to(weight.device),
        attention_mask=mask.to(weight.device),
        predictions=_classes(walk).to(weight.device),
        saved_steps=walk.saved_steps,
        stopped_at=walk.stopped_at,
        kind=walk.kind,
    )


def _classes(walk: Walk) -> Tensor:
    """The walk's decisions as classes of their position (saves, batch)."""
    classes = walk.outputs.shape[-1] if walk.classes is None else walk.classes
    return walk.predictions % max(1, classes)


def _reading_mask(
    input_ids: Tensor, attention_mask: Tensor | None, shape: tuple[int, int]
) -> Tensor:
    """The real-token mask (batch, T), bool, after checking the ids' and the mask's shapes."""
    if not isinstance(input_ids, Tensor) or input_ids.is_floating_point():
        raise TypeError("`input_ids` must be an integer tensor of token ids (batch, T).")
    if tuple(input_ids.shape) != shape:
        raise ValueError(
            f"`input_ids` has shape {tuple(input_ids.shape)}; the walk has {shape} (batch, T)."
        )
    if attention_mask is None:
        return torch.ones(shape, dtype=torch.bool, device=input_ids.device)
    if tuple(attention_mask.shape) != shape:
        raise ValueError(
            f"`attention_mask` has shape {tuple(attention_mask.shape)}; the walk has {shape} "
            "(batch, T)."
        )
    return attention_mask.bool().to(input_ids.device)
