"""Deletion/insertion curves and removal baselines (captum_simec.evaluation.perturbation)."""

import pytest
import torch

from captum_simec import evaluation
from captum_simec.attr import SiMECAttribution
from tests.attr.helpers import Linear, mlp


def test_deletion_of_a_linear_model_by_weight_beats_a_random_order():
    weight = torch.rand(1, 30) + 0.05
    model, x = Linear(weight).eval(), torch.ones(8, 30)
    by_weight = weight.abs().expand(8, 30)
    random = torch.rand(8, 30, generator=torch.Generator().manual_seed(7))
    kw = dict(target=0, output_transform="identity", steps=30)
    deletion = evaluation.perturbation_curve(model, x, by_weight, **kw)
    shuffled = evaluation.perturbation_curve(model, x, random, **kw)
    assert torch.all(deletion.auc < shuffled.auc)
    insertion = evaluation.perturbation_curve(model, x, by_weight, mode="insertion", **kw)
    assert torch.all(insertion.auc > shuffled.auc)
    # endpoints: the clean output and the all-black output
    torch.testing.assert_close(deletion.scores[:, 0], weight.sum().double().expand(8))
    torch.testing.assert_close(deletion.scores[:, -1], torch.zeros(8, dtype=torch.float64))
    assert deletion.fractions[0] == 0 and deletion.fractions[-1] == 1


def test_deletion_of_a_linear_model_is_exact_against_a_hand_computed_curve():
    weight = torch.tensor([[4.0, 1.0, 3.0, 2.0]])
    model, x = Linear(weight).eval(), torch.ones(1, 4)
    curve = evaluation.perturbation_curve(
        model, x, weight, target=0, output_transform="identity", steps=4
    )
    assert curve.scores.tolist() == [[10.0, 6.0, 3.0, 1.0, 0.0]]
    assert float(curve.auc[0]) == pytest.approx((10 + 2 * (6 + 3 + 1) + 0) / 8)


def test_deletion_auc_is_a_probability_area_and_simec_beats_random_on_an_mlp():
    model, x = mlp(n=20, m=4, seed=1), torch.randn(16, 20)
    relevance = SiMECAttribution(model).attribute(x, target=model(x).argmax(1))
    random = torch.rand(16, 20, generator=torch.Generator().manual_seed(1))
    for baseline in ("black", "uniform", "mean"):
        ours = evaluation.perturbation_curve(model, x, relevance, baseline=baseline)
        other = evaluation.perturbation_curve(model, x, random, baseline=baseline)
        assert torch.all((ours.auc >= 0) & (ours.auc <= 1))
        assert ours.auc.mean() < other.auc.mean()


def test_curves_with_tuple_inputs_and_additional_args():
    def model(a, b, shift):
        return torch.stack([a.sum(1) + b.flatten(1).sum(1) + shift, -a.sum(1)], dim=1)

    a, b = torch.rand(3, 2), torch.rand(3, 2, 2)
    curve = evaluation.perturbation_curve(
        model,
        (a, b),
        (a, b),
        target=0,
        additional_forward_args=(torch.ones(3),),
        output_transform="identity",
        steps=6,
    )
    assert curve.scores.shape == (3, 7)
    torch.testing.assert_close(curve.scores[:, -1], torch.ones(3, dtype=torch.float64))


def test_removal_baselines():
    x = torch.rand(2, 1, 3, 3) * 4 + 1
    assert torch.all(evaluation.removal_baseline(x, "black") == 0)
    assert torch.all(evaluation.removal_baseline(x, "black", domain=(-1.0, 9.0)) == -1)
    mean = evaluation.removal_baseline(x, "mean")
    torch.testing.assert_close(mean[:, 0, 0, 0], x.mean(dim=(1, 2, 3)))
    uniform = evaluation.removal_baseline(x, "uniform", generator=torch.Generator().manual_seed(0))
    low = x.amin(dim=(1, 2, 3), keepdim=True)
    high = x.amax(dim=(1, 2, 3), keepdim=True)
    assert torch.all((uniform >= low) & (uniform <= high))
    assert torch.all(evaluation.removal_baseline(x, 0.25) == 0.25)
    with pytest.raises(ValueError, match="baseline 'grey'"):
        evaluation.removal_baseline(x, "grey")
    with pytest.raises(ValueError, match="lo > hi"):
        evaluation.removal_baseline(x, "black", domain=(1.0, 0.0))


def test_feature_order_breaks_ties_at_random_but_reproducibly():
    values = torch.tensor([[1.0, 5.0, 1.0, 1.0, 3.0]])
    first = evaluation.feature_order(values, torch.Generator().manual_seed(0))
    again = evaluation.feature_order(values, torch.Generator().manual_seed(0))
    assert torch.equal(first, again)
    assert first[0, :2].tolist() == [1, 4]
    assert sorted(first[0, 2:].tolist()) == [0, 2, 3]


def test_curve_errors():
    model, x = mlp(), torch.randn(2, 6)
    with pytest.raises(ValueError, match="mode='erase'"):
        evaluation.perturbation_curve(model, x, x, mode="erase")
    with pytest.raises(ValueError, match="structure and shape"):
        evaluation.perturbation_curve(model, x, x[:, :3])
    with pytest.raises(ValueError, match="steps"):
        evaluation.perturbation_curve(model, x, x, steps=0)
    with pytest.raises(ValueError, match="output_transform"):
        evaluation.perturbation_curve(model, x, x, output_transform="sigmoid")


def test_blur_baseline_is_the_mean_of_each_in_image_neighbourhood():
    image = torch.arange(12.0).reshape(1, 1, 3, 4)
    blurred = evaluation.removal_baseline(image, "blur")
    assert blurred[0, 0, 1, 1] == image[0, 0, :3, :3].mean()
    assert blurred[0, 0, 0, 0] == image[0, 0, :2, :2].mean()  # a corner: 4 pixels
    assert blurred[0, 0, 2, 3] == image[0, 0, 1:, 2:].mean()
    channels = torch.rand(2, 3, 5, 5)
    per_channel = evaluation.blur(channels)
    torch.testing.assert_close(per_channel[:, 1:2], evaluation.blur(channels[:, 1:2]))
    with pytest.raises(ValueError, match="needs images"):
        evaluation.removal_baseline(torch.rand(2, 5), "blur")


def test_tensor_baselines_and_per_feature_domains():
    x = torch.rand(3, 1, 2, 2)
    training_mean = torch.full((1, 1, 2, 2), 0.25)
    assert torch.all(evaluation.removal_baseline(x, training_mean) == 0.25)
    lower, upper = torch.tensor([0.0, -1.0]), torch.tensor([1.0, 2.0])
    flat = torch.rand(4, 2)
    black = evaluation.removal_baseline(flat, "black", domain=(lower, upper))
    assert torch.equal(black, lower.expand(4, 2))
    noise = evaluation.removal_baseline(
        flat, "uniform", domain=(lower, upper), generator=torch.Generator().manual_seed(0)
    )
    assert torch.all((noise >= lower) & (noise <= upper)) and noise[:, 1].min() < 0


def test_auc_is_the_mean_score_over_the_span_of_the_fractions():
    curve = evaluation.PerturbationCurve(
        fractions=torch.tensor([0.0, 0.25, 0.5], dtype=torch.float64),
        scores=torch.tensor([[1.0, 0.5, 0.0]], dtype=torch.float64),
        mode="deletion",
        baseline="black",
    )
    assert float(curve.auc[0]) == pytest.approx(0.5)  # area 0.25 over a span of 0.5
