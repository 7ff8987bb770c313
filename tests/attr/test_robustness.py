"""Robustness that predicts invariance: the default metric and the box-aware score."""

import pytest
import torch

from captum_simec.attr import LayerSiMECAttribution, SiMECAttribution, explain
from captum_simec.attr._robustness import TopOutputsMetric, box_robustness
from captum_simec.geometry import TopKMetric
from tests.attr.helpers import Linear, mlp


@pytest.mark.parametrize(("classes", "k"), [(1, 1), (2, 1), (3, 2), (4, 3), (10, 3)])
def test_the_default_metric_weighs_the_top_outputs(classes, k):
    outputs = torch.randn(5, classes)
    rows = TopOutputsMetric().cotangents(outputs, None)
    assert torch.equal(rows, TopKMetric(k).cotangents(outputs, None))


def test_robustness_defaults_to_the_top_outputs_with_or_without_a_target():
    model, x = mlp(n=6, m=5, seed=1), torch.randn(4, 6)
    attribution = SiMECAttribution(model)
    expected = attribution.attribute(x, score="robustness", output_metric=TopKMetric(3))
    torch.testing.assert_close(attribution.attribute(x, score="robustness"), expected)
    torch.testing.assert_close(attribution.attribute(x, target=2, score="robustness"), expected)
    torch.testing.assert_close(explain(model, x, target=2).robustness, expected)


def test_box_aware_robustness_of_a_linear_model_by_hand():
    weight = torch.tensor([[1.0, -2.0, 0.5, 0.0], [0.5, 1.0, -1.0, 0.0]], dtype=torch.float64)
    x = torch.tensor([[0.0, 0.5, 1.0, 0.3], [0.5, 0.5, 0.5, 0.5]], dtype=torch.float64)
    ours = SiMECAttribution(Linear(weight).eval()).attribute(
        x, score="robustness", domain=(0.0, 1.0)
    )
    # binary: G = e_p e_p^T on the predicted class p, so sqrt(g_ii) = |W_pi|
    predicted = (x @ weight.T).argmax(dim=1)
    noise = 1 / 12 + (x - 0.5) ** 2  # E[(u - x)^2] for u uniform in [0, 1]
    motion = weight[predicted].abs() * noise.sqrt()
    torch.testing.assert_close(ours, 1 - motion / motion.amax(dim=1, keepdim=True))
    assert torch.all(ours[:, 3] == 1.0)  # a feature the model ignores is fully robust


def test_box_aware_robustness_takes_per_feature_bounds_and_refuses_bad_domains():
    model, x = mlp(), torch.rand(2, 6)
    lower, upper = torch.zeros(6), torch.ones(6)
    upper[0] = 0.0 + x[:, 0].max()  # a narrower box for feature 0
    result = SiMECAttribution(model).attribute(x, score="robustness", domain=(lower, upper))
    assert result.shape == x.shape and torch.all((result >= 0) & (result <= 1))
    relevance = SiMECAttribution(model).attribute(x, output_metric=TopOutputsMetric())
    torch.testing.assert_close(result, box_robustness(relevance, (x,), (lower, upper)))
    with pytest.raises(TypeError, match="domain"):
        box_robustness(relevance, (x,), 1.0)
    with pytest.raises(ValueError, match="lower > upper"):
        SiMECAttribution(model).attribute(x, score="robustness", domain=(1.0, 0.0))
    # on a layer the box bounds the layer's values h (here tanh's, in [-1, 1])
    layer = LayerSiMECAttribution(model, model[1])
    hidden = model[1](model[0](x)).detach()
    on_layer = layer.attribute(x, score="robustness", domain=(-1.0, 1.0))
    layer_relevance = layer.attribute(x, output_metric=TopOutputsMetric())
    torch.testing.assert_close(on_layer, box_robustness(layer_relevance, (hidden,), (-1.0, 1.0)))
    with pytest.raises(TypeError, match="domain"):
        SiMECAttribution(model).attribute(x, target=0, domain=(0.0, 1.0))
