"""Bad inputs to the audit raise errors that name the argument and the fix."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from captum_simec.audit import RobustnessAudit

from .helpers import tiny_data, tiny_mlp

QUIET = {"simec_steps": 0, "simexp_steps": 0, "attacks": (), "progress": False}


def test_model_in_training_mode():
    model = tiny_mlp().train()
    with pytest.raises(ValueError, match=r"training mode.*model\.eval\(\)"):
        RobustnessAudit(model, domain=(0.0, 1.0))


def test_non_float_data():
    x, _ = tiny_data(4)
    audit = RobustnessAudit(tiny_mlp(), **QUIET)
    with pytest.raises(TypeError, match=r"dtype torch.int64.*\.float\(\)"):
        audit.run((x * 10).long())


def test_box_with_lo_above_hi():
    with pytest.raises(ValueError, match="lower > upper"):
        RobustnessAudit(tiny_mlp(), domain=(1.0, 0.0))


def test_inputs_outside_the_box():
    x, _ = tiny_data(4)
    audit = RobustnessAudit(tiny_mlp(), domain=(0.0, 0.5), **QUIET)
    with pytest.raises(ValueError, match="outside the `domain`"):
        audit.run(x)


def test_labels_length_mismatch():
    x, y = tiny_data(4)
    audit = RobustnessAudit(tiny_mlp(), **QUIET)
    with pytest.raises(ValueError, match=r"`labels` has shape \(3,\) but there are 4 examples"):
        audit.run(x, y[:3])


def test_float_labels():
    x, y = tiny_data(4)
    audit = RobustnessAudit(tiny_mlp(), **QUIET)
    with pytest.raises(TypeError, match=r"`labels`.*\.long\(\)"):
        audit.run(x, y.double())


def test_data_without_a_batch_dimension():
    x, _ = tiny_data(1)
    audit = RobustnessAudit(tiny_mlp(), **QUIET)
    with pytest.raises(ValueError, match=r"batch dimension \(x\[None\]\)"):
        audit.run(x.flatten())


def test_labels_with_a_dataloader():
    x, y = tiny_data(4)
    audit = RobustnessAudit(tiny_mlp(), **QUIET)
    with pytest.raises(ValueError, match="only used with tensor inputs"):
        audit.run(DataLoader(TensorDataset(x, y)), y)


def test_attacks_need_a_radius():
    with pytest.raises(ValueError, match=r"domain=\(lo, hi\).*eps_max"):
        RobustnessAudit(tiny_mlp())


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"simec_steps": -1}, "simec_steps"),
        ({"simexp_step_size": 0.0}, "simexp_step_size"),
        ({"attacks": ("cw",)}, "attacks"),
        ({"attacks": "pgd"}, "attacks"),
        ({"eps_max": {"L2": 1.0}}, "eps_max"),
        ({"seed": -3}, "seed"),
        ({"attack_loss": "hinge"}, "attack_loss"),
        ({"output_metric": "cosine"}, "cosine"),
    ],
)
def test_bad_settings(options, match):
    with pytest.raises((ValueError, TypeError), match=match):
        RobustnessAudit(tiny_mlp(), domain=(0.0, 1.0), **options)


def test_model_that_is_not_a_classifier():
    x, _ = tiny_data(2)
    audit = RobustnessAudit(nn.Sequential(nn.Flatten(), nn.Linear(16, 1)).double().eval(), **QUIET)
    with pytest.raises(ValueError, match="classes"):
        audit.run(x)


def test_rejects_nan_inputs():
    x, _ = tiny_data(2)
    x[0, 0, 0, 0] = torch.nan
    with pytest.raises(ValueError, match="NaN"):
        RobustnessAudit(tiny_mlp(), **QUIET).run(x)
