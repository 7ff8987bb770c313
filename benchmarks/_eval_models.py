"""The models and data of the evaluation benchmark, trained here with fixed seeds (seconds each).

- digits MLP: 64-64-10 tanh MLP on scikit-learn's 8x8 digits in [0, 1];
- digits CNN: the paper's MNIST CNN trained on the digits upsampled to 28x28 (`fit_digits_cnn`);
- MNIST CNN: the paper's MNIST CNN, 3 epochs of SGD (lr 0.05, momentum 0.9; the paper's one
  epoch at lr 0.01 leaves it at chance on 8,000 images) on 8,000 images of the shared MNIST
  test split, evaluated on the other 2,000 (normalised pixels, box
  `mnist_domain()`); skipped when ../shared/data is absent;
- tabular: scikit-learn's breast-cancer data (30 features) min-max scaled to [0, 1] on the
  training part, a 30-32-32-2 tanh MLP.

Every model returns logits (or log-probabilities for the paper's CNN) and is in eval mode.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn


@dataclass
class Case:
    """One model with its test inputs, its training inputs and the data's box."""

    name: str
    model: nn.Module
    x_test: Tensor
    x_train: Tensor
    domain: tuple[float, float]
    accuracy: float


def _accuracy(model: nn.Module, x: Tensor, y: Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(dim=1) == y).double().mean())


def _fitted(
    name: str,
    model: nn.Module,
    train: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    domain: tuple[float, float],
    epochs: int,
    seed: int,
) -> Case:
    """Trains `model` with SGD (lr 0.05, momentum 0.9, seeded) and measures its accuracy."""
    from captum_simec.zoo import train_classifier

    train_classifier(
        model,
        *train,
        epochs=epochs,
        lr=0.05,
        momentum=0.9,
        seed=seed,
        progress=False,
        num_threads=1,
    )
    return Case(name, model, test[0], train[0], domain, _accuracy(model, *test))


def digits_mlp(seed: int = 0) -> Case:
    from captum_simec.zoo import MLP, load_digits

    split = load_digits(image_size=8, seed=seed)
    model = MLP(64, (64, 64), 10, activation="tanh", seed=seed)
    return _fitted(
        "digits MLP (8x8)",
        model,
        (split.x_train, split.y_train),
        (split.x_test, split.y_test),
        (0.0, 1.0),
        epochs=60,
        seed=seed,
    )


def digits_cnn(seed: int = 0) -> Case:
    from captum_simec.zoo import fit_digits_cnn

    model, split = fit_digits_cnn(seed=seed, progress=False)
    test = (split.x_test, split.y_test)
    return Case(
        "digits CNN (28x28)", model, test[0], split.x_train, (0.0, 1.0), _accuracy(model, *test)
    )


def mnist_cnn(seed: int = 0) -> Case | None:
    from captum_simec.zoo import PaperMNISTCNN, mnist_domain, mnist_split

    try:
        split = mnist_split(train_size=8000, seed=seed)
    except (FileNotFoundError, OSError):
        return None
    return _fitted(
        "MNIST CNN (paper)",
        PaperMNISTCNN(head="log_softmax", seed=seed),
        (split.x_train, split.y_train),
        (split.x_test, split.y_test),
        mnist_domain(),
        epochs=3,
        seed=seed,
    )


def breast_cancer_mlp(seed: int = 0) -> Case:
    from sklearn.datasets import load_breast_cancer

    from captum_simec.zoo import MLP

    bunch = load_breast_cancer()
    x = torch.tensor(np.asarray(bunch.data), dtype=torch.float32)
    y = torch.tensor(np.asarray(bunch.target), dtype=torch.long)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    train, test = order[:400], order[400:]
    lo, hi = x[train].amin(dim=0), x[train].amax(dim=0)
    scaled = ((x - lo) / (hi - lo)).clamp(0.0, 1.0)
    return _fitted(
        "breast cancer MLP",
        MLP(30, (32, 32), 2, activation="tanh", seed=seed),
        (scaled[train], y[train]),
        (scaled[test], y[test]),
        (0.0, 1.0),
        epochs=100,
        seed=seed,
    )
