"""LayerSiMECAttribution: the metric pulled back to a layer of a small CNN."""

import pytest
import torch
from captum.attr import LayerAttribution, NoiseTunnel
from torch import nn

from captum_simec.attr import LayerSiMECAttribution, SiMECAttribution
from tests.attr.helpers import ScaledMLP, small_cnn


@pytest.fixture
def cnn():
    return small_cnn(), torch.randn(3, 1, 8, 8)


@pytest.mark.parametrize("score", ["relevance", "robustness"])
@pytest.mark.parametrize("target", [None, 2, [0, 3, 1]], ids=["none", "int", "list"])
def test_layer_scores_equal_the_input_scores_of_the_model_cut_at_the_layer(cnn, score, target):
    model, x = cnn
    layer_scores = LayerSiMECAttribution(model, model[1]).attribute(x, target=target, score=score)
    head, tail = model[:2], model[2:]
    expected = SiMECAttribution(tail).attribute(head(x).detach(), target=target, score=score)
    assert layer_scores.shape == (3, 3, 6, 6)
    torch.testing.assert_close(layer_scores, expected)


def test_attribute_to_layer_input_is_the_previous_cut(cnn):
    model, x = cnn
    ours = LayerSiMECAttribution(model, model[2]).attribute(
        x, target=1, attribute_to_layer_input=True
    )
    expected = SiMECAttribution(model[2:]).attribute(model[:2](x).detach(), target=1)
    torch.testing.assert_close(ours, expected)


def test_layer_multiply_by_inputs_uses_the_activation_difference(cnn):
    model, x = cnn
    baseline = torch.full((1, 1, 8, 8), 0.3)
    ours = LayerSiMECAttribution(model, model[1], multiply_by_inputs=True).attribute(
        x, target=0, baselines=baseline
    )
    head = model[:2]
    plain = SiMECAttribution(model[2:]).attribute(head(x).detach(), target=0)
    expected = plain * (head(x) - head(baseline)).abs().detach()
    torch.testing.assert_close(ours, expected)


def test_interpolate_upsamples_the_layer_map_to_the_input(cnn):
    model, x = cnn
    layer_map = LayerSiMECAttribution(model, model[1]).attribute(x, target=0)
    upsampled = LayerAttribution.interpolate(layer_map, (8, 8))
    assert upsampled.shape == (3, 3, 8, 8)
    assert torch.isfinite(upsampled).all()


def test_layer_batch_equals_per_example_and_inputs_are_untouched(cnn):
    model, x = cnn
    x.requires_grad_(True)
    attribution = LayerSiMECAttribution(model, model[3])
    batch = attribution.attribute(x, target=[0, 1, 2])
    single = torch.cat([attribution.attribute(x[i : i + 1], target=i) for i in range(3)])
    torch.testing.assert_close(batch, single)
    assert x.grad is None and all(p.grad is None for p in model.parameters())


def test_layer_with_additional_forward_args_and_noise_tunnel():
    model = ScaledMLP().eval()
    x, scale = torch.randn(4, 5), torch.tensor([1.0, 2.0, 0.5, 1.5])
    attribution = LayerSiMECAttribution(model, model.activation)
    result = attribution.attribute(x, target=0, additional_forward_args=(scale,))
    hidden = torch.tanh(model.hidden(x * scale.unsqueeze(1))).detach()
    torch.testing.assert_close(result, SiMECAttribution(model.out).attribute(hidden, target=0))
    smooth = NoiseTunnel(attribution).attribute(
        x,
        nt_samples=4,
        nt_samples_batch_size=3,
        stdevs=0.0,
        target=0,
        additional_forward_args=(scale,),
    )
    torch.testing.assert_close(smooth, result)


def test_flags_and_errors(cnn):
    model, x = cnn
    attribution = LayerSiMECAttribution(model, model[1])
    assert attribution.has_convergence_delta() is True  # score='boundary'
    assert attribution.multiplies_by_inputs is False
    assert hasattr(type(attribution).attribute, "__wrapped__")
    with pytest.raises(NotImplementedError):
        attribution.attribute_future()
    with pytest.raises(ValueError, match="score='saliency'"):
        attribution.attribute(x, target=0, score="saliency")
    with pytest.raises(ValueError, match="ran 0 times"):
        LayerSiMECAttribution(model, nn.Linear(2, 2)).attribute(x, target=0)
    with pytest.raises(ValueError, match="nn.Module"):
        LayerSiMECAttribution(model, "conv1")
    with pytest.raises(ValueError, match="DataParallel"):
        LayerSiMECAttribution(model, model[1], device_ids=[0])
    with pytest.raises(ValueError, match="return_convergence_delta=False"):
        attribution.attribute(x, target=0, return_convergence_delta=True)
    with pytest.raises(ValueError, match="multiply_by_inputs=True"):
        attribution.attribute(x, target=0, baselines=0.0)


def test_a_layer_of_a_model_in_training_mode_is_refused():
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Dropout(0.5), nn.Linear(6, 3)).train()
    with pytest.raises(ValueError, match="training mode"):
        LayerSiMECAttribution(model, model[1]).attribute(torch.randn(2, 4), target=0)


@pytest.mark.filterwarnings("ignore:score='flip'")
def test_walk_scores_of_a_layer_are_those_of_its_representation():
    """A layer's flip and class extent are the input scores of the model after the layer."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double().eval()
    x = torch.randn(3, 4, dtype=torch.float64)
    hidden = model[1](model[0](x)).detach()
    for score, options in (("flip", {"steps": 50}), ("class_extent", {"steps": 5})):
        on_layer = LayerSiMECAttribution(model, model[1]).attribute(
            x, target=0, score=score, **options
        )
        on_hidden = SiMECAttribution(model[2]).attribute(hidden, target=0, score=score, **options)
        torch.testing.assert_close(on_layer, on_hidden)
        assert on_layer.shape == (3, 6) and on_layer.abs().sum() > 0
