"""Gauss-Newton corrector: drift with and without it on circles (paper II)."""

import pytest
import torch
from torch import nn

from captum_simec.explore import Corrector, simec
from captum_simec.explore.corrector import gauss_newton_step
from captum_simec.geometry import pullback_spectrum
from tests.explore.helpers import RADIUS, bowl

START = torch.tensor([[0.25, 0.25]], dtype=torch.float64)


def _radius_error(walk):
    return (walk.points_flat[:, 0].norm(dim=1) - RADIUS).abs().max().item()


def test_corrector_keeps_the_closed_form_circle():
    plain = simec(bowl, START, steps=300, step_size=0.01, seed=0)
    corrected = simec(bowl, START, steps=300, step_size=0.01, seed=0, corrector=True)
    print(
        f"\nexp(x^2+y^2-2): max drift without corrector {plain.max_drift.item():.3g}, "
        f"with {corrected.max_drift.item():.3g}; radius error {_radius_error(plain):.3g} vs "
        f"{_radius_error(corrected):.3g}; corrector updates {corrected.corrector_iterations.item()}"
    )
    assert _radius_error(corrected) < 1e-6
    assert corrected.max_drift.item() < 1e-3 * plain.max_drift.item()
    assert _radius_error(plain) > 1e-2  # the first-order walk spirals outward
    # the walk goes round the circle (circumference 2.22 < 3.0 walked)
    angles = torch.atan2(corrected.points_flat[:, 0, 1], corrected.points_flat[:, 0, 0])
    assert angles.max() - angles.min() > 6.0
    # each update costs a Jacobian, reported per example
    updates = corrected.corrector_iterations.item()
    assert updates >= 300
    assert corrected.jacobian_evaluations.item() == 301 + updates


def test_gauss_newton_step_solves_a_linear_model_in_one_update():
    weight = torch.randn(2, 5, dtype=torch.float64)
    x = torch.randn(3, 5, dtype=torch.float64)
    goal = torch.randn(3, 2, dtype=torch.float64)
    spectrum = pullback_spectrum(lambda z: z @ weight.T, x)
    moved = x + gauss_newton_step(spectrum, spectrum.outputs - goal)
    assert torch.allclose(moved @ weight.T, goal, atol=1e-12)


def test_corrector_settings_and_tolerance():
    with pytest.raises(ValueError, match="max_iterations"):
        Corrector(max_iterations=0)
    with pytest.raises(ValueError, match="tolerance"):
        Corrector(tolerance=-1.0)
    loose = simec(
        bowl,
        START,
        steps=50,
        step_size=0.01,
        seed=0,
        corrector=Corrector(max_iterations=1, tolerance=1e-6),
    )
    tight = simec(bowl, START, steps=50, step_size=0.01, seed=0, corrector=True)
    assert loose.corrector_iterations.item() < tight.corrector_iterations.item()
    assert loose.max_drift.item() < 1e-5


def _trained_sigmoid_bowl():
    """A 2-16-16-1 sigmoid MLP fitted to exp(x^2+y^2-2) on (-1, 1)^2 (seeded, LBFGS)."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(2000, 2, generator=generator, dtype=torch.float64) * 2 - 1
    y = bowl(x)
    mean, std = y.mean(), y.std()
    body = nn.Sequential(
        nn.Linear(2, 16), nn.Sigmoid(), nn.Linear(16, 16), nn.Sigmoid(), nn.Linear(16, 1)
    ).double()

    def net(z):
        return body(z) * std + mean

    optimiser = torch.optim.LBFGS(
        body.parameters(),
        max_iter=1500,
        history_size=50,
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-14,
        tolerance_change=1e-16,
    )

    def closure():
        optimiser.zero_grad()
        loss = (net(x) - y).square().mean()
        loss.backward()
        return loss

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # deterministic reductions
    try:
        optimiser.step(closure)
    finally:
        torch.set_num_threads(threads)
    body.eval()
    return net


def test_trained_sigmoid_network_class_is_the_circle_with_the_corrector():
    net = _trained_sigmoid_bowl()
    plain = simec(net, START, steps=300, step_size=0.01, seed=0)
    corrected = simec(net, START, steps=300, step_size=0.01, seed=0, corrector=True)
    relative = _radius_error(corrected) / RADIUS
    print(
        f"\ntrained sigmoid MLP: max drift without corrector {plain.max_drift.item():.3g}, "
        f"with {corrected.max_drift.item():.3g}; radius error {_radius_error(plain) / RADIUS:.2%}"
        f" vs {relative:.2%}"
    )
    assert relative < 0.05
    assert corrected.max_drift.item() < 1e-3 * plain.max_drift.item()
