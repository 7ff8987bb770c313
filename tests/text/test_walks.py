"""SiMEC and SiMExp in embedding space, read back as tokens."""

from __future__ import annotations

import pytest
import torch

from captum_simec import LayerSiMECAttribution, simec
from captum_simec.text import embedding_simec, embedding_simexp, read_tokens, token_scores

VOCABULARY = [f"w{i}" for i in range(40)]


def _walk(walk, bert, tokens, **options):
    """`walk` (embedding_simec or embedding_simexp) of the BERT's embeddings of `tokens`."""
    ids, mask = tokens
    space = {"attention_mask": mask, "additional_forward_args": (mask,), "output": "logits"}
    return walk(bert, bert.get_input_embeddings(), ids, **space, **options)


def _simec(bert, tokens, **options):
    return _walk(embedding_simec, bert, tokens, **{"steps": 20, "step_size": 0.05, "seed": 0,
                                                   **options})  # fmt: skip


def test_simec_in_embedding_space_keeps_the_output_and_the_padding(bert, tokens):
    ids, mask = tokens
    walk = _simec(bert, tokens, corrector=True)
    points = walk.points  # (saves, batch, T, H)
    assert points.shape == (21, 2, 7, 16)
    padded = (mask == 0).unsqueeze(0).expand(21, -1, -1)
    assert (points[padded] == points[0:1].expand_as(points)[padded]).all()  # never moved
    assert (walk.max_abs_displacement()[mask == 1].amax(dim=1) > 0).all()  # every token moved
    start = bert(input_ids=ids, attention_mask=mask).logits
    final = bert(inputs_embeds=walk.final, attention_mask=mask).logits
    assert (final - start).abs().max() < 1e-6 * start.abs().max()  # on the class
    assert walk.path_length.min() > 0.9  # 20 steps of 0.05


def test_movable_positions_alone_move(bert, tokens):
    ids, mask = tokens
    movable = torch.ones_like(mask)
    movable[:, 0] = 0  # hold [CLS] in place
    walk = _simec(bert, tokens, steps=5, movable=movable)
    moved = walk.max_abs_displacement().amax(dim=2) > 0
    assert not moved[:, 0].any() and not moved[mask == 0].any()
    assert moved[:, 1:][mask[:, 1:] == 1].all()


def test_the_walk_is_the_inputs_embeds_walk(bert, tokens):
    """Substituting the embedding's output is what `inputs_embeds` does."""
    ids, mask = tokens
    walk = _simec(bert, tokens, steps=5)
    embeds = bert.get_input_embeddings()(ids).detach()
    free = mask.bool()[:, :, None]
    direct = simec(
        lambda e, m: bert(inputs_embeds=e, attention_mask=m).logits,
        embeds,
        additional_forward_args=(mask,),
        free=free,
        steps=5,
        step_size=0.05,
        seed=0,
    )
    torch.testing.assert_close(walk.points_flat, direct.points_flat, rtol=1e-9, atol=1e-12)


def test_the_reader_returns_the_original_tokens_at_step_0(bert, tokens):
    ids, mask = tokens
    walk = _simec(bert, tokens, steps=3)
    reading = read_tokens(walk, bert.get_input_embeddings(), ids, mask, k=2)
    for distance in ("l2", "cosine"):
        nearest = reading.nearest(distance)
        assert nearest.tokens.shape == (4, 2, 7, 2)
        real = mask == 1
        assert (nearest.tokens[0, ..., 0][real] == ids[real]).all()
        assert (nearest.distances[0, ..., 0][real] < 1e-7).all()
        assert (nearest.distances[..., 1] >= nearest.distances[..., 0]).all()
    assert not reading.changed()[0].any()


def test_the_reader_matches_a_brute_force_search(bert, tokens):
    ids, mask = tokens
    walk = _simec(bert, tokens, steps=30, step_size=0.2)
    weight = bert.get_input_embeddings().weight.detach()
    reading = read_tokens(walk, weight, ids, mask, k=3, chunk_size=7)  # 6 blocks, merged
    points = walk.points.reshape(-1, 16)
    l2 = torch.cdist(points, weight)
    cosine = (
        1
        - (points / points.norm(dim=1, keepdim=True))
        @ (weight / weight.norm(dim=1, keepdim=True)).T
    )
    real = mask.bool().expand(31, -1, -1).reshape(-1)  # padding reads the zero [PAD] row
    for found, distances in ((reading.l2, l2), (reading.cosine, cosine)):
        expected, order = distances[real].topk(3, dim=1, largest=False)
        torch.testing.assert_close(
            found.distances.reshape(-1, 3)[real], expected, atol=1e-7, rtol=1e-6
        )
        assert (found.tokens.reshape(-1, 3)[real] == order).all()
    assert reading.changed().any()  # steps of 0.2 reach other tokens


