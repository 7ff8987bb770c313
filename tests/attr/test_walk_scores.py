"""The walk scores (flip, class extent) through SiMECAttribution, against closed forms."""

import pytest
import torch

from captum_simec.attr import SiMECAttribution
from tests.attr.helpers import Linear


def test_flip_on_a_linear_classifier_is_the_distance_to_the_decision_boundary():
    weight = torch.tensor([[1.0, 2.0, 0.0, -1.0], [-1.0, 0.5, 0.0, 1.0]], dtype=torch.float64)
    model = Linear(weight).eval()
    x = torch.tensor([[1.0, 0.5, 3.0, 0.2], [0.3, 1.0, -2.0, 0.0]], dtype=torch.float64)
    normal = weight[0] - weight[1]  # gradient of the margin of class 0 over class 1
    margin = x @ normal
    expected = -(margin / normal.square().sum()).unsqueeze(1) * normal
    signed = SiMECAttribution(model).attribute(
        x, target=0, score="flip", signed=True, steps=100, step_size=0.05
    )
    torch.testing.assert_close(signed, expected, atol=1e-4, rtol=0)
    unsigned = SiMECAttribution(model).attribute(
        x, target=0, score="flip", steps=100, step_size=0.05
    )
    torch.testing.assert_close(unsigned, expected.abs(), atol=1e-4, rtol=0)
    assert torch.all(unsigned[:, 2] == 0)  # a feature the model ignores never moves


def test_flip_towards_a_class_that_is_not_predicted_walks_up_its_margin():
    weight = torch.tensor([[1.0, 2.0, 0.0, -1.0], [-1.0, 0.5, 0.0, 1.0]], dtype=torch.float64)
    model = Linear(weight).eval()
    x = torch.tensor([[1.0, 0.5, 3.0, 0.2], [0.3, 1.0, -2.0, 0.0]], dtype=torch.float64)
    attribution = SiMECAttribution(model)
    kw = dict(score="flip", signed=True, steps=100, step_size=0.05)
    leave = attribution.attribute(x, target=0, **kw)  # both examples predict class 0
    reach = attribution.attribute(x, target=1, **kw)  # two classes: the same boundary
    torch.testing.assert_close(reach, leave, atol=1e-4, rtol=0)
    mixed = attribution.attribute(x, target=[0, 1], **kw)
    torch.testing.assert_close(mixed, leave, atol=1e-4, rtol=0)


def test_flip_reads_a_one_output_model_as_a_binary_logit():
    weight = torch.tensor([[2.0, -1.0]], dtype=torch.float64)
    x = torch.tensor([[1.0, 1.0]], dtype=torch.float64)  # f = 1 > 0
    flip = SiMECAttribution(Linear(weight).eval()).attribute(
        x, score="flip", signed=True, steps=50, step_size=0.05
    )
    expected = -(1.0 / 5.0) * weight  # reach f = 0 along -grad f
    torch.testing.assert_close(flip, expected, atol=1e-4, rtol=0)


def test_flip_warns_when_the_walk_stops_before_the_class_changes():
    weight = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    x = torch.tensor([[5.0, 0.0]])
    with pytest.warns(UserWarning, match="stopped before their decision changed"):
        SiMECAttribution(Linear(weight).eval()).attribute(
            x, target=0, score="flip", steps=3, step_size=0.01
        )


def test_class_extent_never_moves_a_feature_the_output_depends_on_alone():
    weight = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64)  # f = x_0
    x = torch.randn(2, 3, dtype=torch.float64)
    attribution = SiMECAttribution(Linear(weight).eval())
    extent = attribution.attribute(x, score="class_extent", steps=20, step_size=0.1, seed=3)
    assert torch.all(extent[:, 0] < 1e-12)
    assert torch.all(extent[:, 1:] > 0) and torch.all(extent <= 20 * 0.1 + 1e-12)
    again = attribution.attribute(x, score="class_extent", steps=20, step_size=0.1, seed=3)
    assert torch.equal(extent, again)
