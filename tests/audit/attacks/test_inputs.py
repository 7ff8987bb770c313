"""What every attack checks and respects: inputs, labels, bounds, the user's tensors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from captum_simec.audit.attacks import deepfool, min_fgsm_epsilon, min_pgd_epsilon

from .helpers import SLACK, TOL, binary_problem, closed_form, linear, mlp


@pytest.mark.parametrize("attack", ["pgd-L2", "pgd-Linf", "fgsm-Linf", "fgsm-L2", "deepfool"])
def test_box_constraints_respected(attack):
    model = mlp()
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


def test_user_tensors_untouched():
    model, x = binary_problem()
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
            self.lin = linear(3, 2, seed=12)

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
        exact = closed_form(model.lin, x, dual)
        assert (res.epsilon <= exact + TOL + SLACK).all()
        assert (res.epsilon >= exact - SLACK).all()
    assert torch.allclose(df.epsilon, closed_form(model.lin, x, 2.0), rtol=1e-3, atol=1e-3)


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


@pytest.mark.parametrize(
    "fn", [min_pgd_epsilon, min_fgsm_epsilon, None], ids=["pgd", "fgsm", "deepfool"]
)
def test_error_paths(fn):
    model, x = binary_problem()

    def call(model=model, inputs=x, labels=None, **kwargs):
        if fn is None:
            kwargs.pop("eps_max", None)
            return deepfool(model, inputs, labels, **kwargs)
        kwargs.setdefault("eps_max", 1.0)
        return fn(model, inputs, labels, **kwargs)

    def raises(error, match, **kwargs):
        with pytest.raises(error, match=match):
            call(**kwargs)

    raises(ValueError, "model.eval", model=linear(6, 2, seed=1).train())
    raises(TypeError, "`model` must be a torch.nn.Module or another callable", model=3)
    raises(TypeError, r"floating point.*\.float\(\)", inputs=x.to(torch.int64))
    raises(TypeError, "`inputs` must be a tensor, got tuple", inputs=(x,))
    raises(ValueError, "empty batch", inputs=x[:0])
    bad = x.clone()
    bad[0, 0] = float("nan")
    raises(ValueError, "NaN", inputs=bad)
    raises(ValueError, r"`labels` has shape \(10, 1\)", labels=torch.zeros(10, 1, dtype=torch.long))
    raises(ValueError, "`labels` must lie in", labels=torch.full((10,), 2))
    raises(TypeError, "integer class indices", labels=torch.zeros(10))
    raises(ValueError, "`norm` must be one of", norm="L1")
    raises(ValueError, "does not broadcast", lower_bound=torch.zeros(7))
    raises(TypeError, "`upper_bound` must be None, a number or a tensor", upper_bound="1")
    raises(ValueError, "outside", lower_bound=0.0)
    raises(ValueError, "`lower_bound` exceeds", lower_bound=10.0, upper_bound=-10.0)
    if fn is not None:
        raises(ValueError, "`loss` must be one of", loss="hinge")
        for eps_max in (0.0, -1.0, float("inf")):
            raises(ValueError, "`eps_max`", eps_max=eps_max)
        raises(TypeError, "`eps_max`", eps_max="1")
        raises(ValueError, "`tol`", tol=0.0)


@pytest.mark.parametrize("output", ["sum", "nan"])
def test_model_outputs_that_are_not_logits(output):
    model, x = binary_problem()

    def bad_model(inp: torch.Tensor) -> torch.Tensor:
        if output == "sum":
            return inp.sum(dim=1)
        return model(inp) * float("nan")

    match = r"\(batch, classes\)" if output == "sum" else "NaN or inf scores"
    for fn in (min_pgd_epsilon, min_fgsm_epsilon):
        with pytest.raises(ValueError, match=match):
            fn(bad_model, x, eps_max=1.0)
    with pytest.raises(ValueError, match=match):
        deepfool(bad_model, x)
