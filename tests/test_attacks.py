"""Tests for captum_simec.audit.attacks against closed-form and Captum oracles."""

from __future__ import annotations

import pytest
import torch
from captum.robust import FGSM, PGD
from torch import nn

from captum_simec.audit.attacks import (
    AttackResult,
    _log_odds_loss,
    _pgd,
    deepfool,
    min_fgsm_epsilon,
    min_pgd_epsilon,
)

TOL = 1e-4  # bisection tolerance used against the closed forms
SLACK = 1e-5  # float32 round-off on top of the tolerance


def _linear(n_features: int, n_classes: int, seed: int) -> nn.Linear:
    gen = torch.Generator().manual_seed(seed)
    model = nn.Linear(n_features, n_classes)
    with torch.no_grad():
        model.weight.copy_(torch.randn(n_classes, n_features, generator=gen))
        model.bias.copy_(torch.randn(n_classes, generator=gen))
    return model.eval()


def _closed_form(model: nn.Linear, x: torch.Tensor, dual: float) -> torch.Tensor:
    """Exact minimal flip distance of a linear classifier.

    The flip region is the union of half-spaces {z_k > z_y}; its distance is the minimum over
    k of (z_y - z_k) / ||w_y - w_k||_q with q the dual norm (2 for L2, 1 for L-inf).
    """
    weight, bias = model.weight.detach(), model.bias.detach()
    z = x @ weight.T + bias
    y = z.argmax(dim=1)
    best = torch.full((x.shape[0],), float("inf"))
    for k in range(weight.shape[0]):
        gap = z.gather(1, y[:, None]).squeeze(1) - z[:, k]
        normal = (weight[y] - weight[k]).norm(p=dual, dim=1)
        dist = torch.where(y == k, torch.full_like(gap, float("inf")), gap / normal)
        best = torch.minimum(best, dist)
    return best


def _assert_finds_exact(res: AttackResult, exact: torch.Tensor) -> None:
    """Every example flipped, at the exact radius up to the bisection tolerance."""
    assert res.flipped.all()
    assert (res.epsilon >= exact - SLACK).all()
    assert (res.epsilon <= exact + TOL + SLACK).all()


@pytest.fixture
def binary() -> tuple[nn.Linear, torch.Tensor]:
    model = _linear(6, 2, seed=1)
    x = torch.randn(10, 6, generator=torch.Generator().manual_seed(2))
    return model, x


def _mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 3)).eval()


# ----------------------------------------------------------------------------- closed forms


@pytest.mark.parametrize("norm, dual", [("L2", 2.0), ("Linf", 1.0)])
def test_pgd_matches_closed_form_on_binary_linear(binary, norm, dual):
    model, x = binary
    exact = _closed_form(model, x, dual)
    # The margins differ between examples, so a single per-batch value could not pass.
    assert exact.max() - exact.min() > 100 * TOL
    res = min_pgd_epsilon(model, x, norm=norm, eps_max=10.0, tol=TOL)
    _assert_finds_exact(res, exact)
    measured = res.perturbation_l2 if norm == "L2" else res.perturbation_linf
    assert torch.allclose(measured, res.epsilon, atol=SLACK)


@pytest.mark.parametrize("norm, dual", [("Linf", 1.0), ("L2", 2.0)])
def test_fgsm_matches_closed_form_on_binary_linear(binary, norm, dual):
    model, x = binary
    exact = _closed_form(model, x, dual)
    res = min_fgsm_epsilon(model, x, norm=norm, eps_max=10.0, tol=TOL)
    _assert_finds_exact(res, exact)


@pytest.mark.parametrize("norm, dual", [("L2", 2.0), ("Linf", 1.0)])
@pytest.mark.parametrize("n_classes", [2, 3])
def test_deepfool_matches_closed_form_on_linear(norm, dual, n_classes):
    model = _linear(6, n_classes, seed=3)
    x = torch.randn(12, 6, generator=torch.Generator().manual_seed(4))
    exact = _closed_form(model, x, dual)
    overshoot = 1e-4
    res = deepfool(model, x, norm=norm, overshoot=overshoot)
    assert res.flipped.all()
    # One linearised step lands on the nearest boundary, pushed by 1e-4 and the overshoot.
    assert (res.epsilon >= exact - SLACK).all()
    assert torch.allclose(res.epsilon, exact, rtol=5 * overshoot, atol=1e-3)


