"""SiMECAttribution against closed forms, Captum's Saliency/IG, and the Captum contract."""

import warnings

import pytest
import torch
from captum.attr import IntegratedGradients, Saliency

from captum_simec.attr import SCORES, SiMECAttribution
from tests.attr.helpers import GridOutput, ScaledMLP, TwoInputs, mlp, saliency


# ----- closed forms on a linear model -----
def test_linear_relevance_is_the_column_norm_and_ignored_features_score_zero(linear):
    model, weight = linear
    x = torch.randn(4, 5, dtype=torch.float64)
    relevance = SiMECAttribution(model).attribute(x)
    expected = weight.norm(dim=0).expand(4, 5)
    torch.testing.assert_close(relevance, expected)
    assert torch.all(relevance[:, 4] == 0)


def test_linear_relevance_with_a_metric_matrix(linear):
    model, weight = linear
    root = torch.tensor([[1.0, 0.5, 0.0], [0.0, 2.0, 0.0], [0.3, 0.0, 1.0]], dtype=torch.float64)
    metric = root.T @ root
    x = torch.randn(3, 5, dtype=torch.float64)
    relevance = SiMECAttribution(model).attribute(x, output_metric=metric)
    expected = (root @ weight).norm(dim=0)  # ||G^{1/2} W e_i|| with G = R^T R
    torch.testing.assert_close(relevance, expected.expand(3, 5))


def test_linear_robustness_is_the_null_space_share(linear):
    model, weight = linear
    x = torch.randn(2, 5, dtype=torch.float64)
    kappa = SiMECAttribution(model).attribute(x, score="robustness", output_metric="euclidean")
    range_projector = torch.linalg.pinv(weight) @ weight  # P_R = W^+ W, P_N = I - P_R
    expected = 1 - range_projector.diagonal()
    torch.testing.assert_close(kappa, expected.expand(2, 5))
    assert torch.allclose(kappa[:, 4], torch.ones(2, dtype=torch.float64))
    # sum_i (1 - kappa_i) = rank g = rank W = 3
    torch.testing.assert_close((1 - kappa).sum(dim=1), torch.full((2,), 3.0, dtype=torch.float64))


def test_multiply_by_inputs_on_a_linear_model_matches_integrated_gradients(linear):
    model, _ = linear
    x = torch.randn(4, 5, dtype=torch.float64)
    baseline = torch.randn(1, 5, dtype=torch.float64)
    ours = SiMECAttribution(model, multiply_by_inputs=True).attribute(
        x, target=2, baselines=baseline
    )
    ig = IntegratedGradients(model).attribute(x, baselines=baseline, target=2)
    torch.testing.assert_close(ours, ig.abs())
    signed = SiMECAttribution(model, multiply_by_inputs=True).attribute(
        x, target=2, baselines=baseline, signed=True
    )
    torch.testing.assert_close(signed, ig)  # w * (x - b), signs and all


@pytest.mark.parametrize(
    "baselines",
    [None, 0.5, torch.full((1, 6), -1.0), torch.arange(6.0), torch.rand(3, 6)],
    ids=["none", "number", "row", "per_example_shape", "full"],
)
def test_multiply_by_inputs_uses_the_distance_to_the_baseline(baselines):
    model, x = mlp(), torch.randn(3, 6)
    plain = SiMECAttribution(model).attribute(x, target=1)
    scaled = SiMECAttribution(model, multiply_by_inputs=True).attribute(
        x, target=1, baselines=baselines
    )
    reference = 0.0 if baselines is None else baselines
    torch.testing.assert_close(scaled, plain * (x - reference).abs())


def test_multiply_by_inputs_with_tuple_baselines():
    model = TwoInputs().eval()
    a, b = torch.randn(2, 4), torch.randn(2, 2, 3)
    plain = SiMECAttribution(model).attribute((a, b), target=0)
    scaled = SiMECAttribution(model, multiply_by_inputs=True).attribute(
        (a, b), target=0, baselines=(1.0, torch.zeros(1, 2, 3))
    )
    torch.testing.assert_close(scaled[0], plain[0] * (a - 1).abs())
    torch.testing.assert_close(scaled[1], plain[1] * b.abs())


def test_multiplies_by_inputs_and_convergence_delta_are_truthful():
    model = mlp()
    assert SiMECAttribution(model).multiplies_by_inputs is False
    assert SiMECAttribution(model, multiply_by_inputs=True).multiplies_by_inputs is True
    assert SiMECAttribution(model).has_convergence_delta() is True  # score="boundary"
    with pytest.raises(NotImplementedError):
        SiMECAttribution(model).attribute_future()


