"""Tiny models for the attribution tests (defined here, trained on nothing), and Saliency."""

import warnings

import torch
from captum.attr import Saliency
from torch import Tensor, nn


class Linear(nn.Module):
    """`f(x) = W x` on flattened inputs (no bias): the pullback metric is `W^T G W`."""

    def __init__(self, weight: Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight.clone())

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(1) @ self.weight.T


class ScaledMLP(nn.Module):
    """An MLP taking an additional forward argument `scale` (scalar or one per example)."""

    def __init__(self, n: int = 5, m: int = 3, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.hidden = nn.Linear(n, 7)
        self.activation = nn.Tanh()
        self.out = nn.Linear(7, m)

    def forward(self, x: Tensor, scale: Tensor | float = 1.0) -> Tensor:
        if isinstance(scale, Tensor) and scale.dim() > 0:
            scale = scale.reshape(-1, 1)
        return self.out(self.activation(self.hidden(x.flatten(1) * scale)))


class TwoInputs(nn.Module):
    """`f(a, b)` of two inputs with different trailing shapes, 3 outputs."""

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(1)
        self.wa = nn.Parameter(torch.randn(3, 4, generator=generator))
        self.wb = nn.Parameter(torch.randn(3, 6, generator=generator))

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return torch.sin(a @ self.wa.T) + torch.tanh(b.flatten(1) @ self.wb.T)


class GridOutput(nn.Module):
    """Outputs of shape (batch, 2, 3): targets are tuples (i, j)."""

    def __init__(self, n: int = 4) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(2)
        self.weight = nn.Parameter(torch.randn(6, n, generator=generator))

    def forward(self, x: Tensor) -> Tensor:
        return torch.tanh(x @ self.weight.T).reshape(-1, 2, 3)


def small_cnn(seed: int = 0) -> nn.Sequential:
    """A conv-ReLU-conv-linear classifier on (1, 8, 8) images, 4 classes."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 3, 3),
        nn.ReLU(),
        nn.Conv2d(3, 4, 3),
        nn.Tanh(),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 4),
    ).eval()


def mlp(n: int = 6, m: int = 3, seed: int = 0) -> nn.Sequential:
    """A small smooth MLP classifier."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(n, 8), nn.Tanh(), nn.Linear(8, m)).eval()


def saliency(model: nn.Module, x: Tensor, target, abs: bool = True) -> Tensor:
    """Captum's Saliency, without its note that it set `requires_grad`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return Saliency(model).attribute(x, target=target, abs=abs)
