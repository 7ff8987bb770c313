"""Baselines shared by the benchmarks: minimal Jacobians and the authors' dense style.

- `raw_replicate` / `raw_batched_grad`: the least work that gives the full Jacobian (one
  forward and one backward), written by hand; they show the library paths' own overhead.
- `authors_style`: what the authors' experiment code does per point: one backward per
  output to build J, the dense n x n metric `J^T J` in float64, and `torch.linalg.eigh`.
- `authors_step`: one step of the authors' walk on top of it (a random null eigenvector
  with a random sign, a step, clamping to the box).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _outputs(model: nn.Module, x: Tensor) -> Tensor:
    return model(x).reshape(x.shape[0], -1)


def raw_replicate(model: nn.Module, x: Tensor, m: int) -> Tensor:
    """J (batch, m, n): one forward of the batch replicated m times, one backward of I."""
    batch = x.shape[0]
    with torch.enable_grad():
        xr = x.detach().repeat_interleave(m, dim=0).requires_grad_(True)
        out = _outputs(model, xr)
        eye = torch.eye(m, dtype=out.dtype).repeat(batch, 1)
        (grad,) = torch.autograd.grad(out, xr, eye)
    return grad.reshape(batch, m, -1)


def raw_batched_grad(model: nn.Module, x: Tensor, m: int) -> Tensor:
    """J (batch, m, n): one forward, one `is_grads_batched` backward over the m rows."""
    batch = x.shape[0]
    with torch.enable_grad():
        leaf = x.detach().requires_grad_(True)
        out = _outputs(model, leaf)
        eye = torch.eye(m, dtype=out.dtype)[:, None, :].expand(m, batch, m)
        (grad,) = torch.autograd.grad(out, leaf, eye, is_grads_batched=True)
    return grad.reshape(m, batch, -1).transpose(0, 1)


def authors_style(model: nn.Module, x: Tensor) -> list[tuple[Tensor, Tensor]]:
    """Per example: m backwards build J, then dense g = J^T J (float64, n x n) and eigh(g)."""
    results = []
    for i in range(x.shape[0]):
        with torch.enable_grad():
            xi = x[i : i + 1].detach().requires_grad_(True)
            out = model(xi).reshape(-1)
            m = out.numel()
            rows = [
                torch.autograd.grad(out[k], xi, retain_graph=k < m - 1)[0].reshape(-1)
                for k in range(m)
            ]
        jac = torch.stack(rows).double()
        metric = jac.T @ jac
        results.append(torch.linalg.eigh(metric))
    return results


def authors_step(
    model: nn.Module,
    x: Tensor,
    step_size: float,
    generator: torch.Generator,
    lower: float | None = None,
    upper: float | None = None,
) -> Tensor:
    """One step of the authors' walk from each example of `x` (dense eigh, clamping)."""
    new = x.clone()
    for i, (values, vectors) in enumerate(authors_style(model, x)):
        null = int((values <= values[-1] * values.numel() * torch.finfo(torch.float32).eps).sum())
        pick = int(torch.randint(max(null, 1), (1,), generator=generator))
        sign = 1.0 if torch.rand(1, generator=generator).item() < 0.5 else -1.0
        direction = vectors[:, pick].to(x.dtype).reshape(x.shape[1:])
        new[i] = x[i] + sign * step_size * direction
    if lower is not None or upper is not None:
        new = new.clamp(lower, upper)
    return new
