"""Jacobians by torch.func and by plain autograd, to check that a model supports both."""

import torch
from torch.func import jacrev, vmap


def per_example_jacobian(model, x):
    """Jacobian of each example's output w.r.t. its input with torch.func: (B, m, *in)."""

    def f(xi):
        return model(xi.unsqueeze(0)).squeeze(0)

    return vmap(jacrev(f))(x)


def autograd_jacobian(model, x):
    """The same Jacobians with plain autograd, one output row at a time."""
    rows = []
    for i in range(x.shape[0]):
        xi = x[i : i + 1].clone().requires_grad_(True)
        out = model(xi)[0]
        grads = [torch.autograd.grad(out[k], xi, retain_graph=True)[0][0] for k in range(len(out))]
        rows.append(torch.stack(grads))
    return torch.stack(rows)
