"""Randomised estimators for many outputs, against exact oracles (linear maps, full factors)."""

from __future__ import annotations

import time
import warnings

import pytest
import torch
from captum.attr import Saliency
from torch import nn

from captum_simec.explore import simec
from captum_simec.geometry import (
    hutchinson_relevance,
    pullback_spectrum,
    randomized_range,
)
from tests.geometry.models import TinyCNN


def _linear(values: torch.Tensor, n: int, seed: int = 0) -> nn.Linear:
    """float64 `nn.Linear(n, p)`, p = len(values), with singular values `values[:min(p, n)]`."""
    generator = torch.Generator().manual_seed(seed)
    p = values.numel()
    r = min(p, n)
    left, _ = torch.linalg.qr(torch.randn(p, r, generator=generator, dtype=torch.float64))
    right, _ = torch.linalg.qr(torch.randn(n, r, generator=generator, dtype=torch.float64))
    layer = nn.Linear(n, p, bias=False).double().eval()
    layer.weight.data = left @ torch.diag(values[:r].double()) @ right.T
    return layer


def _relative_error(estimate: torch.Tensor, exact: torch.Tensor) -> torch.Tensor:
    return ((estimate - exact).abs() / exact).flatten()


def test_probes_are_unbiased_and_their_standard_errors_calibrated():
    layer = _linear(torch.linspace(1.0, 0.5, 40), 30)
    x = torch.randn(3, 30, dtype=torch.float64)
    exact = layer.weight.norm(dim=0).expand(3, 30)  # column norms of W: ||A e_i||
    estimate = hutchinson_relevance(layer, x, probes=400, seed=0)
    z = (estimate.relevance - exact) / estimate.standard_error
    assert z.abs().max() < 4.5  # 90 features, standard normal scores
    assert 0.7 < z.std() < 1.3
    median = _relative_error(estimate.relevance, exact).median()
    assert median < 2 * 0.6745 / (2 * 400) ** 0.5  # theory: 0.6745 / sqrt(2 probes)
    assert estimate.vjps == 400 and estimate.jvps == 0 and (estimate.exact_share == 0).all()


def test_a_full_deflation_basis_is_exact_and_a_partial_one_cuts_the_error():
    values = torch.logspace(0, -8, 40)  # fast decay: 8 directions carry almost everything
    layer = _linear(values, 30, seed=1)
    x = torch.randn(2, 30, dtype=torch.float64)
    exact = layer.weight.norm(dim=0).expand(2, 30)
    full = hutchinson_relevance(layer, x, probes=16, rank=40, seed=0)
    assert torch.allclose(full.relevance, exact, rtol=1e-10) and full.probes == 0
    plain = hutchinson_relevance(layer, x, probes=32, seed=0)
    deflated = hutchinson_relevance(layer, x, probes=16, rank=8, power_iterations=1, seed=0)
    assert (deflated.exact_share > 0.99).all() and deflated.vjps == 32
    plain_error = _relative_error(plain.relevance, exact).median()
    deflated_error = _relative_error(deflated.relevance, exact).median()
    assert deflated_error < 0.05 * plain_error  # same 32 VJPs (+16 JVPs), far less variance


def test_deflation_through_a_cnn_uses_double_backward_jvps():
    torch.manual_seed(0)
    model = TinyCNN(m=6).double().eval()
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    exact = pullback_spectrum(model, x).relevance()
    full = hutchinson_relevance(model, x, probes=4, rank=6, power_iterations=1, seed=0)
    assert torch.allclose(full.relevance.flatten(1), exact, rtol=1e-9, atol=1e-12)
    assert full.relevance.shape == x.shape and full.jvps == 12 and full.vjps == 12


def test_target_metric_relevance_is_saliency_and_tuple_inputs_keep_their_structure():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(7, 16), nn.Tanh(), nn.Linear(16, 5)).double().eval()
    x = torch.randn(4, 7, dtype=torch.float64)
    target = torch.tensor([0, 1, 2, 3])
    estimate = hutchinson_relevance(model, x, output_metric="target", target=target, rank=1)
    saliency = Saliency(model).attribute(x, target=target)
    assert torch.allclose(estimate.relevance, saliency, rtol=1e-10)

    def two_inputs(a, b):
        return model(torch.cat([a, b], dim=1))

    parts = (x[:, :3], x[:, 3:])
    tupled = hutchinson_relevance(two_inputs, parts, probes=8, seed=3)
    assert isinstance(tupled.relevance, tuple)
    assert [t.shape for t in tupled.relevance] == [(4, 3), (4, 4)]
    flat = hutchinson_relevance(model, x, probes=8, seed=3)
    assert torch.allclose(torch.cat(tupled.relevance, dim=1), flat.relevance)


