"""Outputs used for drift, class decisions and stops come from the same computation as the
Jacobians (issue 8, section 3).

`nn.TransformerEncoder` with a padding mask takes a fused fast path under `no_grad` in eval
mode (nested tensors: the padded positions come out as zeros), so its outputs differ from
the differentiable computation the Jacobians are taken of. Every decision must use the
latter.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from captum_simec import RobustnessAudit, pullback_spectrum, simec
from captum_simec.audit import min_fgsm_epsilon
from captum_simec.geometry import model_outputs

pytestmark = pytest.mark.filterwarnings("ignore:.*nested tensors.*")


class MaskedEncoder(nn.Module):
    """A transformer classifier over 5 tokens whose last 2 are padding (mean pooled)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, batch_first=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.encoder = nn.TransformerEncoder(layer, num_layers=1)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = torch.zeros(x.shape[0], x.shape[1], dtype=torch.bool, device=x.device)
        mask[:, 3:] = True
        return self.head(self.encoder(x, src_key_padding_mask=mask).mean(dim=1))


@pytest.fixture(scope="module")
def model() -> MaskedEncoder:
    return MaskedEncoder().eval()


@pytest.fixture(scope="module")
def x() -> torch.Tensor:
    return torch.randn(16, 5, 8, generator=torch.Generator().manual_seed(1))


def _grad_mode(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.enable_grad():
        return model(x.clone().requires_grad_(True)).detach()


def test_the_fast_path_exists_and_model_outputs_avoids_it(model, x):
    with torch.no_grad():
        fused = model(x)
    exact = _grad_mode(model, x)
    assert (fused - exact).abs().max() > 0.1  # the premise: the fast path differs
    assert (fused.argmax(1) != exact.argmax(1)).any()
    for context in (torch.no_grad(), torch.enable_grad()):  # whatever the caller's mode
        with context:
            torch.testing.assert_close(model_outputs(model, (x,)), exact, rtol=0, atol=1e-6)


@pytest.mark.parametrize("method", ["replicate", "batched_grad", "auto"])
def test_spectrum_outputs_are_the_differentiable_ones(model, x, method):
    with torch.no_grad():  # as NoiseTunnel and sensitivity_max call
        spectrum = pullback_spectrum(model, x[:2], jacobian_method=method)
    torch.testing.assert_close(spectrum.outputs, _grad_mode(model, x[:2]), rtol=0, atol=1e-6)


def test_simec_reports_the_true_drift(model, x):
    """Main reported a drift of 0.17-0.27 here; the outputs at the points say 1e-4."""
    walk = simec(model, x[:2], steps=3, step_size=1e-3, seed=0, progress=False)
    true = (_grad_mode(model, walk.final) - _grad_mode(model, walk.start)).norm(dim=1)
    assert float(walk.max_drift.max()) < 1e-3
    torch.testing.assert_close(walk.final_drift, true.double(), rtol=0, atol=1e-5)


def test_audit_and_attacks_decide_on_the_differentiable_outputs(model, x):
    exact = _grad_mode(model, x)
    audit = RobustnessAudit(model, domain=(-5.0, 5.0), simec_steps=0, simexp_steps=0, attacks=())
    records, _ = audit.audit_batch(x)
    assert [r["prediction"] for r in records] == exact.argmax(1).tolist()
    top2 = exact.topk(2, dim=1).values
    margins = torch.tensor([r["margin"] for r in records])
    torch.testing.assert_close(margins, top2[:, 0] - top2[:, 1], rtol=0, atol=1e-5)
    result = min_fgsm_epsilon(model, x, eps_max=0.5, tol=0.05)
    assert result.label.tolist() == exact.argmax(1).tolist()
