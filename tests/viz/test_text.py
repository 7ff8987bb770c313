"""The text figures: token maps of several methods, a walk read back as tokens."""

import io

import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

from captum_simec.text import embedding_simec, embedding_simexp, read_tokens
from captum_simec.viz import plot_token_scores, plot_token_walk

WORDS = [["a", "good", "film"], ["so", "bad", "plot"]]


class BagOfWords(nn.Module):
    """Logits (batch, 2) of the mean of tanh-transformed embeddings: no transformers needed."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embedding = nn.Embedding(9, 4, dtype=torch.float64)
        self.head = nn.Linear(4, 2, dtype=torch.float64)

    def forward(self, ids):
        return self.head(torch.tanh(self.embedding(ids)).mean(dim=1))


def test_token_scores_figure_has_a_row_per_method_and_skips_padding():
    scores = {"ours": torch.tensor([[0.1, 0.9, 0.2], [0.3, 0.8, 0.0]]), "theirs": -torch.ones(2, 3)}
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    figure = plot_token_scores(WORDS, scores, attention_mask=mask)
    assert isinstance(figure, Figure) and len(figure.axes) == 2
    texts = [t.get_text() for t in figure.axes[1].texts]
    assert texts.count("plot") == 0 and texts.count("bad") == 2  # padding left out
    figure.savefig(io.BytesIO(), format="png")
    with pytest.raises(ValueError, match="empty"):
        plot_token_scores(WORDS, {})
    with pytest.raises(ValueError, match=r"\(batch, T\)"):
        plot_token_scores(WORDS, {"ours": torch.ones(3)})


def test_token_walk_figure_shows_the_changes_up_to_the_stop():
    model = BagOfWords().eval()
    ids = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    vocabulary = [f"w{i}" for i in range(9)]
    walk = embedding_simec(model, model.embedding, ids, attention_mask=mask, steps=40,
                           step_size=0.3, seed=0)  # fmt: skip
    reading = read_tokens(walk, model.embedding, ids, mask)
    figure = reading.plot(vocabulary, example=1)
    assert isinstance(figure, Figure)
    texts = [t.get_text() for t in figure.axes[0].texts]
    assert "w0" not in texts  # the padding is not drawn
    assert any(t.startswith("step 40") for t in texts)
    figure.savefig(io.BytesIO(), format="png")
    exit_walk = embedding_simexp(model, model.embedding, ids, attention_mask=mask,
                                 mode="leave_class", steps=400, step_size=0.05)  # fmt: skip
    exit_reading = read_tokens(exit_walk, model.embedding, ids, mask)
    figure = plot_token_walk(exit_reading, vocabulary, example=0, max_rows=3)
    labels = [t.get_text() for t in figure.axes[0].texts if t.get_text().startswith("step")]
    stop = int(exit_walk.stopped_at[0])
    assert len(labels) <= 3 and labels[-1].startswith(f"step {stop},")
    assert labels[-1].endswith("(changed)")