@pytest.mark.parametrize("norm, dual", [("L2", 2.0), ("Linf", 1.0)])
def test_pgd_three_class_linear(norm, dual):
    # Large weights make the cross-entropy ascent direction that of the runner-up class.
    model = _linear(5, 3, seed=5)
    with torch.no_grad():
        model.weight.mul_(10.0)
        model.bias.mul_(10.0)
    x = torch.randn(12, 5, generator=torch.Generator().manual_seed(6))
    exact = _closed_form(model, x, dual)
    res = min_pgd_epsilon(model, x, norm=norm, eps_max=5.0, tol=TOL, steps=40)
    assert res.flipped.all()
    # Any flip is an upper bound of the exact minimum; PGD reaches it on most examples.
    assert (res.epsilon >= exact - SLACK).all()
    close = (res.epsilon - exact).abs() <= TOL + SLACK
    assert close.float().mean() >= 0.75, (res.epsilon, exact)


@pytest.mark.parametrize("norm, dual", [("L2", 2.0), ("Linf", 1.0)])
@pytest.mark.parametrize("fn", [min_pgd_epsilon, min_fgsm_epsilon], ids=["pgd", "fgsm"])
def test_targeted_loss_exact_on_three_class_linear(norm, dual, fn):
    # Unscaled weights: the cross-entropy direction is not the nearest boundary's, but the
    # per-class targeted sweep reaches the exact minimum on every example.
    model = _linear(5, 3, seed=5)
    x = torch.randn(12, 5, generator=torch.Generator().manual_seed(6))
    exact = _closed_form(model, x, dual)
    res = fn(model, x, norm=norm, eps_max=5.0, tol=TOL, loss="targeted")
    _assert_finds_exact(res, exact)
    measured = res.perturbation_l2 if norm == "L2" else res.perturbation_linf
    assert (measured <= res.epsilon + SLACK).all()


# ----------------------------------------------------------------------------- Captum oracle


@pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require gradients")
def test_linf_step_matches_captum_pgd_and_fgsm():
    model = _mlp()
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
        random_start=False,
        generator=None,
        lower=torch.tensor(0.0),
        upper=torch.tensor(1.0),
        args=(),
        stop_on_flip=False,
    )
    captum_pgd = PGD(model, loss_func=_log_odds_loss, lower_bound=0.0, upper_bound=1.0)
    theirs = captum_pgd.perturb(x, radius, frac * radius, steps, labels, norm="Linf")
    torch.testing.assert_close(ours, theirs)

    res = min_fgsm_epsilon(model, x, eps_max=1.0, lower_bound=0.0, upper_bound=1.0)
    fgsm = FGSM(model, loss_func=_log_odds_loss, lower_bound=0.0, upper_bound=1.0)
    for i in torch.nonzero(res.flipped).squeeze(1).tolist():
        ref = fgsm.perturb(x[i : i + 1], float(res.epsilon[i]), labels[i : i + 1])
        torch.testing.assert_close(res.adversarial[i : i + 1], ref)


# ----------------------------------------------------------------------------- batch semantics


@pytest.mark.parametrize(
    "attack",
    [
        lambda m, x: min_pgd_epsilon(m, x, norm="L2", eps_max=3.0),
        lambda m, x: min_pgd_epsilon(m, x, norm="Linf", eps_max=3.0),
        lambda m, x: min_fgsm_epsilon(m, x, norm="Linf", eps_max=3.0),
        lambda m, x: min_pgd_epsilon(m, x, norm="Linf", eps_max=3.0, loss="targeted"),
        lambda m, x: deepfool(m, x),
    ],
    ids=["pgd-l2", "pgd-linf", "fgsm-linf", "pgd-targeted", "deepfool"],
)
def test_batch_equals_per_example(attack):
    model = _mlp()
    x = torch.randn(6, 4, generator=torch.Generator().manual_seed(8))
    batch = attack(model, x)
    singles = [attack(model, x[i : i + 1]) for i in range(6)]
    torch.testing.assert_close(batch.epsilon, torch.cat([s.epsilon for s in singles]))
    torch.testing.assert_close(batch.new_class, torch.cat([s.new_class for s in singles]))
    torch.testing.assert_close(batch.adversarial, torch.cat([s.adversarial for s in singles]))


