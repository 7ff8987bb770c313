"""Tests of captum_simec.models: architectures, torch.func compatibility and training."""

import time

import pytest
import torch
from torch.func import jacfwd, jacrev, vmap

from captum_simec.models import (
    MLP,
    PaperMNISTCNN,
    PowerPlantResidualLSTM,
    ResidualCNN,
    ResNet18Like,
    SequenceGRU,
    SequenceLSTM,
    ToyNet,
    accuracy,
    count_parameters,
    fit_digits_cnn,
    train_classifier,
    train_regressor,
)


def per_example_jacobian(model, x):
    """Jacobian of each example's output w.r.t. its input with torch.func: (B, m, *in)."""

    def f(xi):
        return model(xi.unsqueeze(0)).squeeze(0)

    return vmap(jacrev(f))(x)


def autograd_jacobian(model, x):
    """The same Jacobians with plain autograd, one output row at a time."""
    rows = []
    for i in range(x.shape[0]):
        xi = x[i : i + 1].clone().requires_grad_(True)
        out = model(xi)[0]
        grads = [torch.autograd.grad(out[k], xi, retain_graph=True)[0][0] for k in range(len(out))]
        rows.append(torch.stack(grads))
    return torch.stack(rows)


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


# --------------------------------------------------------------------------------------------
# Recurrent models
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [SequenceGRU, SequenceLSTM])
def test_sequence_models_autograd_and_vmap_jacrev(cls):
    model = cls(input_size=2, hidden_size=6, num_classes=3, seed=0).eval()
    x = torch.randn(4, 5, 2)
    out = model(x)
    assert out.shape == (4, 3)
    xr = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(xr)[:, 1].sum(), xr)
    assert grad.shape == x.shape and grad.abs().sum() > 0
    jac = per_example_jacobian(model, x)
    assert jac.shape == (4, 3, 5, 2)
    torch.testing.assert_close(jac, autograd_jacobian(model, x), rtol=1e-4, atol=1e-6)
    # An unbatched (T, d) sequence is one example.
    torch.testing.assert_close(model(x[0]), out[0])