def test_randomized_range_finds_the_leading_directions():
    values = torch.cat([torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0]), torch.full((35,), 1e-3)])
    layer = _linear(values, 60, seed=2)
    x = torch.randn(2, 60, dtype=torch.float64)
    exact = pullback_spectrum(layer, x)
    lead = randomized_range(layer, x, k=5, oversample=5, power_iterations=1, seed=0)
    assert lead.singular_values.shape == (2, 5) and lead.right_vectors.shape == (2, 60, 5)
    assert torch.allclose(lead.singular_values, exact.singular_values[:, :5], rtol=1e-5)
    cosine = (lead.right_vectors * exact.right_vectors[:, :, :5]).sum(dim=1).abs()
    assert (cosine > 1 - 1e-6).all()
    assert lead.directions(0).shape == (2, 60)
    assert lead.vjps == 20 and lead.jvps == 20  # 10 columns, one power iteration


def test_estimates_are_reproducible_and_follow_the_seed():
    layer = _linear(torch.linspace(1.0, 0.1, 20), 12)
    x = torch.randn(2, 12, dtype=torch.float64)
    first = hutchinson_relevance(layer, x, probes=8, rank=2, seed=5).relevance
    again = hutchinson_relevance(layer, x, probes=8, rank=2, seed=5).relevance
    other = hutchinson_relevance(layer, x, probes=8, rank=2, seed=6).relevance
    generated = hutchinson_relevance(
        layer, x, probes=8, rank=2, generator=torch.Generator().manual_seed(5)
    ).relevance
    assert torch.equal(first, again) and torch.equal(first, generated)
    assert not torch.equal(first, other)


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"probes": -1}, ValueError, "`probes` must be >= 0"),
        ({"probes": 2.5}, TypeError, "`probes` must be an int"),
        ({"probes": 0}, ValueError, "Pass `probes` > 0 or `rank` > 0"),
        ({"seed": 1, "generator": torch.Generator()}, ValueError, "not both"),
    ],
)
def test_bad_arguments_are_refused(kwargs, error, match):
    layer = _linear(torch.ones(3), 4)
    with pytest.raises(error, match=match):
        hutchinson_relevance(layer, torch.randn(1, 4, dtype=torch.float64), **kwargs)


def test_a_model_in_training_mode_is_refused_before_any_work():
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 3)).train()
    with pytest.raises(ValueError, match="call model.eval"):
        hutchinson_relevance(model, torch.randn(2, 4), rank=2)


def test_randomized_range_refuses_k_0():
    layer = _linear(torch.ones(3), 4)
    with pytest.raises(ValueError, match="`k` must be >= 1"):
        randomized_range(layer, torch.randn(1, 4, dtype=torch.float64), k=0)


class _SlowWideModel(nn.Module):
    """300 outputs and a forward that takes 20 ms: 300 VJPs would take about 18 s."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(8, 300)

    def forward(self, x):
        time.sleep(0.02)
        return self.layer(x)


def test_many_rows_on_a_slow_model_warn_before_the_work_and_name_the_alternatives():
    model = _SlowWideModel().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # stop at the warning: nothing else is computed
        with pytest.raises(UserWarning, match="300 vector-Jacobian products") as caught:
            pullback_spectrum(model, torch.randn(1, 8))
    for alternative in ("target", "topk", "hutchinson_relevance", "randomized_range"):
        assert alternative in str(caught.value)


def test_a_huge_factor_warns_and_small_or_fast_cases_do_not():
    def wide(x):  # 300 outputs of 900,000 inputs: a 1.08 GB factor, a fast forward
        return 2 * x[:, :300]

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(UserWarning, match="1030 MiB per example"):
            pullback_spectrum(wide, torch.randn(1, 900_000))
        model = nn.Sequential(nn.Linear(20, 1000)).eval()  # 1000 rows, milliseconds
        pullback_spectrum(model, torch.randn(2, 20))
        hutchinson_relevance(_SlowWideModel().eval(), torch.randn(1, 8), probes=64)


def test_a_walk_warns_once_not_at_every_step():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")  # Python's own filter: once per place and text
        simec(_SlowWideModel().eval(), torch.randn(1, 8), steps=3, step_size=0.01, seed=0,
              progress=False)  # fmt: skip
    costly = [w for w in caught if "vector-Jacobian products" in str(w.message)]
    assert len(costly) == 1