# ----- Saliency equivalence across Captum's target forms -----
@pytest.mark.parametrize(
    "target",
    [1, torch.tensor(2), torch.tensor([0, 1, 2, 1]), [2, 0, 0, 1]],
    ids=["int", "scalar_tensor", "tensor", "list"],
)
def test_target_relevance_equalssaliency(target):
    model, x = mlp(), torch.randn(4, 6)
    ours = SiMECAttribution(model).attribute(x, target=target, output_metric="target")
    assert torch.equal(ours, saliency(model, x, target))
    # the default metric with a target is "target"
    assert torch.equal(SiMECAttribution(model).attribute(x, target=target), ours)


@pytest.mark.parametrize("target", [(1, 2), [(0, 1), (1, 0), (1, 2)]], ids=["tuple", "tuples"])
def test_target_relevance_equals_saliency_on_multidimensional_outputs(target):
    model, x = GridOutput().eval(), torch.randn(3, 4)
    ours = SiMECAttribution(model).attribute(x, target=target)
    assert torch.equal(ours, saliency(model, x, target))


def test_signed_target_relevance_equals_the_gradient():
    model, x = mlp(), torch.randn(4, 6)
    signed = SiMECAttribution(model).attribute(x, target=[0, 1, 2, 0], signed=True)
    assert torch.equal(signed, saliency(model, x, [0, 1, 2, 0], abs=False))


def test_signed_relevance_with_another_metric_carries_the_target_gradient_sign():
    model, x = mlp(), torch.randn(4, 6)
    attribution = SiMECAttribution(model)
    magnitude = attribution.attribute(x, target=2, output_metric="euclidean")
    signed = attribution.attribute(x, target=2, output_metric="euclidean", signed=True)
    gradient = saliency(model, x, 2, abs=False)
    torch.testing.assert_close(signed, magnitude * gradient.sign())


def test_default_metric_without_target_is_euclidean_and_class_agnostic():
    model, x = mlp(), torch.randn(4, 6)
    attribution = SiMECAttribution(model)
    default = attribution.attribute(x)
    assert torch.equal(default, attribution.attribute(x, output_metric="euclidean"))
    # a metric on all outputs ignores the target: the map is the same for every class
    for target in range(3):
        assert torch.equal(
            attribution.attribute(x, target=target, output_metric="euclidean"), default
        )


def test_margin_relevance_is_the_margin_gradient():
    model, x = mlp(), torch.randn(5, 6)
    with torch.no_grad():
        outputs = model(x)
    target = outputs.argmax(dim=1)
    runner_up = outputs.scatter(1, target.unsqueeze(1), -torch.inf).argmax(dim=1)
    x_grad = x.clone().requires_grad_(True)
    out = model(x_grad)
    margin = out.gather(1, target.unsqueeze(1)) - out.gather(1, runner_up.unsqueeze(1))
    (gradient,) = torch.autograd.grad(margin.sum(), x_grad)
    ours = SiMECAttribution(model).attribute(x, target=target, output_metric="margin")
    torch.testing.assert_close(ours, gradient.abs())


# ----- input forms and additional forward args -----
def test_tensor_in_tensor_out_for_images():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3)).eval()
    x = torch.randn(2, 1, 3, 4)
    result = SiMECAttribution(model).attribute(x, target=0)
    assert isinstance(result, torch.Tensor) and result.shape == x.shape


def test_tuple_in_tuple_out_matches_the_concatenated_gradient():
    model = TwoInputs().eval()
    a, b = torch.randn(3, 4), torch.randn(3, 2, 3)
    result = SiMECAttribution(model).attribute((a, b), target=[0, 1, 2])
    assert isinstance(result, tuple) and [r.shape for r in result] == [a.shape, b.shape]
    expected = saliency(model, (a, b), [0, 1, 2])
    for ours, theirs in zip(result, expected, strict=True):
        assert torch.equal(ours, theirs)


def test_one_dimensional_input_is_a_batch_of_scalars():
    model = torch.nn.Sequential(torch.nn.Tanh()).eval()
    x = torch.tensor([0.5, -1.0, 2.0])
    relevance = SiMECAttribution(model).attribute(x)
    assert relevance.shape == (3,)
    torch.testing.assert_close(relevance, 1 - torch.tanh(x) ** 2)