def test_sequence_gru_vmap_jacfwd():
    model = SequenceGRU(2, 6, 3, seed=0).eval()
    x = torch.randn(3, 5, 2)
    fwd = vmap(jacfwd(lambda xi: model(xi.unsqueeze(0)).squeeze(0)))(x)
    torch.testing.assert_close(fwd, per_example_jacobian(model, x), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("cls", [SequenceGRU, SequenceLSTM])
def test_sequence_models_forward_only_vmap_is_unsupported(cls):
    """Documented limitation in torch 2.13: no batching rule for aten::gru/lstm.input.

    If a later torch adds one, the results must agree with the ordinary batched call.
    """
    model = cls(2, 6, 3, seed=0).eval()
    x = torch.randn(3, 5, 2)
    try:
        out = vmap(lambda xi: model(xi.unsqueeze(0)).squeeze(0))(x)
    except RuntimeError as err:
        assert "Batching rule not implemented" in str(err)
    else:
        torch.testing.assert_close(out, model(x))


def test_sequence_lstm_jacfwd_is_unsupported_or_correct():
    """Documented limitation on CPU float32: no forward-mode AD for mkldnn_rnn_layer."""
    model = SequenceLSTM(2, 6, 3, seed=0).eval()
    x = torch.randn(2, 5, 2)
    try:
        fwd = vmap(jacfwd(lambda xi: model(xi.unsqueeze(0)).squeeze(0)))(x)
    except (NotImplementedError, RuntimeError) as err:
        assert "forward AD" in str(err) or "Batching rule" in str(err)
    else:
        torch.testing.assert_close(fwd, per_example_jacobian(model, x), rtol=1e-4, atol=1e-6)


def test_power_plant_regressor_smooth_and_transformable():
    model = PowerPlantResidualLSTM(in_features=4, hidden=16, seed=0).eval()
    x = torch.rand(5, 4)
    assert model(x).shape == (5, 1)
    rev = per_example_jacobian(model, x)
    fwd = vmap(jacfwd(lambda xi: model(xi.unsqueeze(0)).squeeze(0)))(x)
    assert rev.shape == (5, 1, 4)
    torch.testing.assert_close(rev, fwd, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(rev, autograd_jacobian(model, x), rtol=1e-4, atol=1e-6)
    # Smooth: a tiny step changes the Jacobian only a little.
    rev2 = per_example_jacobian(model, x + 1e-4)
    assert (rev2 - rev).abs().max() < 1e-3
    assert model(x[0]).shape == (1,)  # an unbatched example


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


def test_fit_digits_cnn_accuracy_time_and_cache():
    start = time.perf_counter()
    model, split = fit_digits_cnn(seed=0, cache=False)
    elapsed = time.perf_counter() - start
    assert not model.training
    assert accuracy(model, split.x_test, split.y_test) >= 0.9
    assert elapsed < 60
    assert model.head == "log_softmax"
    cached, split2 = fit_digits_cnn(seed=0)
    again, split3 = fit_digits_cnn(seed=0)
    assert split3 is split2 and again is not cached
    for p, q, r in zip(model.parameters(), cached.parameters(), again.parameters(), strict=True):
        assert torch.equal(p, q) and torch.equal(q, r)  # same seed -> identical weights
    with torch.no_grad():
        again.fc3.bias.add_(1.0)  # modifying a returned copy leaves the cache alone
    fresh, _ = fit_digits_cnn(seed=0)
    assert torch.equal(fresh.fc3.bias, cached.fc3.bias)


def test_train_classifier_reproducible_and_heads():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(200, 2, generator=gen)
    y = (x[:, 0] * x[:, 1] > 0).long()  # XOR-like quadrants
    weights = {}
    for head in ("logits", "softmax", "log_softmax"):
        model = MLP(2, (16, 16), 2, activation="tanh", head=head, seed=0)
        train_classifier(model, x, y, epochs=40, lr=0.1, momentum=0.9, batch_size=32, seed=1)
        assert not model.training
        assert accuracy(model, x, y) > 0.9
        weights[head] = [p.detach().clone() for p in model.parameters()]
    # The head does not change the training (the loss is always taken on the logits).
    for p, q in zip(weights["logits"], weights["softmax"], strict=True):
        torch.testing.assert_close(p, q)
    for p, q in zip(weights["logits"], weights["log_softmax"], strict=True):
        torch.testing.assert_close(p, q)


def test_train_classifier_without_logits_method():
    """A plain nn.Sequential ending in LogSoftmax trains through the head= argument."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(128, 2, generator=gen)
    y = (x[:, 0] > 0).long()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.LogSoftmax(dim=1))
    train_classifier(model, x, y, epochs=20, lr=0.5, seed=0, head="log_softmax")
    assert accuracy(model, x, y) > 0.95


def test_train_regressor_fits_synthetic_power_plant():
    from captum_simec.datasets import synthetic_regression

    data = synthetic_regression(n=1000, seed=0)
    x_tr, y_tr, x_te, y_te = data.train_test_split(0.2, seed=0)
    model = PowerPlantResidualLSTM(seed=0)
    train_regressor(model, x_tr, y_tr, epochs=30, lr=1e-2, batch_size=64, seed=0)
    assert not model.training
    with torch.no_grad():
        mse = torch.nn.functional.mse_loss(model(x_te), y_te).item()
    assert mse < 0.05  # the target is standardised: R^2 > 0.95
    model2 = PowerPlantResidualLSTM(seed=0)
    train_regressor(model2, x_tr, y_tr[:, 0], epochs=30, lr=1e-2, batch_size=64, seed=0)
    for p, q in zip(model.parameters(), model2.parameters(), strict=True):
        assert torch.equal(p, q)


def test_trainer_restores_thread_count():
    torch.set_num_threads(2)
    model = MLP(2, (4,), 2, seed=0)
    x, y = torch.randn(8, 2), torch.randint(0, 2, (8,))
    train_classifier(model, x, y, epochs=1, num_threads=1)
    assert torch.get_num_threads() == 2


def test_accuracy_restores_mode():
    model = ResidualCNN(width=4, seed=0)
    model.train()
    x, y = torch.rand(6, 3, 16, 16), torch.randint(0, 10, (6,))
    acc = accuracy(model, x, y, batch_size=4)
    assert 0.0 <= acc <= 1.0 and model.training
