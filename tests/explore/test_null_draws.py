"""A SiMEC draw that lies almost in the range space is drawn again, seeded (issue 8, §5)."""

import torch

from captum_simec.explore import _directions, simec


def _range_draw_first(monkeypatch, direction: torch.Tensor) -> list[int]:
    """Makes the walk's first draw `direction` (in the range space); later draws are real."""
    real = _directions.NullPolicy.noise
    calls: list[int] = []

    def noise(self, rng, rows, spectrum, context):
        calls.append(rows.numel())
        drawn = real(self, rng, rows, spectrum, context)
        return direction.expand_as(drawn).clone() if len(calls) == 1 else drawn

    monkeypatch.setattr(_directions.NullPolicy, "noise", noise)
    return calls


def test_a_range_space_draw_is_redrawn_and_the_walk_stays_on_the_class(monkeypatch):
    weights = torch.randn(1, 3, generator=torch.Generator().manual_seed(5))
    model = torch.nn.Linear(3, 1, bias=False).eval()
    model.weight.data = weights
    x = torch.randn(1, 3, generator=torch.Generator().manual_seed(6))
    walks = []
    for _ in range(2):
        calls = _range_draw_first(monkeypatch, weights / weights.norm())
        walks.append(simec(model, x, steps=1, step_size=0.1, seed=0, progress=False))
        assert calls == [1, 1]  # the first draw was refused and drawn again
    walk = walks[0]
    assert walk.stop_reason == ["steps"] and walk.path_length.item() > 0.099
    assert walk.max_drift.item() < 1e-6  # a full-length step off the class gives ~0.1 |w|
    assert torch.equal(walks[1].points_flat, walk.points_flat)  # seeded: reproducible


def test_a_draw_parallel_to_the_weights_happens_by_chance():
    """With seed 0 the first draw of example 0 is torch.manual_seed(0)'s first randn: a
    model initialised from it has its weights exactly along that draw."""
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1, bias=False).eval()
    model.weight.data = torch.randn(1, 3)
    x = torch.randn(1, 3, generator=torch.Generator().manual_seed(6))
    walk = simec(model, x, steps=3, step_size=0.1, seed=0, progress=False)
    assert walk.max_drift.item() < 1e-6 and walk.path_length.item() > 0.299
