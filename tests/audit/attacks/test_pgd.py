"""PGD with one radius per example: closed forms, Captum's PGD, random starts, no flip."""

from __future__ import annotations

import pytest
import torch
from captum.robust import PGD

from captum_simec.audit.attacks import AttackResult, deepfool, min_fgsm_epsilon, min_pgd_epsilon
from captum_simec.audit.attacks._losses import log_odds_loss
from captum_simec.audit.attacks.pgd import _pgd

from .helpers import SLACK, TOL, assert_finds_exact, binary_problem, closed_form, linear, mlp


@pytest.mark.parametrize("norm, dual", [("L2", 2.0), ("Linf", 1.0)])
def test_matches_closed_form_on_binary_linear(norm, dual):
    model, x = binary_problem()
    exact = closed_form(model, x, dual)
    # The margins differ between examples, so a single per-batch value could not pass.
    assert exact.max() - exact.min() > 100 * TOL
    res = min_pgd_epsilon(model, x, norm=norm, eps_max=10.0, tol=TOL)
    assert_finds_exact(res, exact)
    measured = res.perturbation_l2 if norm == "L2" else res.perturbation_linf
    assert torch.allclose(measured, res.epsilon, atol=SLACK)


@pytest.mark.parametrize("norm, dual", [("L2", 2.0), ("Linf", 1.0)])
def test_three_class_linear(norm, dual):
    # Large weights make the cross-entropy ascent direction that of the runner-up class.
    model = linear(5, 3, seed=5)
    with torch.no_grad():
        model.weight.mul_(10.0)
        model.bias.mul_(10.0)
    x = torch.randn(12, 5, generator=torch.Generator().manual_seed(6))
    exact = closed_form(model, x, dual)
    res = min_pgd_epsilon(model, x, norm=norm, eps_max=5.0, tol=TOL, steps=40)
    assert res.flipped.all()
    # Any flip is an upper bound of the exact minimum; PGD reaches it on most examples.
    assert (res.epsilon >= exact - SLACK).all()
    close = (res.epsilon - exact).abs() <= TOL + SLACK
    assert close.float().mean() >= 0.75, (res.epsilon, exact)


@pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require gradients")
def test_linf_iterates_match_captum_pgd():
    model = mlp()
    x = torch.rand(7, 4, generator=torch.Generator().manual_seed(7))
    labels = model(x).argmax(dim=1)
    radius, frac, steps = 0.05, 0.3, 5
    ours, _ = _pgd(
        model,
        x,
        labels,
        torch.full((7,), radius),
        norm="Linf",
        steps=steps,
        step_fraction=frac,
        generator=None,
        lower=torch.tensor(0.0),
        upper=torch.tensor(1.0),
        args=(),
        stop_on_flip=False,
    )
    captum_pgd = PGD(model, loss_func=log_odds_loss, lower_bound=0.0, upper_bound=1.0)
    theirs = captum_pgd.perturb(x, radius, frac * radius, steps, labels, norm="Linf")
    torch.testing.assert_close(ours, theirs)


def test_l2_random_start_batch_reproducible():
    model, x = binary_problem()
    kwargs = {"norm": "L2", "eps_max": 10.0, "random_start": True, "tol": 1e-3}
    first = min_pgd_epsilon(model, x, seed=11, **kwargs)
    second = min_pgd_epsilon(model, x, seed=11, **kwargs)
    torch.testing.assert_close(first.epsilon, second.epsilon)
    torch.testing.assert_close(first.adversarial, second.adversarial)
    other = min_pgd_epsilon(model, x, seed=12, **kwargs)
    assert not torch.equal(first.adversarial, other.adversarial)
    gen_a = torch.Generator().manual_seed(3)
    gen_b = torch.Generator().manual_seed(3)
    torch.testing.assert_close(
        min_pgd_epsilon(model, x, generator=gen_a, **kwargs).epsilon,
        min_pgd_epsilon(model, x, generator=gen_b, **kwargs).epsilon,
    )
    # Random start is an upper bound of the exact distance and stays near it.
    exact = closed_form(model, x, 2.0)
    assert first.flipped.all()
    assert (first.epsilon >= exact - SLACK).all()
    assert (first.epsilon <= 1.2 * exact + 1e-2).all()


