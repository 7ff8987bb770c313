"""Tests of captum_simec.zoo.recurrent: sequence models and the power-plant regressor."""

import pytest
import torch
from torch.func import jacfwd, vmap

from captum_simec.zoo import (
    PowerPlantResidualLSTM,
    SequenceGRU,
    SequenceLSTM,
)
from tests.zoo.helpers import autograd_jacobian, per_example_jacobian

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
