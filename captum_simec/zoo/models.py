"""Reference architectures of the papers and the benchmarks (no data, no training here).

Every model here runs under plain autograd; most also run under ``torch.func`` transforms
(``vmap`` over the batch of ``jacrev`` / ``jacfwd`` / ``vjp``). The recurrent models, with
their known exceptions in torch 2.13 on CPU, are in :mod:`captum_simec.zoo.recurrent`.

Classifiers share one convention: ``model.logits(x)`` returns the raw scores and
``model(x)`` applies the chosen ``head`` (``"logits"``, ``"softmax"`` or ``"log_softmax"``) on
top. The trainers (:mod:`captum_simec.zoo.training`) use ``logits`` when present, so a
softmax head trains as stably as a logits head. Constructors take an optional ``seed`` that
fixes the initial weights without touching the global random state.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from captum_simec._validation import check_choice

__all__ = [
    "HEADS",
    "MLP",
    "BasicBlock",
    "PaperMNISTCNN",
    "ResNet18Like",
    "ResidualCNN",
    "ToyNet",
    "count_parameters",
]

HEADS = ("logits", "softmax", "log_softmax")
"""The output heads a classifier may put on top of its logits."""

_MLP_ACTIVATIONS = ("relu", "leaky_relu", "gelu", "tanh", "sigmoid")
_TOY_ACTIVATIONS = ("relu", "leaky_relu", "identity", "sigmoid", "tanh")


# --------------------------------------------------------------------------------------------
# Shared pieces
# --------------------------------------------------------------------------------------------


@contextmanager
def _seeded(seed: int | None) -> Iterator[None]:
    """Run the block under ``torch.manual_seed(seed)`` without changing the global CPU RNG."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters of ``model`` (optionally only those requiring grad)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