def test_linf_random_start_runs():
    model, x = binary_problem()
    res = min_pgd_epsilon(model, x, norm="Linf", eps_max=10.0, random_start=True, seed=0)
    assert res.flipped.all()
    assert (res.perturbation_linf <= res.epsilon + SLACK).all()


def test_unflippable_reports_inf():
    model, x = binary_problem()
    exact = closed_form(model, x, 2.0)
    eps_max = float(exact.median())
    res = min_pgd_epsilon(model, x, norm="L2", eps_max=eps_max, tol=TOL)
    far = exact > eps_max + SLACK
    assert far.any() and (~far).any()
    assert torch.isinf(res.epsilon[far]).all()
    assert not res.flipped[far].any()
    assert (res.new_class[far] == -1).all()
    assert torch.equal(res.adversarial[far], x[far])
    assert (res.perturbation_l2[far] == 0).all()
    assert res.flipped[exact < eps_max - TOL].all()


def test_mlp_adversarials_really_flip_and_pgd_beats_fgsm():
    model = mlp(seed=1)
    x = torch.randn(40, 4, generator=torch.Generator().manual_seed(10))
    tol = 1e-3
    pgd = min_pgd_epsilon(model, x, norm="Linf", eps_max=4.0, tol=tol)
    fgsm = min_fgsm_epsilon(model, x, norm="Linf", eps_max=4.0, tol=tol)
    targeted = min_pgd_epsilon(model, x, norm="Linf", eps_max=4.0, tol=tol, loss="targeted")
    margin = min_pgd_epsilon(model, x, norm="Linf", eps_max=4.0, tol=tol, loss="margin")
    df_l2 = deepfool(model, x)
    df_linf = deepfool(model, x, norm="Linf")
    clean = model(x).argmax(dim=1)
    for res in (pgd, fgsm, targeted, margin, df_l2, df_linf):
        assert res.flipped.float().mean() > 0.9
        recomputed = model(res.adversarial).argmax(dim=1)
        assert (recomputed[res.flipped] != clean[res.flipped]).all()
        assert (recomputed[res.flipped] == res.new_class[res.flipped]).all()
        assert (res.perturbation_linf[res.flipped] <= res.epsilon[res.flipped] + 1e-5).all()

    def share(small: AttackResult, large: torch.Tensor) -> float:
        return float((small.epsilon <= large + tol).float().mean())

    # Multi-step PGD needs no larger a radius than one-step FGSM.
    assert share(pgd, fgsm.epsilon) >= 0.9
    # Any flipping perturbation bounds the minimal L-inf radius from above; the targeted PGD
    # sweep stays below both DeepFool perturbations (measured in L-inf). Cross-entropy PGD
    # spreads its push over all classes of this low-confidence model and does not always.
    assert share(targeted, df_linf.perturbation_linf) >= 0.95
    assert share(targeted, df_l2.perturbation_linf) >= 0.95
    assert share(targeted, pgd.epsilon) >= 0.95
    assert share(targeted, margin.epsilon) >= 0.95


def test_pgd_specific_errors():
    model, x = binary_problem()
    with pytest.raises(ValueError, match="`steps`"):
        min_pgd_epsilon(model, x, eps_max=1.0, steps=0)
    with pytest.raises(ValueError, match="`step_fraction`"):
        min_pgd_epsilon(model, x, eps_max=1.0, step_fraction=-0.1)
    with pytest.raises(TypeError, match="`seed` must be an int"):
        min_pgd_epsilon(model, x, eps_max=1.0, random_start=True, seed="a")
    with pytest.raises(ValueError, match="`seed` must be an int >= 0"):
        min_pgd_epsilon(model, x, eps_max=1.0, random_start=True, seed=-1)
