"""Tests of captum_simec.zoo.training: seeded trainers, float64 fixtures, accuracy, the CNN.

Numbers of trained models are asserted only for models trained in float64 (the same on every
CPU); float32 training differs between CPUs.
"""

import pytest
import torch

from captum_simec.zoo import (
    MLP,
    PowerPlantResidualLSTM,
    ResidualCNN,
    accuracy,
    fit_digits_cnn,
    float64_model,
    train_classifier,
    train_regressor,
)

# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


def test_fit_digits_cnn_accuracy_and_cache():
    model, split = fit_digits_cnn(seed=0, cache=False)
    assert not model.training
    assert all(p.dtype == torch.float32 for p in model.parameters())  # a float32 copy
    assert accuracy(model, split.x_test, split.y_test) >= 0.95  # 0.958 on every CPU
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


def _xor(count: int = 200):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(count, 2, generator=gen)
    return x, (x[:, 0] * x[:, 1] > 0).long()  # XOR-like quadrants


def test_float64_builds_and_trains_in_float64_and_returns_a_float32_copy():
    x, y = _xor()
    exact = float64_model(lambda: MLP(2, (16, 16), 2, activation="tanh", seed=0))
    cast = MLP(2, (16, 16), 2, activation="tanh", seed=0).double()
    assert all(p.dtype == torch.float64 for p in exact.parameters())
    drawn = torch.cat([p.flatten() for p in exact.parameters()])
    rounded = torch.cat([p.flatten() for p in cast.parameters()])
    assert not torch.equal(drawn, rounded)  # drawn in float64, not a cast of float32 draws
    settings = {"epochs": 40, "lr": 0.1, "momentum": 0.9, "batch_size": 32, "seed": 1}
    copy = train_classifier(exact, x, y, float64=True, **settings)  # exact: in place
    assert copy is not exact and not copy.training
    for p, q in zip(copy.parameters(), exact.parameters(), strict=True):
        assert p.dtype == torch.float32 and torch.equal(p, q.float())
    assert accuracy(copy, x, y) > 0.9
    built = train_classifier(
        lambda: MLP(2, (16, 16), 2, activation="tanh", seed=0), x, y, float64=True, **settings
    )
    for p, q in zip(built.parameters(), copy.parameters(), strict=True):
        assert torch.equal(p, q)  # a factory gives the same network


def test_float64_refuses_a_float32_module_and_a_non_callable():
    with pytest.raises(ValueError, match="pass a function that builds it"):
        train_classifier(MLP(2, (4,), 2, seed=0), *_xor(8), float64=True)
    with pytest.raises(TypeError, match="must return an nn.Module"):
        float64_model(lambda: 3)
    with pytest.raises(TypeError, match="`model` must be an nn.Module"):
        train_regressor(3, *_xor(8))


def test_train_classifier_reproducible_and_heads():
    x, y = _xor()
    weights = {}
    for head in ("logits", "softmax", "log_softmax"):
        model = train_classifier(
            lambda head=head: MLP(2, (16, 16), 2, activation="tanh", head=head, seed=0),
            x,
            y,
            epochs=40,
            lr=0.1,
            momentum=0.9,
            batch_size=32,
            seed=1,
            float64=True,
        )
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

    def build():
        with torch.random.fork_rng():
            torch.manual_seed(0)
            return torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.LogSoftmax(dim=1))

    model = train_classifier(
        build, x, y, epochs=20, lr=0.5, seed=0, head="log_softmax", float64=True
    )
    assert accuracy(model, x, y) > 0.95


def test_train_regressor_fits_synthetic_power_plant():
    from captum_simec.zoo import synthetic_regression

    data = synthetic_regression(n=1000, seed=0)
    x_tr, y_tr, x_te, y_te = data.train_test_split(0.2, seed=0)
    settings = {"epochs": 30, "lr": 1e-2, "batch_size": 64, "seed": 0, "float64": True}
    model = train_regressor(lambda: PowerPlantResidualLSTM(seed=0), x_tr, y_tr, **settings)
    assert not model.training and next(model.parameters()).dtype == torch.float32
    with torch.no_grad():
        mse = torch.nn.functional.mse_loss(model(x_te), y_te).item()
    assert mse < 0.05  # the target is standardised: R^2 > 0.95
    model2 = train_regressor(lambda: PowerPlantResidualLSTM(seed=0), x_tr, y_tr[:, 0], **settings)
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
