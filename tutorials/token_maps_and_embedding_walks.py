# %% [markdown]
# # Token maps and walks in embedding space for a text classifier
#
# Text models take integer token ids, which cannot move continuously: the geometry lives one
# step later, in the *input embeddings* `e = E[ids]` (one vector per token). This tutorial
# trains a tiny BERT from scratch on a synthetic sentiment task with a small vocabulary of
# real words, then
#
# 1. computes SiMEC token maps on the ids through the embedding layer, as Captum's
#    `LayerIntegratedGradients` does, and compares them with LayerIG's;
# 2. walks the equivalence class in embedding space (SiMEC: the prediction stays fixed)
#    and reads every point back as its nearest vocabulary tokens: which words can change
#    while the prediction stays?
# 3. walks to the nearest change of prediction (SiMExp) and reads it back the same way.
#
# Hugging Face models return a `ModelOutput`; every entry point takes `output="logits"` to
# pick the tensor to explain (`select_output(model, "logits")` does the same for Captum's
# own methods). The network is trained and analysed in float64, so every number below is the
# same on any CPU. Figures go to `$CAPTUM_SIMEC_TUTORIAL_OUT` (default: a temporary folder).
# Needs the `text` extra (`pip install -e '.[text]'`); nothing is downloaded.

# %%
import os
import tempfile
import time
from collections import Counter
from pathlib import Path

import torch
import transformers
from captum.attr import LayerIntegratedGradients

from captum_simec import LayerSiMECAttribution, select_output
from captum_simec.text import (
    embedding_simec,
    embedding_simexp,
    read_tokens,
    token_scores,
)
from captum_simec.viz import plot_token_scores, plot_token_walk
from captum_simec.zoo.text import NEGATIVE_WORDS, POSITIVE_WORDS, synthetic_sentiment

transformers.logging.set_verbosity_error()
torch.set_num_threads(1)  # small models run fastest on one thread of a shared CPU
OUT = Path(os.environ.get("CAPTUM_SIMEC_TUTORIAL_OUT") or tempfile.mkdtemp(prefix="text_"))
OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## A sentiment task and a tiny BERT
#
# Each sentence is `[CLS] w_1 ... w_L [SEP]`: neutral filler words around one to three
# sentiment words of its label's polarity, sometimes with one word of the other polarity
# (the majority decides). The model is `BertForSequenceClassification` with two layers of
# width 32, built from a config with random weights and trained for two epochs.

# %%
train = synthetic_sentiment(2000, seed=0)
test = synthetic_sentiment(400, seed=1)
vocabulary = train.vocabulary
for row in range(3):
    print(f"label {int(train.labels[row])}: {train.decode(train.input_ids[row])}")

config = transformers.BertConfig(
    vocab_size=len(vocabulary),
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    max_position_embeddings=16,
    num_labels=2,
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
    pad_token_id=0,
)
torch.manual_seed(0)
torch.set_default_dtype(torch.float64)  # weights drawn, trained and analysed in float64
model = transformers.BertForSequenceClassification(config)
torch.set_default_dtype(torch.float32)
optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3)
order = torch.Generator().manual_seed(0)
started = time.perf_counter()
for _ in range(2):  # epochs
    model.train()
    for batch in torch.randperm(len(train), generator=order).split(32):
        loss = model(
            train.input_ids[batch],
            attention_mask=train.attention_mask[batch],
            labels=train.labels[batch],
        ).loss
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
model.eval()
logits = select_output(model, "logits")  # the model as Captum's methods want it
with torch.no_grad():
    accuracy = logits(test.input_ids, test.attention_mask).argmax(dim=1) == test.labels
elapsed = time.perf_counter() - started
print(f"trained in {elapsed:.0f} s; test accuracy {accuracy.double().mean():.3f}")

# %% [markdown]
# ## Token maps on the ids, next to LayerIntegratedGradients
#
# `LayerSiMECAttribution(model, embedding, output="logits")` takes the integer ids, with the
# model's attention mask as an additional forward argument, and returns maps of shape
# (batch, T, H) over the embedding coordinates; `token_scores` sums them up per token (the
# L2 norm over H, or a signed sum). Its own `attention_mask=` marks the positions to score:
# here the words, so that padding and the `[CLS]` / `[SEP]` markers score exactly 0.
#
# * **relevance** (target metric): `|d f_t / d e|`, the rate at which the predicted logit
#   moves per unit move of each embedding coordinate (Saliency on the embeddings);
# * **flip**: how far each coordinate moves on a SiMExp walk down the decision margin until
#   the prediction changes;
# * **boundary**: the predicted logit's gradient integrated along that walk, from the
#   nearest change of prediction to the sentence: LayerIG with the path and the reference
#   found by the geometry (signed; it sums to `f_t(e) - f_t(e_end)`, up to the returned
#   convergence delta);
# * **relevance x |e - e_ref|**, signed: the local linear version of LayerIG;
# * **LayerIG** with 50 steps from the reference `[CLS] [PAD] ... [PAD] [SEP]`.
#
# We know what decides each sentence (its sentiment words), so a map can be checked: how
# often is its top word a sentiment word of the predicted polarity?