def test_simexp_in_embedding_space_is_read_at_the_change(bert, tokens):
    ids, mask = tokens
    walk = _walk(embedding_simexp, bert, tokens, mode="leave_class", steps=300, step_size=0.02)
    assert walk.stop_reason == ["class_change", "class_change"]
    reading = read_tokens(walk, bert.get_input_embeddings(), ids, mask)
    first = reading.first_change
    assert (first == walk.stopped_at).all()  # every step is saved: save k is step k
    logits = bert(inputs_embeds=walk.final, attention_mask=mask).logits
    assert (reading.predictions[-1] == logits.argmax(dim=1)).all()
    assert (reading.predictions[-1] != reading.predictions[0]).all()
    at_flip = reading.changed_at_flip()
    torch.testing.assert_close(at_flip, reading.changed()[-1])
    text = reading.describe(VOCABULARY)
    assert text.count("prediction") == 4 and "w" in text


def test_changes_while_kept_stop_at_the_first_change_of_prediction(bert, tokens):
    """A SiMEC walk with long steps keeps its prediction; the reading lists what changed."""
    ids, mask = tokens
    reading = read_tokens(
        _simec(bert, tokens, steps=30, step_size=0.2), bert.get_input_embeddings(), ids, mask
    )
    assert (reading.first_change == -1).all()
    torch.testing.assert_close(reading.changed_while_kept(), reading.changed().any(dim=0))
    assert not reading.changed_at_flip().any()
    sentences = reading.sentences(VOCABULARY, example=1)
    assert len(sentences) == 31 and len(sentences[0]) == 4  # the padding is not read
    assert sentences[0] == [VOCABULARY[i] for i in ids[1, :4].tolist()]


def test_gpt2_sequence_targets_decide_at_position_t(gpt2):
    """(batch, T, V) logits, target (t, token): the flip and the walk change position t."""
    ids = torch.randint(2, 40, (2, 6), generator=torch.Generator().manual_seed(0))
    embedding = gpt2.get_input_embeddings()
    logits = gpt2(ids).logits
    t = 3
    targets = [(t, int(token)) for token in logits[:, t].argmax(dim=1)]
    walk = embedding_simexp(
        gpt2,
        embedding,
        ids,
        output="logits",
        mode="leave_class",
        target=targets,
        steps=300,
        step_size=0.01,
    )
    assert walk.stop_reason == ["class_change", "class_change"]
    final = gpt2(inputs_embeds=walk.final).logits
    assert (final[:, t].argmax(dim=1) != logits[:, t].argmax(dim=1)).all()
    assert (final[:, :t].argmax(dim=2) == logits[:, :t].argmax(dim=2)).all()  # causal: unmoved
    reading = read_tokens(walk, embedding, ids)
    assert (reading.predictions[0] == logits[:, t].argmax(dim=1)).all()  # tokens at t
    flip = LayerSiMECAttribution(gpt2, embedding, output="logits").attribute(
        ids, target=targets, score="flip", signed=True, steps=300, step_size=0.01
    )
    assert (token_scores(flip)[:, t + 1 :] == 0).all()  # later positions cannot matter
    moved = gpt2(inputs_embeds=embedding(ids) + flip).logits
    assert (moved[:, t].argmax(dim=1) != logits[:, t].argmax(dim=1)).all()


def test_reader_and_walk_errors(bert, tokens):
    ids, mask = tokens
    walk = _simec(bert, tokens, steps=2)
    embedding = bert.get_input_embeddings()
    with pytest.raises(ValueError, match=r"`input_ids` has shape \(2, 5\)"):
        read_tokens(walk, embedding, ids[:, :5])
    with pytest.raises(ValueError, match="`attention_mask` has shape"):
        read_tokens(walk, embedding, ids, mask[:1])
    with pytest.raises(ValueError, match=r"needs \(T, 8\)"):
        read_tokens(walk, torch.zeros(40, 8), ids)
    with pytest.raises(ValueError, match="exceeds the 40 tokens"):
        read_tokens(walk, embedding, ids, k=41)
    with pytest.raises(TypeError, match=r"\(V, H\)"):
        read_tokens(walk, torch.nn.Linear(2, 2).bias, ids)
    with pytest.raises(TypeError, match="integer tensor of token ids"):
        embedding_simec(bert, embedding, ids.double(), output="logits")
    with pytest.raises(ValueError, match=r"`attention_mask` has shape \(2, 3\)"):
        embedding_simec(bert, embedding, ids, attention_mask=mask[:, :3], output="logits")
    with pytest.raises(TypeError, match="embedding module"):
        embedding_simec(bert, "embeddings", ids, output="logits")
