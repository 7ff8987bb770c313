"""`jacobian_method="auto"`: times the two general paths once per model and signature."""

import gc
import sys
import warnings

import pytest
import torch
from torch import nn

from captum_simec.geometry import _calibration, jacobian

JACOBIAN = sys.modules["captum_simec.geometry.jacobian"]


class FakeClock:
    """A process clock that advances only by what the fake paths declare they cost."""

    def __init__(self):
        self.now = 0.0

    def process_time(self):
        return self.now


def fake_run(clock, costs, calls):
    def run(path):
        calls.append(path)
        if costs[path] is None:
            warnings.warn("slow fallback", stacklevel=2)
        clock.now += costs[path]
        return f"factor by {path}"

    return run


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(_calibration, "time", fake)
    return fake


def test_the_faster_path_is_chosen_and_cached(clock):
    owner, calls = nn.Linear(2, 2), []
    run = fake_run(clock, {"replicate": 0.003, "batched_grad": 0.002}, calls)
    assert _calibration.cached_path(owner, ("sig",)) == "auto"
    best, result = _calibration.calibrate(run, owner, ("sig",), fallback=None)
    assert (best, result) == ("batched_grad", "factor by batched_grad")
    assert calls.count("replicate") == calls.count("batched_grad") == 4  # warm-up + 3 turns
    assert calls[2:] == ["replicate", "batched_grad"] * 3  # the timed runs take turns
    assert _calibration.cached_path(owner, ("sig",)) == "batched_grad"
    assert _calibration.cached_path(owner, ("other",)) == "auto"
    gc.collect()  # models of earlier tests that are already unreachable leave the cache first
    cached = len(_calibration._CHOICES)
    del owner
    gc.collect()
    assert len(_calibration._CHOICES) == cached - 1  # the cache goes with the model


def test_a_path_that_warns_is_left_out_and_expensive_models_time_only_the_warm_up(clock):
    owner, calls = nn.Linear(2, 2), []
    run = fake_run(clock, {"replicate": 0.5, "batched_grad": None}, calls)
    best, _ = _calibration.calibrate(run, owner, ("sig",), fallback=None)
    assert best == "replicate" and calls == ["replicate", "batched_grad"]
    # the fake clock advances by the stated durations: exact, not a wall-clock measurement
    timed = _calibration.time_paths(fake_run(clock, {"a": 0.3, "b": 0.4}, []), "ab", 3, 0.25)
    assert {path: seconds for path, (seconds, _) in timed.items()} == pytest.approx(
        {"a": 0.3, "b": 0.4}
    )


def test_auto_calibrates_on_the_first_call_only(monkeypatch):
    model = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 4)).double().eval()
    x = torch.randn(3, 6, dtype=torch.float64)
    first = jacobian(model, (x,))
    assert first.method in _calibration.CALIBRATED

    def calibrate(*args, **kwargs):
        raise RuntimeError("calibrated again")

    monkeypatch.setattr(JACOBIAN, "calibrate", calibrate)
    again = jacobian(model, (x,))
    assert again.method == first.method
    assert torch.allclose(again.factor, first.factor, atol=1e-14)
    # the batch size counts by powers of two: 3 and 4 share the choice, 5 does not
    assert jacobian(model, (torch.randn(4, 6, dtype=torch.float64),)).method == first.method
    with pytest.raises(RuntimeError, match="calibrated again"):
        jacobian(model, (torch.randn(5, 6, dtype=torch.float64),))
    explicit = jacobian(model, (x,), method="replicate")  # an explicit path never calibrates
    assert explicit.method == "replicate"
    assert torch.allclose(explicit.factor, first.factor, atol=1e-14)