# %%
embedding = model.get_input_embeddings()
ids, mask = test.input_ids[:64], test.attention_mask[:64]
with torch.no_grad():
    predicted = logits(ids, mask).argmax(dim=1)
is_marker = (ids == vocabulary.index("[CLS]")) | (ids == vocabulary.index("[SEP]"))
words = mask * ~is_marker  # the positions to score: real words
reference = torch.where(is_marker, ids, 0)  # [CLS] [PAD] ... [SEP]

simec_maps = LayerSiMECAttribution(model, embedding, output="logits")
times_input = LayerSiMECAttribution(model, embedding, multiply_by_inputs=True, output="logits")
common = {"target": predicted, "additional_forward_args": (mask,), "attention_mask": words}
started = time.perf_counter()
relevance = simec_maps.attribute(ids, **common)
seconds = {"SiMEC relevance": time.perf_counter() - started}
started = time.perf_counter()
flip = simec_maps.attribute(ids, score="flip", steps=200, step_size=0.05, **common)
seconds["SiMEC flip"] = time.perf_counter() - started
started = time.perf_counter()
boundary, delta = simec_maps.attribute(
    ids, score="boundary", return_convergence_delta=True, **common
)
seconds["SiMEC boundary"] = time.perf_counter() - started
print(f"boundary: largest |convergence delta| {delta.abs().max():.1e}")
local = times_input.attribute(ids, signed=True, baselines=reference, **common)
started = time.perf_counter()
layer_ig = LayerIntegratedGradients(logits, embedding).attribute(
    ids, baselines=reference, target=predicted, additional_forward_args=(mask,), n_steps=50
)
seconds["LayerIG-50"] = time.perf_counter() - started

maps = {
    "SiMEC relevance": token_scores(relevance, words),
    "SiMEC flip": token_scores(flip, words),
    "SiMEC boundary": token_scores(boundary, words, reduce="sum"),
    "relevance x |e - e_ref|": token_scores(local, words, reduce="sum"),
    "LayerIG": token_scores(layer_ig, words, reduce="sum"),
}
polarity = torch.zeros(len(vocabulary), dtype=torch.long)  # +1 positive, -1 negative
polarity[[vocabulary.index(w) for w in POSITIVE_WORDS]] = 1
polarity[[vocabulary.index(w) for w in NEGATIVE_WORDS]] = -1
expected = torch.where(predicted == 1, 1, -1)


signed = ("SiMEC boundary", "relevance x |e - e_ref|", "LayerIG")


def rank_correlation(a, b):
    """Spearman's correlation of two score vectors (no ties among them here)."""
    ranks = [v.argsort().argsort().double() for v in (a, b)]
    centred = [r - r.mean() for r in ranks]
    return float(centred[0] @ centred[1] / (centred[0].norm() * centred[1].norm()))


print(f"{'map':<26}{'top word decides':>18}{'rank corr. with |LayerIG|':>28}{'seconds':>10}")
for name, scores in maps.items():
    support = scores * expected[:, None] if name in signed else scores  # for the prediction
    top = support.masked_fill(words == 0, -torch.inf).argmax(dim=1)
    decides = (polarity[ids.gather(1, top[:, None]).squeeze(1)] == expected).double().mean()
    correlation = sum(
        rank_correlation(scores[b][real].abs(), maps["LayerIG"][b][real].abs())
        for b, real in enumerate(words.bool())
    ) / len(ids)
    timing = f"{seconds[name]:10.2f}" if name in seconds else ""
    print(f"{name:<26}{decides:>18.3f}{correlation:>28.3f}{timing}")

sentences = [test.decode(row).split() for row in ids[:4]]
figure = plot_token_scores(sentences, {k: v[:4] for k, v in maps.items()}, attention_mask=mask[:4])
figure.savefig(OUT / "token_maps.png", dpi=120)

