"""Walk records against a recomputation from the saved points (every point is saved)."""

import torch

from captum_simec.explore import Box, simexp
from captum_simec.geometry import pullback_spectrum
from tests.explore.helpers import tanh_mlp


def test_records_match_the_spectra_and_steps_recomputed_from_the_points():
    model = tanh_mlp(n=6, m=3, seed=4)
    x = torch.rand(3, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    walk = simexp(model, x, steps=25, step_size=0.05, seed=1, domain=Box(0.0, 1.0))
    points = walk.points_flat  # (26, 3, 6)
    assert walk.saved_steps.tolist() == list(range(26))
    pseudolength = torch.zeros(3, dtype=torch.float64)
    energy = torch.zeros(3, dtype=torch.float64)
    for k in range(26):
        spectrum = pullback_spectrum(model, points[k])
        assert torch.equal(walk.rank[k], spectrum.rank)
        assert torch.allclose(walk.smallest_retained[k], spectrum.smallest_retained)
        assert torch.allclose(walk.largest_discarded[k], spectrum.largest_discarded)
        assert torch.allclose(walk.drift[k], (model(points[k]) - model(x)).norm(dim=1))
        if k < 25:
            increment = (spectrum.factor @ (points[k + 1] - points[k]).unsqueeze(2)).norm(dim=1)
            pseudolength += increment[:, 0]
            energy += increment[:, 0].square() / 0.05
    assert torch.allclose(walk.pseudolength, pseudolength)
    assert torch.allclose(walk.energy, energy)
    assert torch.allclose(walk.path_length, points.diff(dim=0).norm(dim=2).sum(dim=0))
    assert torch.allclose(walk.max_abs_flat, (points - x).abs().amax(dim=0))


def test_an_example_that_stops_early_has_nan_records_after_its_stop():
    model = tanh_mlp(n=6, m=3, seed=4)
    x = torch.rand(2, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    walk = simexp(model, x, steps=40, step_size=0.05, seed=1, max_output_change=0.05)
    first = int(walk.stopped_at.argmin())
    stop = int(walk.stopped_at[first])
    assert walk.stop_reason[first] == "max_output_change" and stop < 40
    for trace in (walk.drift, walk.smallest_retained, walk.largest_discarded):
        assert trace[stop + 1 :, first].isnan().all() and not trace[: stop + 1, first].isnan().any()
    assert (walk.rank[stop + 1 :, first] == -1).all()