def test_l2_random_start_batch_reproducible(binary):
    model, x = binary
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
    exact = _closed_form(model, x, 2.0)
    assert first.flipped.all()
    assert (first.epsilon >= exact - SLACK).all()
    assert (first.epsilon <= 1.2 * exact + 1e-2).all()


def test_linf_random_start_runs(binary):
    model, x = binary
    res = min_pgd_epsilon(model, x, norm="Linf", eps_max=10.0, random_start=True, seed=0)
    assert res.flipped.all()
    assert (res.perturbation_linf <= res.epsilon + SLACK).all()


# ----------------------------------------------------------------------------- box, no flip


@pytest.mark.parametrize("attack", ["pgd-L2", "pgd-Linf", "fgsm-Linf", "fgsm-L2", "deepfool"])
def test_box_constraints_respected(attack):
    model = _mlp()
    x = torch.rand(16, 4, generator=torch.Generator().manual_seed(9))
    lower = torch.tensor([0.0, 0.0, 0.2, 0.0])  # per-feature lower bound
    lower = torch.minimum(lower, x.min(dim=0).values)
    upper = 1.0
    kwargs = {"lower_bound": lower, "upper_bound": upper}
    if attack == "deepfool":
        res = deepfool(model, x, **kwargs)
    else:
        name, norm = attack.split("-")
        fn = min_pgd_epsilon if name == "pgd" else min_fgsm_epsilon
        res = fn(model, x, norm=norm, eps_max=2.0, **kwargs)
    assert (res.adversarial >= lower).all()
    assert (res.adversarial <= upper).all()
    assert res.flipped.any()


def test_unflippable_reports_inf(binary):
    model, x = binary
    exact = _closed_form(model, x, 2.0)
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


def test_misclassified_label_gives_zero(binary):
    model, x = binary
    pred = model(x).argmax(dim=1)
    labels = pred.clone()
    labels[0] = 1 - pred[0]
    res = min_fgsm_epsilon(model, x, labels, eps_max=10.0)
    assert res.epsilon[0] == 0 and res.flipped[0] and res.new_class[0] == pred[0]
    assert (res.epsilon[1:] > 0).all()


# ----------------------------------------------------------------------------- nonlinear


def test_mlp_adversarials_really_flip_and_pgd_beats_fgsm():
    model = _mlp(seed=1)
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


# ----------------------------------------------------------------------------- hygiene


def test_user_tensors_untouched(binary):
    model, x = binary
    x = x.clone().requires_grad_(True)
    x.grad = torch.ones_like(x)
    before = x.detach().clone()
    for fn in (min_pgd_epsilon, min_fgsm_epsilon):
        fn(model, x, eps_max=5.0)
    deepfool(model, x)
    assert x.requires_grad and torch.equal(x.grad, torch.ones_like(x))
    assert torch.equal(x.detach(), before)
    plain = before.clone()
    min_pgd_epsilon(model, plain, eps_max=5.0)
    assert not plain.requires_grad and plain.grad is None
    assert all(p.grad is None for p in model.parameters())


def test_additional_forward_args_and_no_grad_context():
    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = _linear(3, 2, seed=12)

        def forward(self, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
            return self.lin(x) * scale[:, None]

    model = Scaled().eval()
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(13))
    scale = torch.tensor([1.0, 2.0, 0.5, 3.0, 1.5])
    kwargs = {"eps_max": 10.0, "tol": TOL, "additional_forward_args": (scale,)}
    with torch.no_grad():
        l2 = min_pgd_epsilon(model, x, norm="L2", **kwargs)
        linf = min_pgd_epsilon(model, x, norm="Linf", **kwargs)
        fgsm = min_fgsm_epsilon(model, x, norm="Linf", loss="targeted", **kwargs)
        df = deepfool(model, x, additional_forward_args=scale, overshoot=1e-4)
    # A positive per-example scale does not move the decision boundary.
    for res, dual in ((l2, 2.0), (linf, 1.0), (fgsm, 1.0)):
        exact = _closed_form(model.lin, x, dual)
        assert (res.epsilon <= exact + TOL + SLACK).all()
        assert (res.epsilon >= exact - SLACK).all()
    assert torch.allclose(df.epsilon, _closed_form(model.lin, x, 2.0), rtol=1e-3, atol=1e-3)


