"""Paper III §7.3 on the real Combined Cycle Power Plant data: the class of an operating point.

Targets (docs/method.md §5): inputs AT, V, AP, RH min-max scaled to [0, 1], target PE (the
authors' script trained on RH, an input column, and dropped the first row as a header; here
the target is PE and all 9,568 rows are kept); a small residual network with an LSTM cell;
SiMEC 1,000 steps of 1e-4 in [0, 1]^4 keeps the output constant; the class is shown projected
on pairs of physical variables. The network is created and trained in float64, so that it is
the same on every CPU (`train_regressor(..., float64=True)`), and analysed as a float32
copy.
Run with ``-s`` to see the measured numbers.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest
import torch

from captum_simec.explore import Box, simec
from captum_simec.geometry import pullback_spectrum
from captum_simec.viz import plot_class_scatter
from captum_simec.zoo import PowerPlantResidualLSTM, load_ccpp, train_regressor

UNITS = {"AT": "C", "V": "cm Hg", "AP": "mbar", "RH": "%"}
STARTS = slice(0, 8)  # the first eight test rows


def _show(values) -> str:
    return "[" + ", ".join(f"{float(v):.3g}" for v in torch.as_tensor(values).flatten()) + "]"


@pytest.fixture(scope="module")
def ccpp(shared_data):
    return load_ccpp(root=shared_data)


@pytest.fixture(scope="module")
def split(ccpp):
    return ccpp.train_test_split(test_fraction=0.2, seed=0)


@pytest.fixture(scope="module")
def regressor(split):
    """The residual LSTM regressor, 40 epochs of Adam in float64: (float32 copy, seconds)."""
    x_train, y_train, _, _ = split
    started = time.perf_counter()
    model = train_regressor(
        lambda: PowerPlantResidualLSTM(in_features=4, hidden=16, steps=3, seed=0),
        x_train, y_train, epochs=40, lr=1e-2, batch_size=128, seed=0, num_threads=1,
        float64=True,
    )  # fmt: skip
    return model, time.perf_counter() - started


def _rmse_mw(ccpp, predicted: torch.Tensor, observed: torch.Tensor) -> float:
    return float((predicted - observed).square().mean().sqrt()) * ccpp.y_std


def test_the_target_is_pe_and_every_row_is_kept(ccpp):
    assert ccpp.x.shape == (9568, 4) and ccpp.y.shape == (9568, 1)
    assert ccpp.feature_names == ("AT", "V", "AP", "RH") and ccpp.target_name == "PE"
    physical = ccpp.target_to_physical(ccpp.y.double())
    print(f"\n[CCPP] PE: mean {ccpp.y_mean:.2f} MW, std {ccpp.y_std:.2f} MW, ", end="")
    print(f"range {float(physical.min()):.2f} - {float(physical.max()):.2f} MW")
    # PE (not RH: 25.6 - 100.2 %) spans 420.26 - 495.76 MW; it falls with the temperature
    assert float(physical.min()) == pytest.approx(420.26, abs=1e-6)
    assert float(physical.max()) == pytest.approx(495.76, abs=1e-6)
    correlation = np.corrcoef(ccpp.x[:, 0].numpy(), ccpp.y[:, 0].numpy())[0, 1]
    assert correlation < -0.9
    assert float(ccpp.x.min()) == 0.0 and float(ccpp.x.max()) == 1.0


def test_residual_lstm_predicts_pe_within_a_few_mw(ccpp, split, regressor):
    x_train, y_train, x_test, y_test = split
    model, seconds = regressor
    with torch.no_grad():
        rmse = _rmse_mw(ccpp, model(x_test), y_test)
    design = torch.cat([x_train, torch.ones(len(x_train), 1)], dim=1).double()
    coefficients = torch.linalg.lstsq(design, y_train.double()).solution
    linear = torch.cat([x_test, torch.ones(len(x_test), 1)], dim=1).double() @ coefficients
    baseline = _rmse_mw(ccpp, linear, y_test.double())
    print(f"\n[CCPP] residual LSTM: trained in {seconds:.1f} s on {len(x_train)} rows")
    print(f"[CCPP] test RMSE {rmse:.3f} MW on {len(x_test)} rows ", end="")
    print(f"(linear least squares: {baseline:.3f} MW)")
    assert rmse < 6.0
    assert rmse < baseline  # the network beats a linear model (which gets ~4.6 MW)


@pytest.mark.slow
def test_simec_keeps_the_output_constant_and_draws_the_class(ccpp, split, regressor, tmp_path):
    """SiMEC 1,000 steps of 1e-4 in [0, 1]^4 from eight test rows, with and without corrector.

    Beyond the paper, a second walk of 1,000 steps of 1e-2 shows more of the class (the
    paper's walk moves each point by about 3e-3 in scaled units: a random walk of 1,000 steps
    of 1e-4 covers about sqrt(1000) * 1e-4); both are drawn on (AT, V) and (AT, AP).
    """
    model, _ = regressor
    x = split[2][STARTS]
    spectrum = pullback_spectrum(model, x)
    print(f"\n[CCPP] rank at the starts {spectrum.rank.tolist()} (null dimension 3)")
    assert spectrum.rank.tolist() == [1] * 8
    walks = {}
    for step_size in (1e-4, 1e-2):
        for corrector in (True, False):
            started = time.perf_counter()
            walk = simec(
                model,
                x,
                steps=1000,
                step_size=step_size,
                domain=Box(0.0, 1.0),
                corrector=corrector,
                save_every=10,
                seed=0,
                progress=False,
            )
            seconds = time.perf_counter() - started
            walks[step_size, corrector] = walk
            # drift in MW, from the walk's records and from the model re-evaluated
            recorded = walk.max_drift * ccpp.y_std
            with torch.no_grad():
                outputs = model(walk.points_flat.reshape(-1, 4)).reshape(-1, 8)
            again = (outputs - outputs[0]).abs().amax(dim=0) * ccpp.y_std
            label = f"delta {step_size:g}, {'with' if corrector else 'without'} corrector"
            print(f"[CCPP SiMEC] {label}: {seconds:.1f} s for 1,000 steps x 8 rows")
            print(f"[CCPP SiMEC] {label}: max drift {_show(recorded)} MW")
            print(f"[CCPP SiMEC] {label}: re-evaluated {_show(again)} MW")
            displacement = (walk.points_flat[-1] - walk.points_flat[0]).norm(dim=1)
            print(f"[CCPP SiMEC] {label}: displacement (scaled) {_show(displacement)}")
            assert walk.stop_reason == ["steps"] * 8
            assert (walk.rank == 1).all()
            assert walk.points_flat.min() >= 0.0 and walk.points_flat.max() <= 1.0
            assert ((walk.path_length - 1000 * step_size).abs() < 1e-2 * 1000 * step_size).all()
            if corrector:
                assert recorded.max() < 0.01 and again.max() < 0.01
    # the paper's walk: constant output to well below 0.01 MW, with or without the corrector
    assert (walks[1e-4, False].max_drift * ccpp.y_std).max() < 0.01
    # longer steps: first-order steps drift, the corrector holds the output
    assert walks[1e-2, True].max_drift.max() < walks[1e-2, False].max_drift.max()
    names = [f"{name} ({UNITS[name]})" for name in ccpp.feature_names]
    for step_size in (1e-4, 1e-2):
        walk = walks[step_size, True]
        physical = dataclasses.replace(walk, points_flat=ccpp.inputs_to_physical(walk.points_flat))
        for dims, pair in (((0, 1), "AT_V"), ((0, 2), "AT_AP")):
            figure = plot_class_scatter(physical, dims=dims, feature_names=names)
            path = tmp_path / f"ccpp_class_{pair}_delta{step_size:g}.png"
            figure.savefig(path, dpi=80)
            assert path.stat().st_size > 1000
    print(f"[CCPP] figures: {sorted(p.name for p in tmp_path.iterdir())}")
