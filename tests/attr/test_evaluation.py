"""Deletion/insertion curves, Spearman correlation and sanity checks (captum_simec.evaluation)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from captum_simec import evaluation
from captum_simec.attr import SiMECAttribution
from tests.attr.helpers import Linear, mlp


def _naive_average_ranks(row: list[float]) -> list[float]:
    return [sum(v < x for v in row) + (sum(v == x for v in row) + 1) / 2 for x in row]


def _pearson(a: list[float], b: list[float]) -> float:
    ta, tb = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    ta, tb = ta - ta.mean(), tb - tb.mean()
    return float((ta * tb).sum() / (ta.norm() * tb.norm()))


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(-3, 3), st.integers(-3, 3)), min_size=3, max_size=12).filter(
        lambda pairs: len({p[0] for p in pairs}) > 1 and len({p[1] for p in pairs}) > 1
    )
)
def test_spearman_with_ties_matches_pearson_on_naive_average_ranks(pairs):
    a = [float(p[0]) for p in pairs]
    b = [float(p[1]) for p in pairs]
    expected = _pearson(_naive_average_ranks(a), _naive_average_ranks(b))
    ours = evaluation.spearman(torch.tensor([a]), torch.tensor([b]))
    assert ours.shape == (1,)
    assert abs(float(ours[0]) - expected) < 1e-12


def test_spearman_known_values_and_constant_maps():
    a = torch.tensor([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0], [5.0, 5.0, 5.0, 5.0]])
    b = torch.tensor([[10.0, 20.0, 30.0, 40.0], [4.0, 3.0, 2.0, 1.0], [1.0, 2.0, 3.0, 4.0]])
    rho = evaluation.spearman(a, b)
    torch.testing.assert_close(rho[:2], torch.tensor([1.0, -1.0], dtype=torch.float64))
    assert torch.isnan(rho[2])
    assert float(evaluation.spearman(a[:2], -b[:2], absolute=True)[0]) == pytest.approx(1.0)
    tuples = evaluation.spearman((a[:, :2], a[:, 2:]), (b[:, :2], b[:, 2:]))
    torch.testing.assert_close(tuples, rho, equal_nan=True)
    with pytest.raises(ValueError, match="same shape"):
        evaluation.spearman(a, b[:, :3])


def test_average_ranks_of_a_row_with_ties():
    ranks = evaluation.average_ranks(torch.tensor([[3.0, 1.0, 3.0, 2.0, 3.0]]))
    assert ranks.tolist() == [[4.0, 1.0, 4.0, 2.0, 4.0]]


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
    for baseline in evaluation.BASELINE_KINDS:
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


def _saliency(model, x, target):
    return SiMECAttribution(model).attribute(x, target=target)


def _class_agnostic(model, x, target):
    return SiMECAttribution(model).attribute(x, target=target, output_metric="euclidean")


def test_cascading_randomisation_leaves_the_model_intact_and_decorrelates():
    model, x = mlp(n=12, m=4, seed=3), torch.randn(6, 12)
    before = [p.clone() for p in model.parameters()]
    copies = evaluation.randomised_copies(model, seed=0)
    assert [name for name, _ in copies] == ["2", "0"]  # top layer first
    top, everything = copies[0][1], copies[1][1]
    assert torch.equal(top[0].weight, model[0].weight)
    assert not torch.equal(top[2].weight, model[2].weight)
    assert not torch.equal(everything[0].weight, model[0].weight)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    again = evaluation.randomised_copies(model, seed=0)
    assert torch.equal(again[1][1][0].weight, everything[0].weight)
    cascade = evaluation.model_randomisation_check(model, _saliency, x, 1, seed=0)
    assert [name for name, _ in cascade] == ["2", "0"]
    assert cascade[-1][1].shape == (6,) and cascade[-1][1].mean() < 0.9


def test_random_logit_check_cannot_pass_for_class_agnostic_maps():
    model, x = mlp(n=12, m=4, seed=3), torch.randn(6, 12)
    agnostic = evaluation.random_logit_check(model, _class_agnostic, x, None, seed=0)
    torch.testing.assert_close(agnostic, torch.ones(6, dtype=torch.float64))
    specific = evaluation.random_logit_check(model, _saliency, x, None, seed=0)
    assert specific.mean() < 0.95


def test_random_other_class_differs_from_the_target():
    target = torch.arange(10) % 3
    other = evaluation.random_other_class(target, 3, torch.Generator().manual_seed(0))
    assert torch.all(other != target) and torch.all((other >= 0) & (other < 3))
    with pytest.raises(ValueError, match="two outputs"):
        evaluation.random_other_class(target, 1)
