"""explain: the spectrum and both maps from one Jacobian per example, and its figure."""

import torch

from captum_simec.attr import SiMECAttribution, explain
from tests.attr.helpers import mlp, saliency


def test_explain_returns_the_spectrum_and_both_maps(linear):
    model, weight = linear
    x = torch.randn(2, 5, dtype=torch.float64)
    result = explain(model, x)
    attribution = SiMECAttribution(model)
    torch.testing.assert_close(result.relevance, attribution.attribute(x))
    torch.testing.assert_close(result.robustness, attribution.attribute(x, score="robustness"))
    assert result.rank.tolist() == [3, 3] and result.null_dim.tolist() == [2, 2]
    expected = torch.linalg.svdvals(weight).square()
    torch.testing.assert_close(result.eigenvalues, expected.expand(2, 3))
    assert torch.equal(result.predicted, (x @ weight.T).argmax(dim=1))
    assert result.output_metric == "euclidean" and result.target is None


def test_explain_with_a_target_is_target_specific_and_plots():
    model, x = mlp(), torch.randn(3, 6)
    result = explain(model, x, target=1)
    assert result.output_metric == "target" and result.rank.tolist() == [1, 1, 1]
    assert torch.equal(result.relevance, saliency(model, x, 1))
    figure = result.plot(examples=2)
    assert len(figure.axes) == 8