@pytest.mark.parametrize(
    "scale", [2.0, torch.tensor([1.0, 2.0, 3.0])], ids=["number", "per_example_tensor"]
)
def test_additional_forward_args(scale):
    model, x = ScaledMLP().eval(), torch.randn(3, 5)
    ours = SiMECAttribution(model).attribute(x, target=1, additional_forward_args=(scale,))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        theirs = Saliency(model).attribute(x, target=1, additional_forward_args=(scale,))
    assert torch.equal(ours, theirs)
    single = SiMECAttribution(model).attribute(x, target=1, additional_forward_args=scale)
    assert torch.equal(single, ours)


WALK_OPTIONS = {"flip": {"steps": 60, "step_size": 0.1}, "class_extent": {"steps": 8}}


@pytest.mark.parametrize("score", SCORES)
def test_batch_result_equals_per_example_results(score):
    model, x = mlp(), torch.randn(4, 6)
    target = [0, 2, 1, 1]
    attribution = SiMECAttribution(model)
    options = WALK_OPTIONS.get(score, {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        batch = attribution.attribute(x, target=target, score=score, **options)
        single = torch.cat(
            [
                attribution.attribute(x[i : i + 1], target=t, score=score, **options)
                for i, t in enumerate(target)
            ]
        )
    torch.testing.assert_close(batch, single, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("score", SCORES)
def test_user_tensors_are_untouched_and_grad_works_under_no_grad(score):
    model = mlp()
    x = torch.randn(3, 6, requires_grad=True)
    x.grad = torch.ones_like(x)
    plain = torch.randn(3, 6)
    attribution = SiMECAttribution(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        attribution.attribute(x, target=0, score=score, **WALK_OPTIONS.get(score, {}))
        with torch.no_grad():
            result = attribution.attribute(
                plain, target=0, score=score, **WALK_OPTIONS.get(score, {})
            )
    assert torch.equal(x.grad, torch.ones_like(x)) and x.requires_grad
    assert not plain.requires_grad and plain.grad is None
    assert not result.requires_grad and result.shape == plain.shape
    assert all(p.grad is None for p in model.parameters())


# ----- errors -----
def test_bad_score_name_is_refused():
    with pytest.raises(ValueError, match="score='saliency'"):
        SiMECAttribution(mlp()).attribute(torch.randn(2, 6), score="saliency")


def test_target_out_of_range_is_refused():
    with pytest.raises(ValueError, match="out of range"):
        SiMECAttribution(mlp()).attribute(torch.randn(2, 6), target=7)


@pytest.mark.parametrize(
    ("baselines", "error", "match"),
    [
        ((0.0, 1.0), ValueError, "2 element"),
        (torch.zeros(2, 5), ValueError, "does not broadcast"),
        ("black", TypeError, "number or a tensor"),
    ],
    ids=["tuple_length", "shape", "type"],
)
def test_bad_baselines_are_refused(baselines, error, match):
    attribution = SiMECAttribution(mlp(), multiply_by_inputs=True)
    with pytest.raises(error, match=match):
        attribution.attribute(torch.randn(3, 6), target=0, baselines=baselines)


def test_baselines_without_multiply_by_inputs_are_refused():
    with pytest.raises(ValueError, match="multiply_by_inputs=True"):
        SiMECAttribution(mlp()).attribute(torch.randn(2, 6), target=0, baselines=0.0)


def test_return_convergence_delta_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="return_convergence_delta=False"):
        SiMECAttribution(mlp()).attribute(
            torch.randn(2, 6), target=0, return_convergence_delta=True
        )


def test_signed_needs_a_sign():
    attribution, x = SiMECAttribution(mlp()), torch.randn(2, 6)
    with pytest.raises(ValueError, match="pass target"):
        attribution.attribute(x, signed=True)
    with pytest.raises(ValueError, match="robustness has no sign"):
        attribution.attribute(x, target=0, score="robustness", signed=True)
    with pytest.raises(ValueError, match="class_extent has no sign"):
        attribution.attribute(x, score="class_extent", signed=True)


def test_walk_options_on_a_geometric_score_are_refused():
    with pytest.raises(TypeError, match="steps"):
        SiMECAttribution(mlp()).attribute(torch.randn(2, 6), target=0, steps=10)


def test_a_target_metric_without_target_names_the_fix():
    with pytest.raises(ValueError, match="needs `target`"):
        SiMECAttribution(mlp()).attribute(torch.randn(2, 6), output_metric="target")
