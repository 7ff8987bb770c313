"""Fixtures shared by the attribution tests."""

import pytest
import torch

from tests.attr.helpers import Linear


@pytest.fixture
def linear():
    """A 3 x 5 linear model (its fifth feature ignored) and its weight."""
    weight = torch.tensor(
        [[1.0, -2.0, 0.5, 3.0, 0.0], [0.0, 1.0, -1.0, 2.0, 0.0], [2.0, 0.0, 1.0, -1.0, 0.0]],
        dtype=torch.float64,
    )
    return Linear(weight).eval(), weight
