"""Cross-checks against foolbox's attacks (skipped, with the reason, when foolbox is absent).

On a small float64 tanh MLP over the box [0, 1]^8:

- FGSM / the fast gradient method are the same algorithm in foolbox, which runs them at a
  grid of radii: our bisected radius must lie in the grid cell where foolbox first flips;
- DeepFool is the same algorithm up to where the 1e-4 push is added (to the distance in
  foolbox, to the logit gap here), which can cost one more linearised step on an example;
- the minimal radii of our targeted PGD are compared with foolbox's minimum-norm attacks
  (FMN for L-inf, Carlini-Wagner for L2). Both bound the true minimum from above and neither
  is exact on a nonlinear model (a fixed step budget per radius here, a finite schedule
  there), so ours may not exceed theirs by more than 2%, and the two must agree within 1% on
  most examples.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from captum_simec.audit.attacks import deepfool, min_fgsm_epsilon, min_pgd_epsilon

fb = pytest.importorskip(
    "foolbox", reason="foolbox is not installed (pip install foolbox) for the cross-checks"
)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

BOX = {"lower_bound": 0.0, "upper_bound": 1.0}


@pytest.fixture(scope="module")
def problem() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 4)).double().eval()
    x = torch.rand(12, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        model[0].weight.mul_(2.0)  # steeper: a clearly nonlinear model
        labels = model(x).argmax(dim=1)
    assert len(labels.unique()) >= 3  # the examples sit in three classes
    return model, x, labels


def _size(delta: torch.Tensor, norm: str) -> torch.Tensor:
    return delta.norm(dim=1) if norm == "L2" else delta.abs().amax(dim=1)


@pytest.mark.parametrize("norm", ["Linf", "L2"])
def test_fgsm_radius_lies_in_foolbox_first_flipping_grid_cell(problem, norm):
    model, x, labels = problem
    attack = (
        fb.attacks.LinfFastGradientAttack() if norm == "Linf" else fb.attacks.L2FastGradientAttack()
    )
    eps_max, tol = (1.0, 1e-5) if norm == "Linf" else (2.0, 1e-5)
    grid = torch.linspace(0.0, eps_max, 201, dtype=torch.float64)[1:]
    fmodel = fb.PyTorchModel(model, bounds=(0.0, 1.0))
    _, _, success = attack(fmodel, x, labels, epsilons=grid.tolist())
    ours = min_fgsm_epsilon(model, x, norm=norm, eps_max=eps_max, tol=tol, **BOX)
    found = success.any(dim=0)
    assert found.any() and torch.equal(found, ours.flipped)
    first = grid[success.long().argmax(dim=0)][found]  # the first flipping radius
    step = float(grid[0])
    assert (ours.epsilon[found] > first - step - 1e-9).all()
    assert (ours.epsilon[found] <= first + tol + 1e-9).all()


@pytest.mark.parametrize("norm", ["L2", "Linf"])
def test_deepfool_agrees_with_foolbox(problem, norm):
    model, x, labels = problem
    kind = fb.attacks.L2DeepFoolAttack if norm == "L2" else fb.attacks.LinfDeepFoolAttack
    theirs = kind(steps=50, candidates=10, overshoot=0.02).run(
        fb.PyTorchModel(model, bounds=(0.0, 1.0)), x, labels
    )
    ours = deepfool(model, x, norm=norm, **BOX)
    with torch.no_grad():
        assert (model(theirs).argmax(dim=1) != labels).all()
    assert ours.flipped.all()
    # the two place the 1e-4 push differently (in logit or in input units)
    torch.testing.assert_close(ours.epsilon, _size(theirs - x, norm), rtol=0.0, atol=2e-4)


def _assert_same_minimal_radius(model, x, labels, norm, theirs):
    """Ours never above foolbox's minimum-norm result, and equal to it on most examples."""
    eps_max = 1.0 if norm == "Linf" else 2.0
    ours = min_pgd_epsilon(
        model, x, norm=norm, eps_max=eps_max, steps=40, tol=1e-4, loss="targeted", **BOX
    )
    assert ours.flipped.all()
    with torch.no_grad():
        flipped = model(theirs).argmax(dim=1) != labels  # some land on a tie: not a flip
    assert flipped.float().mean() >= 0.5
    ratio = ours.epsilon[flipped] / _size(theirs - x, norm)[flipped]
    assert (ratio <= 1.02).all(), ratio
    assert float(((ratio - 1).abs() <= 1e-2).float().mean()) >= 0.5, ratio


def test_minimal_linf_radius_agrees_with_foolbox_fmn(problem):
    model, x, labels = problem
    theirs = fb.attacks.LInfFMNAttack(steps=100).run(
        fb.PyTorchModel(model, bounds=(0.0, 1.0)), x, labels
    )
    _assert_same_minimal_radius(model, x, labels, "Linf", theirs)


@pytest.mark.slow
def test_minimal_l2_radius_agrees_with_foolbox_carlini_wagner(problem):
    model, x, labels = problem
    attack = fb.attacks.L2CarliniWagnerAttack(steps=200, binary_search_steps=8, stepsize=0.02)
    theirs = attack.run(fb.PyTorchModel(model, bounds=(0.0, 1.0)), x, labels)
    _assert_same_minimal_radius(model, x, labels, "L2", theirs)
