"""Shared pytest configuration: one thread, a seed per test, the data folder, --fast.

One intra-op thread for the whole session, set here at import: module- and session-scoped
fixtures run before any per-test fixture, and training them multi-threaded on 2 shared
cores was 10x slower (190 s against 19 s for one fixture). The real data folder is
`$CAPTUM_SIMEC_DATA`, else this checkout's ../shared/data, exported so that the tutorials
run in subprocesses (from other folders) find it too.
"""

import os
from pathlib import Path

import pytest
import torch
from hypothesis import settings

from captum_simec.zoo.datasets import DATA_ENV_VAR

# property tests draw the same examples on every run, so CI is reproducible
settings.register_profile("reproducible", derandomize=True, deadline=None)
settings.load_profile("reproducible")

os.environ.setdefault("MPLBACKEND", "Agg")
torch.set_num_threads(1)

_CHECKOUT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
if _CHECKOUT_DATA.is_dir():
    os.environ.setdefault(DATA_ENV_VAR, str(_CHECKOUT_DATA))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fast",
        action="store_true",
        default=False,
        help="skip tests marked slow (paper reproductions, tutorials); CI runs them",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--fast"):
        return
    skip = pytest.mark.skip(reason="slow test skipped by --fast")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed_and_single_thread():
    """A seed per test; a test that changes the thread count leaves one thread behind."""
    torch.manual_seed(0)
    yield
    torch.set_num_threads(1)


def data_folder() -> Path | None:
    """`$CAPTUM_SIMEC_DATA` (this checkout's ../shared/data by default) if it is a folder."""
    root = os.environ.get(DATA_ENV_VAR)
    return Path(root) if root and Path(root).is_dir() else None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data folder (`data_folder`), or skip."""
    root = data_folder()
    if root is None:
        pytest.skip(
            f"no real data folder: set {DATA_ENV_VAR} (a fresh checkout has no ../shared/data)"
        )
    return root
