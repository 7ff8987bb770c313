"""The audit on linear classifiers f(x) = W x + b, against closed forms.

For a linear model the decision boundary between the predicted class t and class k is the
hyperplane (w_t - w_k) . x + (b_t - b_k) = 0, at L2 distance (z_t - z_k) / ||w_t - w_k||_2
and L-inf distance (z_t - z_k) / ||w_t - w_k||_1; the leave-class walk goes straight along
w_r - w_t (r the runner-up); the pullback metric's range is the row space of W (logits), of
the class differences (log-softmax), or w_t - w_r (margin metric).
"""

from __future__ import annotations

import pytest
import torch

from captum_simec.audit import RobustnessAudit

from .helpers import Linear

EPS_MAX = {"L2": 8.0, "Linf": 8.0}
ATTACK_TOL = 2.5e-4 * 8.0  # the audit's default attack_rtol times eps_max


def _margins(weight: torch.Tensor, bias: torch.Tensor, x: torch.Tensor, dual: float):
    """Per example: predicted class, runner-up, and the distance to every class boundary."""
    z = x.flatten(1) @ weight.T + bias
    top2 = z.topk(2, dim=1).indices
    t, r = top2[:, 0], top2[:, 1]
    gap = z.gather(1, t[:, None]) - z  # (B, m)
    normal = (weight[t][:, None, :] - weight[None, :, :]).norm(p=dual, dim=2)
    distance = torch.where(gap > 0, gap / normal.clamp_min(1e-300), torch.inf)
    return t, r, distance


def _projector_diagonal(rows: torch.Tensor) -> torch.Tensor:
    """diag of the orthogonal projector onto the span of `rows` (k, n): the leverage."""
    q, _ = torch.linalg.qr(rows.T)
    return q.square().sum(dim=1)


@pytest.fixture
def two_class() -> tuple[Linear, torch.Tensor]:
    # (not a small seed: the SiMEC walks draw from generators seeded 0, 1, 2, ...)
    generator = torch.Generator().manual_seed(1001)
    weight = torch.randn(2, 6, generator=generator, dtype=torch.float64)
    bias = torch.randn(2, generator=generator, dtype=torch.float64)
    x = torch.randn(8, 6, generator=generator, dtype=torch.float64)
    return Linear(weight, bias).eval(), x


def test_two_classes_flip_distance_equals_margin_over_weight_gap(two_class):
    model, x = two_class
    weight, bias = model.linear.weight.detach(), model.linear.bias.detach()
    audit = RobustnessAudit(
        model, simec_steps=0, simexp_steps=400, simexp_step_size=0.05, eps_max=EPS_MAX
    )
    records, _ = audit.audit_batch(x)
    t, r, l2 = _margins(weight, bias, x, dual=2)
    _, _, linf = _margins(weight, bias, x, dual=1)
    gap = weight[t] - weight[r]
    for i, record in enumerate(records):
        expected = float(l2[i, r[i]])
        assert record["flip_found"] and record["flip_class"] == int(r[i])
        assert record["flip_l2"] == pytest.approx(expected, abs=1e-6)
        # the walk goes straight along w_r - w_t: its L-inf size follows from its L2 size
        ratio = float(gap[i].abs().max() / gap[i].norm())
        assert record["flip_linf"] == pytest.approx(expected * ratio, abs=1e-6)
        assert record["flip_path"] == pytest.approx(expected, abs=1e-6)
        assert record["pgd_l2_eps"] == pytest.approx(expected, abs=ATTACK_TOL + 1e-9)
        assert record["pgd_linf_eps"] == pytest.approx(float(linf[i, r[i]]), abs=ATTACK_TOL)
        assert record["ratio_l2"] == pytest.approx(1.0, abs=ATTACK_TOL / expected + 1e-6)


