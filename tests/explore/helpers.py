"""Small float64 models and closed-form functions for the walk tests."""

import torch
from torch import nn


def toy(weights, activation="relu", negative_slope=0.01):
    """Paper III §7.1 toy network `f(x) = act(a . x)`, output (batch, 1), float64."""
    a = torch.tensor(weights, dtype=torch.float64)

    def forward(x):
        z = x @ a
        if activation == "relu":
            z = torch.relu(z)
        elif activation == "leaky_relu":
            z = torch.where(z > 0, z, negative_slope * z)
        return z.unsqueeze(1)

    return forward


def linear_classifier(n=8, m=3, seed=0):
    """An affine map `W x + b` (float64): its class is an exact affine subspace."""
    generator = torch.Generator().manual_seed(1000 + seed)  # apart from walk seeds
    weight = torch.randn(m, n, generator=generator, dtype=torch.float64)
    bias = torch.randn(m, generator=generator, dtype=torch.float64)
    return weight, bias, lambda x: x @ weight.T + bias


def tanh_mlp(n=6, m=2, hidden=16, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(n, hidden), nn.Tanh(), nn.Linear(hidden, m)).double().eval()


def bowl(x):
    """`exp(x^2 + y^2 - 2)`: its classes are circles about the origin (paper II)."""
    return torch.exp(x.square().sum(dim=1) - 2).unsqueeze(1)


RADIUS = 0.125**0.5  # the class of (0.25, 0.25) under `bowl`
