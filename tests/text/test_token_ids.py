"""Attribution on integer token ids through the embedding layer, as Captum's LayerIG does."""

from __future__ import annotations

import pytest
import torch
from captum.attr import LayerIntegratedGradients

from captum_simec import LayerSiMECAttribution, SiMECAttribution, select_output
from captum_simec.attr import SCORES
from captum_simec.text import token_scores

#: short walks for the walk scores (their options; the scores' own defaults are for images).
WALK_OPTIONS = {
    "flip": {"steps": 200, "step_size": 0.02},
    "class_extent": {"steps": 10, "step_size": 0.01},
}


def _embeds_model(model):
    """The model on `inputs_embeds` (Hugging Face's own route around the lookup)."""

    def forward(embeddings, mask):
        return model(inputs_embeds=embeddings, attention_mask=mask).logits

    return forward


def test_relevance_with_the_target_metric_is_the_gradient_of_the_target(bert, tokens):
    ids, mask = tokens
    embedding = bert.get_input_embeddings()
    relevance = LayerSiMECAttribution(bert, embedding, output="logits").attribute(
        ids, target=2, additional_forward_args=(mask,)
    )
    vectors = embedding(ids).detach().requires_grad_(True)
    logits = bert(inputs_embeds=vectors, attention_mask=mask).logits
    (gradient,) = torch.autograd.grad(logits[:, 2].sum(), vectors)
    assert relevance.shape == (2, 7, 16)
    torch.testing.assert_close(relevance, gradient.abs(), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("score", SCORES)
def test_the_ids_path_equals_the_inputs_embeds_path(bert, tokens, score):
    ids, mask = tokens
    embedding = bert.get_input_embeddings()
    options = WALK_OPTIONS.get(score, {})
    on_ids = LayerSiMECAttribution(bert, embedding, output="logits").attribute(
        ids, target=1, additional_forward_args=(mask,), score=score, **options
    )
    on_embeds = SiMECAttribution(_embeds_model(bert)).attribute(
        embedding(ids).detach(), target=1, additional_forward_args=(mask,), score=score, **options
    )
    torch.testing.assert_close(on_ids, on_embeds, rtol=1e-9, atol=1e-12)
    assert on_ids.abs().sum() > 0


def test_distilbert_ids_and_padding(distilbert, tokens):
    """Another architecture (no token types, its own mask handling), in float32."""
    ids, mask = tokens
    embedding = distilbert.get_input_embeddings()
    on_ids = LayerSiMECAttribution(distilbert, embedding, output="logits").attribute(
        ids, target=0, additional_forward_args=(mask,), score="robustness", attention_mask=mask
    )
    on_embeds = SiMECAttribution(_embeds_model(distilbert)).attribute(
        embedding(ids).detach(),
        target=0,
        additional_forward_args=(mask,),
        score="robustness",
        attention_mask=mask,
    )
    torch.testing.assert_close(on_ids, on_embeds)
    assert (on_ids[mask == 0] == 0).all() and (on_ids[mask == 1] > 0).any()


@pytest.mark.parametrize("score", SCORES)
def test_padded_positions_score_exactly_zero(bert, tokens, score):
    ids, mask = tokens
    attribution = LayerSiMECAttribution(bert, bert.get_input_embeddings(), output="logits")
    scores = attribution.attribute(
        ids,
        target=0,
        additional_forward_args=(mask,),
        attention_mask=mask,
        score=score,
        **WALK_OPTIONS.get(score, {}),
    )
    padded = mask == 0
    assert (scores[padded] == 0).all()
    assert (scores[~padded].abs().sum(dim=1) > 0).all()  # every real token has a score
    assert (token_scores(scores, mask)[padded] == 0).all()


def test_relevance_is_zero_at_padding_without_the_mask_too(bert, tokens):
    """The model's attention mask alone makes padded embeddings irrelevant to the output."""
    ids, mask = tokens
    relevance = LayerSiMECAttribution(bert, bert.get_input_embeddings(), output="logits")
    scores = relevance.attribute(ids, target=0, additional_forward_args=(mask,))
    assert (scores[mask == 0] == 0).all()


def test_robustness_of_a_layer_matches_the_spectrum_of_its_gradient(bert, tokens):
    """With one-row metric (target), the range is the gradient: kappa_i = 1 - g_i^2/|g|^2."""
    ids, mask = tokens
    embedding = bert.get_input_embeddings()
    attribution = LayerSiMECAttribution(bert, embedding, output="logits")
    robustness = attribution.attribute(
        ids, target=1, additional_forward_args=(mask,), score="robustness", output_metric="target"
    )
    gradient = attribution.attribute(ids, target=1, additional_forward_args=(mask,), signed=True)
    flat = gradient.flatten(1)
    expected = 1 - flat.square() / flat.square().sum(dim=1, keepdim=True)
    torch.testing.assert_close(robustness.flatten(1), expected, rtol=1e-8, atol=1e-10)


class BagOfEmbeddings(torch.nn.Module):
    """`f(ids) = W mean_t E[ids_t]`: linear in the embeddings, so LayerIG is exact."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embedding = torch.nn.Embedding(12, 4, dtype=torch.float64)
        self.head = torch.nn.Linear(4, 3, dtype=torch.float64)

    def forward(self, ids):
        return self.head(self.embedding(ids).mean(dim=1))


def test_times_inputs_it_is_layer_integrated_gradients_on_a_linear_model():
    """|IG| = |grad| |h - h_baseline| for a model linear in the embeddings (method.md §4)."""
    model = BagOfEmbeddings().eval()
    ids = torch.tensor([[3, 5, 7, 1], [2, 2, 9, 11]])
    ours = LayerSiMECAttribution(model, model.embedding, multiply_by_inputs=True).attribute(
        ids, target=1, baselines=0
    )
    theirs = LayerIntegratedGradients(model, model.embedding).attribute(
        ids, baselines=torch.zeros_like(ids), target=1
    )
    torch.testing.assert_close(ours, theirs.abs())
    signed = token_scores(
        LayerSiMECAttribution(model, model.embedding).attribute(ids, target=1, signed=True),
        reduce="sum",
    )
    torch.testing.assert_close(signed, (model.head.weight[1] / 4).sum().expand(2, 4))


def test_token_scores_reduce_over_the_embedding(tokens):
    _, mask = tokens
    maps = torch.randn(2, 7, 5, dtype=torch.float64)
    torch.testing.assert_close(token_scores(maps), maps.norm(dim=2))
    torch.testing.assert_close(token_scores(maps, reduce="sum"), maps.sum(dim=2))
    torch.testing.assert_close(token_scores(maps, reduce="mean"), maps.mean(dim=2))
    masked = token_scores(maps, mask)
    assert (masked[mask == 0] == 0).all()
    torch.testing.assert_close(masked[mask == 1], maps.norm(dim=2)[mask == 1])
    with pytest.raises(ValueError, match="reduce"):
        token_scores(maps, reduce="max")
    with pytest.raises(ValueError, match=r"\(batch, T, H\)"):
        token_scores(maps[:, :, 0])
    with pytest.raises(ValueError, match="attention_mask"):
        token_scores(maps, mask[:, :3])
    with pytest.raises(TypeError, match="floating-point"):
        token_scores(maps.long())


def test_ids_without_an_embedding_layer_are_refused_with_the_way_out(bert, tokens):
    ids, mask = tokens
    with pytest.raises(TypeError, match=r"token ids.*LayerSiMECAttribution\(model, embedding\)"):
        SiMECAttribution(bert, output="logits").attribute(ids, target=0)
    with pytest.raises(TypeError, match="dtype torch.int64.*LayerSiMECAttribution"):
        SiMECAttribution(bert, output="logits").attribute(ids.float().long(), score="flip")


def test_ids_cast_inside_the_model_have_no_gradient_path(bert, tokens):
    """The silent zeros of a `.long()` wrapper are an error that names the embedding layer."""
    ids, mask = tokens
    cast = SiMECAttribution(lambda x, m: bert(x.long(), attention_mask=m).logits)
    for score in ("relevance", "robustness"):
        with pytest.raises(ValueError, match="does not depend on the inputs.*embedding"):
            cast.attribute(ids.double(), target=0, additional_forward_args=(mask,), score=score)


def test_a_layer_that_does_not_make_floats_is_refused(bert, tokens):
    ids, mask = tokens
    identity = torch.nn.Identity()

    def model(x, m):
        return bert(identity(x), attention_mask=m).logits

    with pytest.raises(TypeError, match="floating-point representation"):
        LayerSiMECAttribution(model, identity).attribute(ids, additional_forward_args=(mask,))


@pytest.mark.parametrize(
    ("mask", "match"),
    [
        (torch.ones(2, 5, dtype=torch.long), r"`attention_mask` has shape \(2, 5\)"),
        (torch.ones(3, 7, dtype=torch.long), r"`attention_mask` has shape \(3, 7\)"),
        (torch.ones(2, 7), "bool or integer tensor"),
    ],
)
def test_a_mask_of_the_wrong_shape_or_type_is_refused(bert, tokens, mask, match):
    ids, real = tokens
    attribution = LayerSiMECAttribution(bert, bert.get_input_embeddings(), output="logits")
    error = TypeError if mask.is_floating_point() else ValueError
    with pytest.raises(error, match=match):
        attribution.attribute(ids, target=0, additional_forward_args=(real,), attention_mask=mask)


def test_vit_relevance_is_saliency_on_pixels(vit):
    """Vision transformers take float pixels: only `output=` is needed."""
    from captum.attr import Saliency

    pixels = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    ours = SiMECAttribution(vit, output="logits").attribute(pixels, target=2)
    theirs = Saliency(select_output(vit, "logits")).attribute(pixels, target=2, abs=True)
    torch.testing.assert_close(ours, theirs)
    assert ours.abs().sum() > 0
