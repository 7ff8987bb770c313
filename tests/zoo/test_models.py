"""Tests of captum_simec.zoo.models: architectures and their torch.func compatibility."""

import pytest
import torch

from captum_simec.zoo import (
    MLP,
    PaperMNISTCNN,
    ResidualCNN,
    ResNet18Like,
    ToyNet,
    count_parameters,
)
from tests.zoo.helpers import autograd_jacobian, per_example_jacobian

# --------------------------------------------------------------------------------------------
# Paper CNN
# --------------------------------------------------------------------------------------------


def test_paper_cnn_parameter_count_and_heads():
    model = PaperMNISTCNN(seed=0).eval()
    assert count_parameters(model) == 24_390
    x = torch.rand(4, 1, 28, 28)
    out = model(x)
    assert out.shape == (4, 10)
    torch.testing.assert_close(out.exp().sum(dim=1), torch.ones(4))
    probs = PaperMNISTCNN(head="softmax", seed=0)(x)
    torch.testing.assert_close(probs, out.exp())
    logits = PaperMNISTCNN(head="logits", seed=0)(x)
    torch.testing.assert_close(logits.log_softmax(dim=1), out)
    with pytest.raises(ValueError, match="head"):
        PaperMNISTCNN(head="sigmoid")


def test_seed_fixes_init_without_touching_global_rng():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = PaperMNISTCNN(seed=7)
    after = torch.rand(1)
    b = PaperMNISTCNN(seed=7)
    assert torch.equal(before, after)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_paper_cnn_vmap_jacobian_matches_autograd():
    model = PaperMNISTCNN(seed=0).eval()
    x = torch.rand(2, 1, 28, 28)
    jac = per_example_jacobian(model, x)
    assert jac.shape == (2, 10, 1, 28, 28)
    torch.testing.assert_close(jac, autograd_jacobian(model, x))


# --------------------------------------------------------------------------------------------
# Toy networks
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "activation, slope, expected",
    [
        ("relu", 0.01, lambda z: z.clamp_min(0)),
        ("leaky_relu", 0.01, lambda z: torch.where(z > 0, z, 0.01 * z)),
        ("leaky_relu", -0.01, lambda z: torch.where(z > 0, z, -0.01 * z)),
        ("identity", 0.01, lambda z: z),
        ("sigmoid", 0.01, lambda z: 1 / (1 + torch.exp(-z))),
        ("tanh", 0.01, torch.tanh),
    ],
)
def test_toynet_closed_form(activation, slope, expected):
    a = torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64)
    net = ToyNet(a, activation=activation, negative_slope=slope)
    x = torch.tensor(
        [[1.85, 1.3, 1.5], [-1.85, 1.3, 0.0], [0.5, 0.5, 0.0], [0.0, 3.0, 1.0]],
        dtype=torch.float64,
    )
    z = x[:, 0] - x[:, 1] + x[:, 2]
    out = net(x)
    assert out.shape == (4, 1) and out.dtype == torch.float64
    torch.testing.assert_close(out[:, 0], expected(z), rtol=0, atol=1e-15)
    assert count_parameters(net, trainable_only=True) == 0
    torch.testing.assert_close(net.weights, a)


def test_toynet_leaky_negative_slope_values_and_gradient():
    net = ToyNet([1.0, -1.0], activation="leaky_relu", negative_slope=-0.01)
    x = torch.tensor([[-1.85, 1.3], [1.85, 1.3]], dtype=torch.float64)
    # a·x = -3.15 -> -0.01 * -3.15 = +0.0315 (the authors' sign); a·x = 0.55 -> 0.55.
    torch.testing.assert_close(net(x)[:, 0], torch.tensor([0.0315, 0.55], dtype=torch.float64))
    jac = per_example_jacobian(net, x)[:, 0]
    expected = torch.tensor([[-0.01, 0.01], [1.0, -1.0]], dtype=torch.float64)
    torch.testing.assert_close(jac, expected)


# --------------------------------------------------------------------------------------------
# MLP and residual CNNs
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "gelu", "tanh", "sigmoid"])
def test_mlp_flattens_and_vmaps(activation):
    model = MLP(12, hidden=(8, 8), out_features=3, activation=activation, seed=0).eval()
    x = torch.rand(5, 3, 4)
    assert model(x).shape == (5, 3)
    jac = per_example_jacobian(model, x)
    assert jac.shape == (5, 3, 3, 4)
    torch.testing.assert_close(jac, autograd_jacobian(model, x))


def test_mlp_heads():
    x = torch.rand(6, 4)
    logits = MLP(4, (5,), 3, head="logits", seed=1)(x)
    torch.testing.assert_close(MLP(4, (5,), 3, head="softmax", seed=1)(x), logits.softmax(1))
    torch.testing.assert_close(
        MLP(4, (5,), 3, head="log_softmax", seed=1)(x), logits.log_softmax(1)
    )
    with pytest.raises(ValueError, match="activation"):
        MLP(4, activation="swish")


def test_residual_cnn_forward_and_vmap_in_eval():
    model = ResidualCNN(in_channels=3, num_classes=10, width=8, seed=0).eval()
    x = torch.rand(2, 3, 32, 32)
    assert model(x).shape == (2, 10)
    jac = per_example_jacobian(model, x)
    assert jac.shape == (2, 10, 3, 32, 32)
    torch.testing.assert_close(jac, autograd_jacobian(model, x), rtol=1e-4, atol=1e-5)


def test_resnet18_like_shape_and_size():
    model = ResNet18Like(num_classes=10, seed=0).eval()
    n_params = count_parameters(model)
    assert 10.5e6 < n_params < 12e6  # torchvision's resnet18 with a 10-way fc: 11,181,642
    with torch.no_grad():
        out = model(torch.rand(1, 3, 224, 224))
    assert out.shape == (1, 10) and torch.isfinite(out).all()