def test_three_classes_flip_distance_and_pgd_agree():
    generator = torch.Generator().manual_seed(1004)
    weight = torch.randn(3, 5, generator=generator, dtype=torch.float64)
    bias = torch.randn(3, generator=generator, dtype=torch.float64)
    x = 1.5 * torch.randn(200, 5, generator=generator, dtype=torch.float64)
    t, r, l2 = _margins(weight, bias, x, dual=2)
    # Keep examples where the runner-up's boundary is the nearest one and the straight walk
    # along w_r - w_t keeps r as runner-up all the way: there the flip distance is d_r.
    direction = weight[r] - weight[t]
    direction = direction / direction.norm(dim=1, keepdim=True)
    d_r = l2.gather(1, r[:, None]).squeeze(1)
    end = x + d_r[:, None] * direction
    z0, z1 = x @ weight.T + bias, end @ weight.T + bias
    rows = torch.arange(len(x))
    third = 3 - t - r
    clean = (
        (l2.min(dim=1).values == d_r)
        & (z0[rows, r] >= z0[rows, third])
        & (z1[rows, r] >= z1[rows, third] + 1e-3)
        & (d_r < 3.0)
    )
    chosen = clean.nonzero().flatten()[:6]
    assert len(chosen) >= 4, "the seeded data should give several clean examples"
    model = Linear(weight, bias).eval()
    audit = RobustnessAudit(
        model, simec_steps=0, simexp_steps=200, simexp_step_size=0.05, eps_max=EPS_MAX
    )
    records, _ = audit.audit_batch(x[chosen])
    for k, record in zip(chosen.tolist(), records, strict=True):
        assert record["flip_class"] == int(r[k])
        assert record["flip_l2"] == pytest.approx(float(d_r[k]), abs=1e-6)
        # PGD on the margin loss heads straight for the nearest boundary
        assert record["pgd_l2_eps"] == pytest.approx(float(d_r[k]), abs=ATTACK_TOL + 1e-9)
        assert record["ratio_l2"] == pytest.approx(1.0, abs=ATTACK_TOL / float(d_r[k]) + 1e-6)


@pytest.mark.parametrize(
    ("head", "metric", "rank"),
    [("logits", "euclidean", 3), ("log_softmax", "euclidean", 2), ("logits", "margin", 1)],
)
def test_null_dimension_and_robustness_map(head, metric, rank):
    generator = torch.Generator().manual_seed(1002)
    n = 7
    weight = torch.randn(3, n, generator=generator, dtype=torch.float64)
    bias = torch.randn(3, generator=generator, dtype=torch.float64)
    x = torch.randn(5, n, generator=generator, dtype=torch.float64)
    model = Linear(weight, bias, head=head).eval()
    audit = RobustnessAudit(model, output_metric=metric, simec_steps=0, simexp_steps=0, attacks=())
    records, maps = audit.audit_batch(x)
    t, r, _ = _margins(weight, bias, x, dual=2)
    for i, record in enumerate(records):
        assert record["rank"] == rank
        assert record["null_dim"] == n - rank
        if head == "logits" and metric == "euclidean":
            span = weight  # the row space of W
        elif metric == "euclidean":
            span = weight[1:] - weight[0]  # log-softmax kills the all-ones logit direction
        else:
            span = (weight[t[i]] - weight[r[i]])[None]  # the margin's gradient
        expected = 1.0 - _projector_diagonal(span)
        torch.testing.assert_close(maps["robustness"][i], expected, atol=1e-10, rtol=0)
        assert float(maps["robustness"][i].sum()) == pytest.approx(n - rank, abs=1e-9)


def test_class_extent_walks_the_whole_budget_with_zero_drift(two_class):
    model, x = two_class
    steps, step_size = 15, 0.1
    audit = RobustnessAudit(
        model, simec_steps=steps, simec_step_size=step_size, simexp_steps=0, attacks=()
    )
    records, _ = audit.audit_batch(x)
    for record in records:
        assert record["extent_path"] == pytest.approx(steps * step_size, rel=1e-9)
        assert 0 < record["extent_l2"] <= record["extent_path"] + 1e-12
        assert record["extent_drift"] < 1e-10
        assert record["extent_class_kept"]
        assert record["extent_stop"] == "steps"


def test_no_flip_within_budget_is_inf_and_excluded_from_ratios(two_class):
    model, x = two_class
    audit = RobustnessAudit(
        model, simec_steps=0, simexp_steps=1, simexp_step_size=1e-4, eps_max=EPS_MAX
    )
    records, _ = audit.audit_batch(x)
    for record in records:
        assert not record["flip_found"] and record["flip_class"] == -1
        assert record["flip_l2"] == float("inf") and record["flip_stop"] == "steps"
        assert record["ratio_l2"] != record["ratio_l2"]  # nan