def test_one_dimensional_inputs_and_float64():
    class Threshold(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.stack([x, 1.0 - x], dim=1)  # flips at x = 0.5

    x = torch.tensor([0.1, 0.3, 0.45, 0.9], dtype=torch.float64)
    exact = (x - 0.5).abs()
    model = Threshold().eval()
    for norm in ("L2", "Linf"):
        res = min_pgd_epsilon(model, x, norm=norm, eps_max=1.0, tol=TOL)
        assert res.epsilon.dtype == torch.float64 and res.adversarial.shape == x.shape
        assert (res.epsilon >= exact).all() and (res.epsilon <= exact + TOL).all()
    df = deepfool(model, x, overshoot=0.0)
    assert torch.allclose(df.epsilon, exact, atol=1e-3)


def test_to_records_and_progress(binary, capsys):
    model, x = binary
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


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "fn", [min_pgd_epsilon, min_fgsm_epsilon, None], ids=["pgd", "fgsm", "deepfool"]
)
def test_error_paths(binary, fn):
    model, x = binary

    def call(model=model, inputs=x, labels=None, **kwargs):
        if fn is None:
            kwargs.pop("eps_max", None)
            return deepfool(model, inputs, labels, **kwargs)
        kwargs.setdefault("eps_max", 1.0)
        return fn(model, inputs, labels, **kwargs)

    with pytest.raises(ValueError, match="model.eval"):
        call(model=_linear(6, 2, seed=1).train())
    with pytest.raises(ValueError, match="floating-point"):
        call(inputs=x.to(torch.int64))
    bad = x.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        call(inputs=bad)
    with pytest.raises(ValueError, match=r"labels must have shape \(10,\)"):
        call(labels=torch.zeros(10, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="labels must lie in"):
        call(labels=torch.full((10,), 2))
    with pytest.raises(ValueError, match="integer class indices"):
        call(labels=torch.zeros(10))
    with pytest.raises(ValueError, match="norm must be"):
        call(norm="L1")
    if fn is not None:
        with pytest.raises(ValueError, match="loss must be one of"):
            call(loss="hinge")
    with pytest.raises(ValueError, match="does not broadcast"):
        call(lower_bound=torch.zeros(7))
    with pytest.raises(ValueError, match="outside"):
        call(lower_bound=0.0)
    with pytest.raises(ValueError, match="lower_bound exceeds"):
        call(lower_bound=10.0, upper_bound=-10.0)
    if fn is not None:
        for eps_max in (0.0, -1.0, float("inf")):
            with pytest.raises(ValueError, match="eps_max"):
                call(eps_max=eps_max)
        with pytest.raises(ValueError, match="tol"):
            call(tol=0.0)
    else:
        with pytest.raises(ValueError, match="max_iter"):
            call(max_iter=0)
        with pytest.raises(ValueError, match="overshoot"):
            call(overshoot=-0.1)


def test_pgd_specific_errors(binary):
    model, x = binary
    with pytest.raises(ValueError, match="steps"):
        min_pgd_epsilon(model, x, eps_max=1.0, steps=0)
    with pytest.raises(ValueError, match="step_fraction"):
        min_pgd_epsilon(model, x, eps_max=1.0, step_fraction=-0.1)
    with pytest.raises(ValueError, match="seed"):
        min_pgd_epsilon(model, x, eps_max=1.0, random_start=True, seed="a")

    def bad_model(inp: torch.Tensor) -> torch.Tensor:
        return inp.sum(dim=1)

    with pytest.raises(ValueError, match=r"\(batch, classes\)"):
        min_pgd_epsilon(bad_model, x, eps_max=1.0)