# %% [markdown]
# Relevance is the gradient's size per token; LayerIG integrates the gradient from the
# reference, and signs it. Times the embedding's offset from the reference, relevance is
# the straight-line approximation of LayerIG (exact for a model linear in the embeddings).
# The boundary map integrates the same gradient as LayerIG, but from the nearest change of
# prediction along the walk instead of from a chosen reference of padding: its top word is a
# sentiment word of the prediction more often than LayerIG's in the table above, and its
# convergence delta says how exactly it sums to the logit's change. The flip walk's
# displacement is where the model's decision is fragile.
#
# ## SiMEC in embedding space: which words can change while the prediction stays?
#
# `embedding_simec` walks the word embeddings inside their equivalence class: every step
# moves along the null space of the pullback metric of the logits, and the Gauss-Newton
# corrector keeps the logits on their start values. The ids, the model's attention mask and
# the markers (held fixed by `attention_mask=words`) do not move. `read_tokens` maps every
# saved point to its nearest vocabulary tokens (L2 and cosine, one matrix product per block
# of points and vocabulary), and says which positions changed token while the prediction
# stayed.

# %%
group = {w: "+" if w in POSITIVE_WORDS else "-" if w in NEGATIVE_WORDS else "0" for w in vocabulary}
few, few_mask, few_words = ids[:8], mask[:8], words[:8]
space = {"attention_mask": few_words, "additional_forward_args": (few_mask,), "output": "logits"}


def by_polarity(reading, positions, saves):
    """How the words at `positions` (batch, T) changed polarity, read at `saves` (batch, T)."""
    counts = Counter()
    for b, t in positions.nonzero().tolist():
        new = vocabulary[int(reading.tokens()[saves[b, t], b, t])]
        counts[f"{group[vocabulary[int(few[b, t])]]} -> {group[new]}"] += 1
    return ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "none"


started = time.perf_counter()
walk = embedding_simec(
    model, embedding, few, steps=400, step_size=0.05, corrector=True, save_every=10, seed=0,
    **space,
)  # fmt: skip
print(
    f"SiMEC: {time.perf_counter() - started:.1f} s; largest logit drift {walk.max_drift.max():.1e}"
)
kept = bool((walk.predictions == walk.predictions[0]).all())
print(f"SiMEC: prediction kept at every saved point: {kept}")
reading = read_tokens(walk, embedding, few, few_words)
changed = reading.changed_while_kept()
first_changes = reading.changed().to(torch.int8).argmax(dim=0)  # (batch, T)
print(f"SiMEC: {int(changed.sum())} of {int(few_words.sum())} words changed token; by polarity:")
print("  " + by_polarity(reading, changed, first_changes))
print(reading.describe(vocabulary, examples=[0, 1]))
plot_token_walk(reading, vocabulary, example=0).savefig(OUT / "simec_tokens.png", dpi=120)

# %% [markdown]
# Words move into other words of the same polarity (`+ -> +`, `- -> -`, neutral into
# neutral) and never across: inside the class, the model treats the words of one polarity
# as interchangeable. The distances under each word show how far the walk is from the
# nearest token: the class is a continuum, and tokens are points in it.
#
# ## SiMExp to the nearest change of prediction
#
# `embedding_simexp(..., mode="leave_class")` walks down the margin of the predicted class
# until the prediction changes, and bisects the last step so that the end lies just across
# the decision boundary. Read back as tokens at that point:

# %%
exit_walk = embedding_simexp(
    model, embedding, few, mode="leave_class", steps=500, step_size=0.02, **space
)
exit_reading = read_tokens(exit_walk, embedding, few, few_words)
print("SiMExp stop reasons:", sorted(set(exit_walk.stop_reason)))
at_flip = exit_reading.changed_at_flip()
at_change = exit_reading.first_change[:, None].expand_as(at_flip)
print(f"SiMExp: {int(at_flip.any(dim=1).sum())} of 8 sentences read as other words at the change;")
print("  " + by_polarity(exit_reading, at_flip, at_change))
distance = exit_reading.l2.distances[exit_reading.first_change, torch.arange(8), :, 0]
typical = torch.cdist(embedding.weight, embedding.weight).masked_fill(
    torch.eye(len(vocabulary), dtype=torch.bool), torch.inf
)
print(
    f"median distance to the nearest token at the change {distance[few_words.bool()].median():.3f}"
    f" (nearest-neighbour distance between tokens: median {typical.amin(dim=1).median():.3f})"
)
print(exit_reading.describe(vocabulary, examples=[1, 3]))
plot_token_walk(exit_reading, vocabulary, example=3).savefig(OUT / "simexp_tokens.png", dpi=120)

# %% [markdown]
# At the change of prediction most words are still read as themselves: the decision
# boundary lies closer than the next token (the walk leaves the vocabulary's points, as an
# adversarial perturbation does). Where a word does change, it is a neutral word turning
# into one of the other polarity, or into another neutral word: the model's way out of the
# class goes through the words that carry no sentiment yet.
