"""Preimage of an output interval for a scalar regressor."""

import pytest
import torch

from captum_simec.explore import Box, Preimage, preimage


def _plane(x):
    return (x[:, 0] + x[:, 1]).unsqueeze(1)


def test_preimage_points_lie_in_the_interval_on_several_levels():
    starts = torch.tensor([[0.3, 0.3], [0.1, 0.9]], dtype=torch.float64)
    result = preimage(
        _plane,
        starts,
        0.8,
        1.2,
        sweeps=3,
        simec_steps=40,
        step_size=0.02,
        hop_size=0.05,
        domain=Box(0.0, 1.0),
        seed=0,
    )
    assert isinstance(result, Preimage)
    assert len(result.outputs) > 0
    assert ((result.outputs >= 0.8) & (result.outputs <= 1.2)).all()
    assert torch.allclose(_plane(result.points)[:, 0], result.outputs)
    assert len(result.level_index.unique()) == 3
    assert torch.allclose(
        result.level_values, torch.tensor([0.8 + 0.4 / 6, 1.0, 1.2 - 0.4 / 6], dtype=torch.float64)
    )
    # each point sits on its level, and inside the box
    assert (result.outputs - result.levels).abs().max() < 1e-3 * 0.4 / 3 + 1e-12
    assert result.points.min() >= 0.0 and result.points.max() <= 1.0
    assert set(result.example.tolist()) == {0, 1}
    on_middle = result.at_level(1)
    assert torch.allclose(
        _plane(on_middle)[:, 0], torch.ones(len(on_middle), dtype=torch.float64), atol=1e-3
    )
    assert all(h.stop_reason == ["level_reached"] * 2 for h in result.hops)


def test_preimage_needs_a_scalar_regressor_and_an_interval():
    x = torch.rand(2, 3)
    with pytest.raises(ValueError, match="scalar-output"):
        preimage(lambda z: z, x, 0.0, 1.0)
    with pytest.raises(ValueError, match="below `high`"):
        preimage(lambda z: z.sum(1), x, 1.0, 1.0)
    with pytest.raises(ValueError, match="sweeps"):
        preimage(lambda z: z.sum(1), x, 0.0, 1.0, sweeps=0)
