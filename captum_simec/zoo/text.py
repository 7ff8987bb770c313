"""A synthetic sentiment task over a small vocabulary of real words (seeded, no download).

Each sentence is ``[CLS] w_1 ... w_L [SEP]`` padded to a fixed length: neutral filler words
around one to three sentiment words of its label's polarity and, in some sentences, one of
the other polarity (the majority decides). A two-layer transformer learns it in seconds, so
tutorials and benchmarks can train a text classifier from scratch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "NEGATIVE_WORDS",
    "NEUTRAL_WORDS",
    "POSITIVE_WORDS",
    "SPECIAL_TOKENS",
    "TextData",
    "synthetic_sentiment",
]

SPECIAL_TOKENS = ("[PAD]", "[CLS]", "[SEP]")
POSITIVE_WORDS = (
    "good",
    "great",
    "excellent",
    "wonderful",
    "lovely",
    "superb",
    "brilliant",
    "enjoyable",
    "charming",
    "delightful",
)
NEGATIVE_WORDS = (
    "bad",
    "awful",
    "terrible",
    "boring",
    "dull",
    "poor",
    "horrible",
    "weak",
    "tedious",
    "disappointing",
)
NEUTRAL_WORDS = (
    "the",
    "a",
    "movie",
    "film",
    "plot",
    "acting",
    "story",
    "music",
    "was",
    "is",
    "and",
    "very",
    "really",
    "quite",
    "with",
    "ending",
    "cast",
    "scenes",
    "of",
    "this",
)


@dataclass
class TextData:
    """Token ids, attention masks and labels, with the vocabulary that decodes them.

    Attributes:
        input_ids: (N, T) token ids, ``[CLS]`` first, ``[SEP]`` after the last word, then
            ``[PAD]`` (id 0).
        attention_mask: (N, T) long, 1 for a token, 0 for padding.
        labels: (N,) long, 1 positive, 0 negative.
        vocabulary: the word of each id.
    """

    input_ids: Tensor
    attention_mask: Tensor
    labels: Tensor
    vocabulary: list[str]

    def decode(self, ids: Tensor | list[int], skip_padding: bool = True) -> str:
        """The words of one row of ids, separated by spaces (without ``[PAD]``)."""
        words = [self.vocabulary[int(i)] for i in ids]
        return " ".join(w for w in words if not (skip_padding and w == "[PAD]"))

    def __len__(self) -> int:
        return self.labels.shape[0]


def synthetic_sentiment(
    n: int, length: int = 12, seed: int = 0, mixed_share: float = 0.3
) -> TextData:
    """`n` labelled sentences of at most `length` tokens (``[CLS]`` and ``[SEP]`` included).

    Args:
        n: number of sentences (half positive, half negative, shuffled).
        length: tokens per row, padding included (at least 6).
        seed: the seed of every random choice.
        mixed_share: the share of sentences with one word of the other polarity.

    Raises:
        ValueError: `n < 1`, `length < 6`, or `mixed_share` outside [0, 1].
    """
    if n < 1 or length < 6 or not 0.0 <= mixed_share <= 1.0:
        raise ValueError(
            f"synthetic_sentiment needs n >= 1, length >= 6 and 0 <= mixed_share <= 1, got "
            f"n={n}, length={length}, mixed_share={mixed_share}."
        )
    vocabulary = [*SPECIAL_TOKENS, *POSITIVE_WORDS, *NEGATIVE_WORDS, *NEUTRAL_WORDS]
    index = {word: i for i, word in enumerate(vocabulary)}
    polar = (
        torch.tensor([index[w] for w in NEGATIVE_WORDS]),
        torch.tensor([index[w] for w in POSITIVE_WORDS]),
    )
    neutral = torch.tensor([index[w] for w in NEUTRAL_WORDS])
    generator = torch.Generator().manual_seed(seed)

    def draw(pool: Tensor, count: int) -> list[int]:
        return pool[torch.randint(len(pool), (count,), generator=generator)].tolist()

    labels = torch.arange(n) % 2
    labels = labels[torch.randperm(n, generator=generator)]
    ids = torch.zeros(n, length, dtype=torch.long)
    mask = torch.zeros(n, length, dtype=torch.long)
    for row, label in enumerate(labels.tolist()):
        words = int(torch.randint(3, length - 1, (1,), generator=generator))  # 3..length-2
        own = int(torch.randint(1, 4, (1,), generator=generator))
        other = int(float(torch.rand(1, generator=generator)) < mixed_share and own >= 2)
        own = min(own, words - other)
        sentence = draw(neutral, words - own - other) + draw(polar[label], own)
        sentence += draw(polar[1 - label], other)
        order = torch.randperm(len(sentence), generator=generator).tolist()
        tokens = [index["[CLS]"], *(sentence[i] for i in order), index["[SEP]"]]
        ids[row, : len(tokens)] = torch.tensor(tokens)
        mask[row, : len(tokens)] = 1
    return TextData(input_ids=ids, attention_mask=mask, labels=labels, vocabulary=vocabulary)
