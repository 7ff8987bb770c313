"""The default rank tolerance follows the error of the computed factor, not the input size.

Oracles: linear maps with prescribed singular values (the Jacobian is the weight matrix),
float64 recomputation of float32 factors, and models whose output is mathematically constant.
"""

from __future__ import annotations

import copy
import math
import warnings

import pytest
import torch
from torch import nn

from captum_simec.geometry import PullbackSpectrum, factorise, pullback_spectrum
from captum_simec.geometry.tolerance import RANK_SAFETY, default_rtol
from tests.geometry.models import model_zoo

LOG_SPACED = torch.logspace(0, -3, 10, dtype=torch.float64)  # 10 values from 1 down to 1e-3


def _captum_convnet() -> torch.nn.Module:
    """Captum's BasicModel_ConvNet (captum.testing ships with captum >= 0.9)."""
    basic_models = pytest.importorskip(
        "captum.testing.helpers.basic_models", reason="Captum's test models ship with captum >= 0.9"
    )
    return basic_models.BasicModel_ConvNet().eval()


def _linear_with_spectrum(values: torch.Tensor, n: int, dtype: torch.dtype, seed: int = 0):
    """`nn.Linear(n, p)` (no bias) whose weight is `U diag(values) V^T`, and its float64 W."""
    generator = torch.Generator().manual_seed(seed)
    p = values.numel()
    left, _ = torch.linalg.qr(torch.randn(p, p, generator=generator, dtype=torch.float64))
    right, _ = torch.linalg.qr(torch.randn(n, p, generator=generator, dtype=torch.float64))
    weight = left @ torch.diag(values) @ right.T
    layer = nn.Linear(n, p, bias=False).eval()
    layer.weight.data = weight.to(dtype)
    return layer.to(dtype), weight


def test_rank_and_tolerance_do_not_depend_on_the_input_size():
    factor = torch.diag(LOG_SPACED).unsqueeze(0).float()  # p = n = 10
    small = PullbackSpectrum.from_factor(factor, input_shapes=(torch.Size([10]),), outputs=None,
                                         is_inputs_tuple=False)  # fmt: skip
    padded = torch.nn.functional.pad(factor, (0, 150_528 - 10))  # the same map at n = 150,528
    _, _, rank, tolerance = factorise(padded)
    assert small.rank.item() == rank.item() == 10
    assert torch.equal(small.tolerance, tolerance)
    assert default_rtol(10, torch.float32) == RANK_SAFETY * math.sqrt(10) * 2.0**-23


def test_float32_resolves_ten_directions_at_imagenet_size():
    """10 outputs on 3 x 224 x 224 inputs, singular values from 1 down to 1e-3: rank 10."""
    layer, weight = _linear_with_spectrum(LOG_SPACED, 150_528, torch.float32)
    x = torch.randn(1, 3, 224, 224)
    spectrum = pullback_spectrum(lambda z: layer(z.flatten(1)), x)
    assert spectrum.rank.item() == 10 and spectrum.null_dim.item() == 150_528 - 10
    exact = torch.linalg.svdvals(layer.weight.double())
    error = (spectrum.singular_values[0] - exact).abs().max()
    assert error < spectrum.tolerance.item() / RANK_SAFETY  # well inside the tolerance
    assert spectrum.rank_margin.item() > 10  # 1e-3 is far above ~4e-6: a clear decision


