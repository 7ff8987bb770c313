"""FGSM and the fast gradient method: closed forms, Captum's FGSM, and the exact sign."""

from __future__ import annotations

import pytest
import torch
from captum.robust import FGSM
from torch import nn

from captum_simec.audit.attacks import AttackResult, min_fgsm_epsilon
from captum_simec.audit.attacks._losses import log_odds_loss

from .helpers import TOL, assert_finds_exact, binary_problem, closed_form, mlp


@pytest.mark.parametrize("norm, dual", [("Linf", 1.0), ("L2", 2.0)])
def test_matches_closed_form_on_binary_linear(norm, dual):
    model, x = binary_problem()
    exact = closed_form(model, x, dual)
    res = min_fgsm_epsilon(model, x, norm=norm, eps_max=10.0, tol=TOL)
    assert_finds_exact(res, exact)


@pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require gradients")
def test_adversarials_match_captum_fgsm():
    model = mlp()
    x = torch.rand(7, 4, generator=torch.Generator().manual_seed(7))
    labels = model(x).argmax(dim=1)
    res = min_fgsm_epsilon(model, x, eps_max=1.0, lower_bound=0.0, upper_bound=1.0)
    assert res.flipped.any()
    fgsm = FGSM(model, loss_func=log_odds_loss, lower_bound=0.0, upper_bound=1.0)
    for i in torch.nonzero(res.flipped).squeeze(1).tolist():
        ref = fgsm.perturb(x[i : i + 1], float(res.epsilon[i]), labels[i : i + 1])
        torch.testing.assert_close(res.adversarial[i : i + 1], ref)


@pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require gradients")
def test_small_gradients_keep_their_sign():
    # z_1 - z_0 = d . x + c on a two-class linear model: the log-odds gradient is d exactly.
    # Captum's FGSM treats |d_j| < 1e-6 as zero; sign(grad) moves that feature too, and a
    # feature whose gradient is exactly zero stays put.
    d = torch.tensor([1e-8, 1.0, -1.0, 0.5, 0.0], dtype=torch.float64)
    model = nn.Linear(5, 2).double().eval()
    with torch.no_grad():
        model.weight.copy_(torch.stack([torch.zeros_like(d), d]))
        model.bias.copy_(torch.tensor([1.0, 0.0], dtype=torch.float64))
    x = torch.rand(6, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    res = min_fgsm_epsilon(model, x, eps_max=5.0, tol=TOL)
    assert res.flipped.all()
    moved = res.adversarial - x
    torch.testing.assert_close(moved[:, 0], res.epsilon)  # the 1e-8 feature moved by eps
    assert (moved[:, 4] == 0).all()
    exact = closed_form(model, x, dual=1.0)
    assert (res.epsilon >= exact - 1e-12).all() and (res.epsilon <= exact + TOL).all()
    captum_step = FGSM(model, loss_func=log_odds_loss).perturb(x, 1.0, res.label)
    assert (captum_step[:, 0] == x[:, 0]).all()  # what the Captum path used to inherit


def test_misclassified_label_gives_zero():
    model, x = binary_problem()
    pred = model(x).argmax(dim=1)
    labels = pred.clone()
    labels[0] = 1 - pred[0]
    res = min_fgsm_epsilon(model, x, labels, eps_max=10.0)
    assert res.epsilon[0] == 0 and res.flipped[0] and res.new_class[0] == pred[0]
    assert (res.epsilon[1:] > 0).all()


def test_to_records_and_progress(capsys):
    model, x = binary_problem()
    res = min_fgsm_epsilon(model, x[:3], eps_max=10.0, progress=True)
    assert isinstance(res, AttackResult) and len(res) == 3
    records = res.to_records()
    assert len(records) == 3
    assert set(records[0]) == {
        "index",
        "attack",
        "norm",
        "label",
        "epsilon",
        "flipped",
        "new_class",
        "perturbation_l2",
        "perturbation_linf",
    }
    assert records[1]["index"] == 1 and records[1]["attack"] == "fgsm"
    assert isinstance(records[0]["epsilon"], float) and isinstance(records[0]["flipped"], bool)
    assert "bisection" in capsys.readouterr().err
