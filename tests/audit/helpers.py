"""Small deterministic models and data shared by the audit tests."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class Linear(nn.Module):
    """f(x) = W x + b on flattened inputs, with an optional log-softmax head (float64)."""

    def __init__(self, weight: Tensor, bias: Tensor, head: str = "logits") -> None:
        super().__init__()
        self.linear = nn.Linear(weight.shape[1], weight.shape[0]).double()
        with torch.no_grad():
            self.linear.weight.copy_(weight)
            self.linear.bias.copy_(bias)
        self.head = head

    def forward(self, x: Tensor) -> Tensor:
        z = self.linear(x.flatten(1))
        return z.log_softmax(dim=1) if self.head == "log_softmax" else z


def tiny_mlp(seed: int = 0) -> nn.Module:
    """A 16 -> 8 -> 3 tanh MLP in float64, eval mode."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 3))
    return model.double().eval()


def tiny_data(count: int = 12, seed: int = 0) -> tuple[Tensor, Tensor]:
    """`count` 1x4x4 float64 inputs in [0, 1] and labels in {0, 1, 2}."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(count, 1, 4, 4, generator=generator, dtype=torch.float64)
    y = torch.randint(0, 3, (count,), generator=generator)
    return x, y


def assert_same_records(first: list[dict], second: list[dict], atol: float = 1e-9) -> None:
    """Equal records: exact for ints, bools and strings, `atol` for floats (inf/nan equal)."""
    assert [r["index"] for r in first] == [r["index"] for r in second]
    for a, b in zip(first, second, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            if isinstance(a[key], float):
                same = torch.isclose(
                    torch.tensor(a[key]), torch.tensor(b[key]), atol=atol, rtol=0, equal_nan=True
                )
                assert bool(same), (a["index"], key, a[key], b[key])
            else:
                assert a[key] == b[key], (a["index"], key, a[key], b[key])


#: A quick audit of the tiny MLP on the unit box (a few walk steps, five PGD steps).
AUDIT_SETTINGS = {
    "domain": (0.0, 1.0),
    "simec_steps": 3,
    "simexp_steps": 40,
    "simexp_step_size": 0.05,
    "pgd_steps": 5,
    "progress": False,
}
