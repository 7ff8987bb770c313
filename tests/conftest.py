"""Shared pytest configuration: the --fast flag skips the tests marked slow."""

import os
from pathlib import Path

import pytest
import torch
from hypothesis import settings

# property tests draw the same examples on every run, so CI is reproducible
settings.register_profile("reproducible", derandomize=True, deadline=None)
settings.load_profile("reproducible")

os.environ.setdefault("MPLBACKEND", "Agg")


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
def _single_thread_and_seed():
    """One intra-op thread (small models gain nothing from more on 2 shared cores) and a seed."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The project's real data folder (../shared/data), or skip when it is absent."""
    root = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    if not root.is_dir():
        pytest.skip(f"real data folder {root} is absent (a fresh checkout has no ../shared)")
    return root