class _Classifier(nn.Module):
    """Base class: subclasses implement :meth:`logits`; ``forward`` applies ``self.head``."""

    def __init__(self, head: str) -> None:
        super().__init__()
        self.head = check_choice(head, "head", HEADS)

    def logits(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        """Class scores after the head: logits, probabilities or log-probabilities."""
        z = self.logits(x)
        if self.head == "softmax":
            return z.softmax(dim=-1)
        if self.head == "log_softmax":
            return z.log_softmax(dim=-1)
        return z


def _mlp_activation(name: str) -> nn.Module:
    check_choice(name, "activation", _MLP_ACTIVATIONS)
    return {
        "relu": nn.ReLU,
        "leaky_relu": nn.LeakyReLU,
        "gelu": nn.GELU,
        "tanh": nn.Tanh,
        "sigmoid": nn.Sigmoid,
    }[name]()


# --------------------------------------------------------------------------------------------
# Paper architectures
# --------------------------------------------------------------------------------------------


class PaperMNISTCNN(_Classifier):
    """The MNIST CNN of paper III §7.2 (24,390 parameters), for inputs ``(B, 1, 28, 28)``.

    conv(1->10, k5) - avgpool2 - ReLU - conv(10->20, k5) - avgpool2 - ReLU - flatten(320) -
    fc(320->50) - ReLU - fc(50->50) - ReLU - fc(50->10) - head.

    Args:
        head: ``"log_softmax"`` (the paper's), ``"softmax"`` or ``"logits"``.
        seed: Seed of the initial weights; ``None`` uses the global RNG.
    """

    def __init__(self, head: str = "log_softmax", seed: int | None = None) -> None:
        super().__init__(head)
        with _seeded(seed):
            self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
            self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
            self.fc1 = nn.Linear(320, 50)
            self.fc2 = nn.Linear(50, 50)
            self.fc3 = nn.Linear(50, 10)

    def logits(self, x: Tensor) -> Tensor:
        """Raw class scores, shape ``(B, 10)``."""
        x = F.relu(F.avg_pool2d(self.conv1(x), 2))
        x = F.relu(F.avg_pool2d(self.conv2(x), 2))
        x = x.flatten(1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class ToyNet(nn.Module):
    """The toy networks of paper III §7.1: ``f(x) = act(a · x)`` with a fixed vector ``a``.

    Leaky ReLU is ``where(z > 0, z, negative_slope * z)``; ``negative_slope`` may be negative
    (the authors' code used -0.01, the standard choice is +0.01). The weights are a frozen
    parameter (``requires_grad=False``) of a bias-free linear layer.

    Args:
        weights: The vector ``a`` of length ``n``.
        activation: One of ``"relu"``, ``"leaky_relu"``, ``"identity"``, ``"sigmoid"``,
            ``"tanh"``.
        negative_slope: Slope of the leaky ReLU for ``z <= 0``.
        dtype: Dtype of the weights (inputs must match); float64 by default, as the toy
            reproductions check invariants to 1e-9.

    Shape:
        Input ``(B, n)``, output ``(B, 1)``.
    """

    def __init__(
        self,
        weights: Sequence[float] | Tensor,
        activation: str = "relu",
        negative_slope: float = 0.01,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        self.activation = check_choice(activation, "activation", _TOY_ACTIVATIONS)
        self.negative_slope = float(negative_slope)
        a = torch.as_tensor(weights, dtype=dtype).reshape(1, -1).clone()
        self.linear = nn.Linear(a.shape[1], 1, bias=False, dtype=dtype)
        self.linear.weight = nn.Parameter(a, requires_grad=False)

    @property
    def weights(self) -> Tensor:
        """The vector ``a``, shape ``(n,)``."""
        return self.linear.weight[0]

    def forward(self, x: Tensor) -> Tensor:
        """``act(x @ a)``, shape ``(B, 1)``."""
        z = self.linear(x)
        if self.activation == "relu":
            return torch.relu(z)
        if self.activation == "leaky_relu":
            return torch.where(z > 0, z, self.negative_slope * z)
        if self.activation == "sigmoid":
            return torch.sigmoid(z)
        if self.activation == "tanh":
            return torch.tanh(z)
        return z

    def extra_repr(self) -> str:
        return f"activation={self.activation!r}, negative_slope={self.negative_slope}"


class MLP(_Classifier):
    """A fully connected network; inputs of any trailing shape are flattened from dim 1.

    Args:
        in_features: Number of input features after flattening.
        hidden: Widths of the hidden layers.
        out_features: Number of outputs.
        activation: ``"relu"``, ``"leaky_relu"`` (slope 0.01), ``"gelu"``, ``"tanh"`` or
            ``"sigmoid"``.
        head: ``"logits"`` (plain outputs, e.g. for regression), ``"softmax"`` or
            ``"log_softmax"``.
        seed: Seed of the initial weights; ``None`` uses the global RNG.

    Shape:
        Input ``(B, *)`` with ``prod(*) == in_features``, output ``(B, out_features)``.
    """

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int] = (64, 64),
        out_features: int = 10,
        activation: str = "relu",
        head: str = "logits",
        seed: int | None = None,
    ) -> None:
        super().__init__(head)
        check_choice(activation, "activation", _MLP_ACTIVATIONS)
        self.activation = activation
        widths = [in_features, *hidden]
        layers: list[nn.Module] = []
        with _seeded(seed):
            for w_in, w_out in zip(widths[:-1], widths[1:], strict=True):
                layers += [nn.Linear(w_in, w_out), _mlp_activation(activation)]
            layers.append(nn.Linear(widths[-1], out_features))
        self.net = nn.Sequential(*layers)

    def logits(self, x: Tensor) -> Tensor:
        """Outputs before the head, shape ``(B, out_features)``."""
        return self.net(x.flatten(1))


# --------------------------------------------------------------------------------------------
# Residual CNNs
# --------------------------------------------------------------------------------------------


class BasicBlock(nn.Module):
    """Residual block: conv3x3-BN-ReLU-conv3x3-BN plus shortcut, then ReLU.

    The shortcut is the identity when shapes agree, else a strided 1x1 conv + BN.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        stride: Stride of the first conv (and of the projection shortcut).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResidualCNN(_Classifier):
    """A small residual CNN for ``(B, C, 32, 32)`` images (works on any size >= 8).

    conv3x3 stem (``width``) - BN - ReLU - BasicBlock(width) - BasicBlock(2 width, stride 2,
    1x1 shortcut) - BasicBlock(4 width, stride 2, 1x1 shortcut) - global average pool -
    linear. Call ``eval()`` before using ``torch.func`` transforms (BatchNorm in training mode
    cannot be vmapped).

    Args:
        in_channels: Input channels.
        num_classes: Number of classes.
        width: Channels of the first stage.
        head: ``"logits"``, ``"softmax"`` or ``"log_softmax"``.
        seed: Seed of the initial weights; ``None`` uses the global RNG.
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 10,
        width: int = 16,
        head: str = "logits",
        seed: int | None = None,
    ) -> None:
        super().__init__(head)
        with _seeded(seed):
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(),
            )
            self.blocks = nn.Sequential(
                BasicBlock(width, width),
                BasicBlock(width, 2 * width, stride=2),
                BasicBlock(2 * width, 4 * width, stride=2),
            )
            self.fc = nn.Linear(4 * width, num_classes)

    def logits(self, x: Tensor) -> Tensor:
        """Raw class scores, shape ``(B, num_classes)``."""
        x = self.blocks(self.stem(x))
        return self.fc(x.mean(dim=(-2, -1)))


class ResNet18Like(_Classifier):
    """A ResNet-18-shaped network written from scratch (about 11.2 M parameters at 10 classes).

    conv7x7 stride 2 (64) - BN - ReLU - maxpool3 stride 2 - 4 stages of 2 BasicBlocks with
    64, 128, 256, 512 channels (stride 2 from the second stage on) - global average pool - fc.
    Built for ``(B, C, 224, 224)``; any size >= 32 runs. Call ``eval()`` before using
    ``torch.func`` transforms.

    Args:
        num_classes: Number of classes.
        in_channels: Input channels.
        head: ``"logits"``, ``"softmax"`` or ``"log_softmax"``.
        seed: Seed of the initial weights; ``None`` uses the global RNG.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        head: str = "logits",
        seed: int | None = None,
    ) -> None:
        super().__init__(head)
        widths = (64, 128, 256, 512)
        with _seeded(seed):
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False),
                nn.BatchNorm2d(64),
                nn.ReLU(),
                nn.MaxPool2d(3, stride=2, padding=1),
            )
            stages: list[nn.Module] = []
            c_in = 64
            for i, c_out in enumerate(widths):
                stride = 1 if i == 0 else 2
                stages.append(
                    nn.Sequential(BasicBlock(c_in, c_out, stride), BasicBlock(c_out, c_out))
                )
                c_in = c_out
            self.stages = nn.Sequential(*stages)
            self.fc = nn.Linear(widths[-1], num_classes)

    def logits(self, x: Tensor) -> Tensor:
        """Raw class scores, shape ``(B, num_classes)``."""
        x = self.stages(self.stem(x))
        return self.fc(x.mean(dim=(-2, -1)))