@pytest.mark.parametrize(
    "dtype,expected",
    [(torch.float16, 6), (torch.bfloat16, 3)],
    ids=["float16", "bfloat16"],
)
def test_half_precision_keeps_the_directions_its_dtype_resolves(dtype, expected):
    """float16 resolves about 3 % of s_max (10 outputs), bfloat16 about 25 %, at any n.

    The singular values sit clear of those tolerances (no close decision, no warning); the
    right vectors are formed in float32 and stored in the model's dtype, to its rounding.
    """
    values = {
        torch.float16: [1.0, 0.5, 0.3, 0.2, 0.15, 0.12, 1e-3, 5e-4, 2e-4, 1e-4],
        torch.bfloat16: [1.0, 0.9, 0.8, 1e-2, 5e-3, 2e-3, 1e-3, 5e-4, 2e-4, 1e-4],
    }[dtype]
    layer, _ = _linear_with_spectrum(torch.tensor(values, dtype=torch.float64), 3072, dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        spectrum = pullback_spectrum(layer, torch.randn(3, 3072).to(dtype))
    assert spectrum.rank.tolist() == [expected] * 3
    assert spectrum.right_vectors.dtype == dtype
    computed = spectrum.factor[0].double()  # the Jacobian as the model's dtype gave it
    _, _, exact_t = torch.linalg.svd(computed, full_matrices=False)
    exact = exact_t[:expected].T
    stored = spectrum.right_vectors[0, :, :expected].double()
    exact = exact * torch.sign((stored * exact).sum(dim=0))
    error = (stored - exact).abs().amax(dim=0) / exact.abs().amax(dim=0)
    assert (error <= torch.finfo(dtype).eps).all()  # rounding of float32-accurate vectors


def test_half_precision_warns_when_a_direction_is_below_its_resolution():
    values = torch.tensor([1.0, 0.5, 0.3, 0.2, 0.025, 1e-3, 5e-4, 2e-4, 1e-4, 5e-5])
    layer, _ = _linear_with_spectrum(values.double(), 3072, torch.float16)
    with pytest.warns(UserWarning, match="float16 cannot resolve every direction"):
        spectrum = pullback_spectrum(layer, torch.randn(2, 3072).half())
    assert spectrum.rank.tolist() == [4, 4]  # 0.025 is under float16's ~0.031 tolerance
    float32_layer = copy.deepcopy(layer).float()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # float32 resolves it: no warning
        assert pullback_spectrum(float32_layer, torch.randn(2, 3072)).rank.tolist() == [10, 10]


def test_float32_errors_sit_well_inside_the_default_tolerance():
    """Weyl: computed singular values move by at most ||E||; the default allows 10x the
    largest float32 error measured on the reference models (docs/method.md)."""
    zoo = model_zoo()
    torch.manual_seed(0)
    digits_like = nn.Sequential(
        nn.Flatten(), nn.Linear(784, 64), nn.Tanh(), nn.Linear(64, 10), nn.LogSoftmax(dim=1)
    ).eval()
    zoo.append(("mnist_mlp", digits_like.double(), torch.randn(4, 1, 28, 28).double()))
    for name, model, x in zoo:
        exact = pullback_spectrum(model, x)
        single = pullback_spectrum(copy.deepcopy(model).float(), x.float())
        p = exact.factor.shape[1]
        scale = math.sqrt(p) * torch.finfo(torch.float32).eps * exact.singular_values[:, :1]
        measured = (single.singular_values - exact.singular_values).abs() / scale
        assert measured.max() < RANK_SAFETY / 3, name
        assert torch.equal(single.rank, exact.rank), name


def test_captum_constant_output_convnet_has_rank_0():
    """BasicModel_ConvNet: softmax over logits with identical rows: a constant output."""
    torch.manual_seed(0)
    model = _captum_convnet()
    x = torch.randn(4, 1, 10, 10)
    spectrum = pullback_spectrum(model, x)
    assert (spectrum.singular_values[:, 0] > 0).all()  # float32 rounding noise ...
    assert spectrum.rank.tolist() == [0] * 4  # ... is no direction
    assert torch.equal(spectrum.robustness(), torch.ones(4, 100))
    assert (spectrum.rank_margin > 2).all()
    exact = pullback_spectrum(copy.deepcopy(model).double(), x.double())
    assert (exact.singular_values[:, 0] < 1e-14).all()  # float64 agrees: no real direction


def test_hand_made_constant_output_has_rank_0_and_a_tiny_real_slope_does_not():
    generator = torch.Generator().manual_seed(0)
    w = torch.randn(20, generator=generator) / 20**0.5
    b = torch.randn(5, generator=generator)
    x = torch.randn(3, 20, generator=generator)

    def constant(z):  # log-softmax of logits that differ by constants: b - logsumexp(b)
        return torch.log_softmax((z @ w).unsqueeze(1) + b, dim=1)

    def tiny_slope(z):  # 5 + 1e-3 (w . z): a real direction, 1e-3 of the output's scale
        return (5 + 1e-3 * (z @ w)).unsqueeze(1)

    noise = pullback_spectrum(constant, x)
    assert (noise.singular_values[:, 0] > 0).all() and noise.rank.tolist() == [0, 0, 0]
    real = pullback_spectrum(tiny_slope, x)
    assert real.rank.tolist() == [1, 1, 1] and (real.rank_margin > 100).all()


def test_rank_0_survives_restriction_and_an_explicit_rtol_turns_the_floor_off():
    torch.manual_seed(0)
    model = _captum_convnet()
    spectrum = pullback_spectrum(model, torch.randn(2, 1, 10, 10))
    free = torch.ones(2, 100, dtype=torch.bool)
    free[:, :50] = False
    assert spectrum.restrict(free).rank.tolist() == [0, 0]
    explicit = pullback_spectrum(model, torch.randn(2, 1, 10, 10), rtol=1e-6)
    assert explicit.rank.tolist() == [1, 1]  # the user's tolerance is applied as given


def test_spectral_gap_and_rank_margin_report_how_close_the_decision_was():
    factor = torch.zeros(2, 3, 5, dtype=torch.float64)
    factor[:, 0, 0], factor[:, 1, 1], factor[:, 2, 2] = 1.0, 1e-2, 1e-9
    spectrum = PullbackSpectrum.from_factor(
        factor, rtol=1e-6, input_shapes=(torch.Size([5]),), outputs=None, is_inputs_tuple=False
    )
    assert spectrum.rank.tolist() == [2, 2]
    assert torch.allclose(spectrum.spectral_gap, torch.full((2,), 1e7, dtype=torch.float64))
    assert torch.allclose(spectrum.rank_margin, torch.full((2,), 1e3, dtype=torch.float64))
    assert "rank 2, null dimension 3, spectral gap 1e+07, rank margin 1e+03" in spectrum.summary()
    assert "rank=[2, 2]" in repr(spectrum) and "spectral_gap=[10000000.0" in repr(spectrum)
