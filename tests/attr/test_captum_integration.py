"""SiMECAttribution inside Captum 0.9.0's NoiseTunnel, metrics and robust module.

CI installs captum 0.9.0 only; these tests pin its behaviour, not 0.8's.
"""

import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import torch
from captum.attr import NoiseTunnel
from captum.metrics import infidelity, infidelity_perturb_func_decorator, sensitivity_max
from captum.robust import FGSM, AttackComparator

from captum_simec.attr import SiMECAttribution
from tests.attr.helpers import Linear, TwoInputs, mlp

ROOT = Path(__file__).resolve().parents[2]
CHECKER = ROOT.parent / "shared" / "tools" / "captum_contract_check.py"
NT_TYPES = ("smoothgrad", "smoothgrad_sq", "vargrad")


@pytest.mark.parametrize("nt_type", NT_TYPES)
@pytest.mark.parametrize("batch_size", [None, 2, 3], ids=["whole", "two", "three"])
def test_noise_tunnel_without_noise_reproduces_the_attribution(nt_type, batch_size):
    model, x = mlp(), torch.randn(4, 6)
    attribution = SiMECAttribution(model)
    plain = attribution.attribute(x, target=[0, 1, 2, 0])
    smooth = NoiseTunnel(attribution).attribute(
        x,
        nt_type=nt_type,
        nt_samples=5,
        nt_samples_batch_size=batch_size,
        stdevs=0.0,
        target=torch.tensor([0, 1, 2, 0]),
    )
    expected = {"smoothgrad": plain, "smoothgrad_sq": plain**2, "vargrad": 0 * plain}[nt_type]
    torch.testing.assert_close(smooth, expected, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("nt_type", NT_TYPES)
@pytest.mark.parametrize("score", ["relevance", "robustness"])
def test_noise_tunnel_with_noise_on_tuple_inputs(nt_type, score):
    model = TwoInputs().eval()
    inputs = (torch.randn(3, 4), torch.randn(3, 2, 3))
    torch.manual_seed(0)
    result = NoiseTunnel(SiMECAttribution(model)).attribute(
        inputs,
        nt_type=nt_type,
        nt_samples=4,
        nt_samples_batch_size=3,
        stdevs=0.1,
        target=1,
        score=score,
    )
    assert isinstance(result, tuple)
    assert [r.shape for r in result] == [i.shape for i in inputs]
    assert all(torch.isfinite(r).all() for r in result)
    if nt_type != "vargrad":
        assert all((r >= 0).all() for r in result)


def test_noise_tunnel_smoothgrad_averages_over_the_noise_it_drew():
    model, x = mlp(), torch.randn(2, 6)
    attribution = SiMECAttribution(model)
    torch.manual_seed(5)
    smooth = NoiseTunnel(attribution).attribute(
        x, nt_type="smoothgrad", nt_samples=3, stdevs=0.2, target=1
    )
    torch.manual_seed(5)  # NoiseTunnel draws one normal tensor of (samples x batch) rows
    noisy = x.repeat_interleave(3, dim=0) + torch.normal(0, 0.2, size=(6, 6))
    expected = attribution.attribute(noisy, target=1).reshape(2, 3, 6).mean(dim=1)
    torch.testing.assert_close(smooth, expected)


def test_infidelity_of_the_signed_target_relevance_of_a_linear_model_is_zero():
    weight = torch.randn(3, 5, dtype=torch.float64)
    model, x = Linear(weight).eval(), torch.randn(4, 5, dtype=torch.float64)
    attribution = SiMECAttribution(model)

    @infidelity_perturb_func_decorator(attribution.multiplies_by_inputs)
    def perturb(inputs):
        return inputs + 0.1 * torch.randn_like(inputs)

    signed = attribution.attribute(x, target=2, signed=True)  # = the gradient w_2
    zero = infidelity(model, perturb, x, signed, target=2)
    assert zero.shape == (4,) and torch.all(zero < 1e-20)
    shuffled = infidelity(model, perturb, x, signed.flip(1), target=2)
    assert torch.all(shuffled > 1e-4)


def test_infidelity_with_multiply_by_inputs():
    model, x = mlp(), torch.randn(4, 6)
    attribution = SiMECAttribution(model, multiply_by_inputs=True)

    @infidelity_perturb_func_decorator(attribution.multiplies_by_inputs)
    def perturb(inputs):
        return inputs - 0.01 * torch.randn_like(inputs)

    value = infidelity(model, perturb, x, attribution.attribute(x, target=0), target=0)
    assert value.shape == (4,) and torch.isfinite(value).all()


def test_sensitivity_max_is_zero_for_a_linear_model_and_positive_otherwise():
    weight = torch.randn(3, 5)
    linear = SiMECAttribution(Linear(weight).eval())
    x = torch.randn(4, 5)
    assert torch.all(sensitivity_max(linear.attribute, x, target=1) < 1e-6)
    curved = SiMECAttribution(mlp(n=5))
    with torch.no_grad():  # sensitivity_max runs under no_grad; attribute re-enables grad
        value = sensitivity_max(curved.attribute, x, target=[0, 1, 2, 0], score="robustness")
    assert value.shape == (4,) and torch.all(value > 0)


def test_sensitivity_max_over_noise_tunnel():
    attribution = SiMECAttribution(mlp())
    value = sensitivity_max(
        NoiseTunnel(attribution).attribute, torch.randn(3, 6), target=1, nt_samples=3, stdevs=0.1
    )
    assert value.shape == (3,) and torch.isfinite(value).all()


def test_as_the_forward_function_of_attack_comparator():
    """Attribution robustness under attacks: the map's top-feature overlap with the clean map."""
    weight = torch.randn(3, 5)
    model = Linear(weight).eval()
    x, labels = torch.randn(6, 5), torch.tensor([0, 1, 2, 0, 1, 2])
    attribution = SiMECAttribution(model)
    clean = attribution.attribute(x, target=labels)

    def top_overlap(maps: torch.Tensor, reference: torch.Tensor, target=None) -> torch.Tensor:
        top = maps.topk(2, dim=1).indices.sort(dim=1).values
        return (top == reference.topk(2, dim=1).indices.sort(dim=1).values).all(dim=1).float()

    comparator = AttackComparator(
        forward_func=partial(attribution.attribute, target=labels), metric=top_overlap
    )
    comparator.add_attack(
        FGSM(model, lower_bound=-3, upper_bound=3),
        "FGSM",
        attack_kwargs={"epsilon": 0.3},
        additional_attack_arg_names=["target"],
    )
    comparator.add_attack(lambda inputs: inputs + 0.5, "shift")
    results = comparator.evaluate(x, reference=clean, target=labels)
    # a linear model's relevance is the same everywhere: every attack keeps the top features
    assert set(results) == {"Original", "FGSM", "shift"}
    for key in results:
        value = results[key]["mean"] if isinstance(results[key], dict) else results[key]
        assert torch.all(torch.as_tensor(value) == 1.0), key


def _run_checker(score: str) -> subprocess.CompletedProcess:
    if not CHECKER.is_file():
        pytest.skip(f"the contract checker {CHECKER} is absent (no ../shared in this checkout)")
    pytest.importorskip("captum.testing", reason="the checker's models ship with captum >= 0.9")
    return subprocess.run(
        [sys.executable, str(CHECKER), "captum_simec.attr:SiMECAttribution", f"score={score}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(
    "score",
    [
        "relevance",
        "robustness",
        "flip",
        "boundary",
        pytest.param("class_extent", marks=pytest.mark.slow),
    ],
)
def test_contract_checker_passes(score):
    completed = _run_checker(score)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "0 failed" in completed.stdout
