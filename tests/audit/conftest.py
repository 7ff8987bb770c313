"""Fixtures shared by the audit tests."""

from __future__ import annotations

import pytest

from captum_simec.audit import RobustnessAudit

from .helpers import AUDIT_SETTINGS, tiny_data, tiny_mlp


@pytest.fixture(scope="package")
def reference():
    """An uninterrupted in-memory audit of 12 examples: `(x, y, result)`."""
    x, y = tiny_data(12)
    audit = RobustnessAudit(tiny_mlp(), **AUDIT_SETTINGS)
    return x, y, audit.run(x, y, batch_size=5)
