"""One implementation of the null/range sampling: draws in, unit directions out."""

import torch
from torch import nn

from captum_simec.geometry import pullback_spectrum


def spectrum():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 3), nn.Tanh(), nn.Linear(3, 2)).double().eval()
    return pullback_spectrum(model, torch.randn(4, 6, dtype=torch.float64))


def test_sampling_is_the_direction_of_the_generators_draws():
    spec = spectrum()
    null = spec.sample_null(torch.Generator().manual_seed(1))
    draws = torch.randn(4, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert torch.equal(null, spec.null_direction(draws))
    assert torch.allclose(null.norm(dim=1), torch.ones(4, dtype=torch.float64))
    assert spec.project_range(null).abs().max() < 1e-12  # the output ignores it
    for weighted in (False, True):
        across = spec.sample_range(torch.Generator().manual_seed(2), weighted=weighted)
        generator = torch.Generator().manual_seed(2)
        coefficients = torch.randn(4, 2, generator=generator, dtype=torch.float64)
        assert torch.equal(across, spec.range_direction(coefficients, weighted))
        assert torch.allclose(spec.project_range(across), across)


def test_weighting_scales_the_coefficients_by_the_singular_values():
    spec = spectrum()
    coefficients = torch.ones(4, 2, dtype=torch.float64)
    weighted = spec.range_direction(coefficients, weighted=True)
    scaled = spec.range_direction(coefficients * spec.singular_values, weighted=False)
    assert torch.allclose(weighted, scaled)


def test_trivial_spaces_give_zero_directions():
    model = nn.Linear(3, 3).double().eval()  # full rank: no null space
    full = pullback_spectrum(model, torch.randn(2, 3, dtype=torch.float64))
    assert torch.equal(full.null_direction(torch.randn(2, 3).double()), torch.zeros(2, 3).double())
    flat = pullback_spectrum(lambda x: 0 * x[:, :1] + x[:, :1].detach(), torch.randn(2, 3))
    assert (flat.rank == 0).all()
    assert torch.equal(flat.range_direction(torch.ones(2, 1)), torch.zeros(2, 3))
