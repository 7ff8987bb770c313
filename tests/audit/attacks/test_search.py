"""The per-example bisection shared by FGSM and PGD: its settings, targets and batching."""

from __future__ import annotations

import inspect

import pytest
import torch

from captum_simec.audit.attacks import (
    SearchSettings,
    deepfool,
    min_fgsm_epsilon,
    min_pgd_epsilon,
)

from .helpers import TOL, assert_finds_exact, closed_form, linear, mlp


@pytest.mark.parametrize("fn", [min_fgsm_epsilon, min_pgd_epsilon], ids=["fgsm", "pgd"])
def test_signatures_take_their_defaults_from_the_settings(fn):
    parameters = inspect.signature(fn).parameters
    for name in ("norm", "tol", "max_halvings", "loss"):
        assert parameters[name].default == getattr(SearchSettings, name), name
    assert parameters["eps_max"].default is inspect.Parameter.empty


def test_settings_normalise_and_validate():
    settings = SearchSettings(eps_max=2, norm="linf", loss="Margin")
    assert (settings.eps_max, settings.norm, settings.loss) == (2.0, "Linf", "margin")
    assert settings.rounds == 11  # ceil(log2(2 / 1e-3))
    assert SearchSettings(eps_max=1.0, tol=0.5, max_halvings=30).rounds == 1
    assert SearchSettings(eps_max=1.0, tol=1e-9, max_halvings=4).rounds == 4
    with pytest.raises(TypeError, match="`eps_max`"):
        SearchSettings(eps_max="1")
    with pytest.raises(TypeError, match="`max_halvings`"):
        SearchSettings(eps_max=1.0, max_halvings=2.0)
    with pytest.raises(ValueError, match="`norm` must be one of"):
        SearchSettings(eps_max=1.0, norm="L1")


@pytest.mark.parametrize("norm, dual", [("L2", 2.0), ("Linf", 1.0)])
@pytest.mark.parametrize("fn", [min_pgd_epsilon, min_fgsm_epsilon], ids=["pgd", "fgsm"])
def test_targeted_loss_exact_on_three_class_linear(norm, dual, fn):
    # Unscaled weights: the cross-entropy direction is not the nearest boundary's, but the
    # per-class targeted sweep reaches the exact minimum on every example.
    model = linear(5, 3, seed=5)
    x = torch.randn(12, 5, generator=torch.Generator().manual_seed(6))
    exact = closed_form(model, x, dual)
    res = fn(model, x, norm=norm, eps_max=5.0, tol=TOL, loss="targeted")
    assert_finds_exact(res, exact)
    measured = res.perturbation_l2 if norm == "L2" else res.perturbation_linf
    assert (measured <= res.epsilon + 1e-5).all()


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
    model = mlp()
    x = torch.randn(6, 4, generator=torch.Generator().manual_seed(8))
    batch = attack(model, x)
    singles = [attack(model, x[i : i + 1]) for i in range(6)]
    torch.testing.assert_close(batch.epsilon, torch.cat([s.epsilon for s in singles]))
    torch.testing.assert_close(batch.new_class, torch.cat([s.new_class for s in singles]))
    torch.testing.assert_close(batch.adversarial, torch.cat([s.adversarial for s in singles]))
