"""The test session's own set-up (tests/conftest.py): threads and the data folder."""

from __future__ import annotations

import pytest
import torch

from captum_simec.zoo.datasets import DATA_ENV_VAR
from tests.conftest import data_folder


@pytest.fixture(scope="module")
def threads_seen_by_a_module_fixture() -> int:
    return torch.get_num_threads()


def test_module_fixtures_train_on_one_thread(threads_seen_by_a_module_fixture):
    """Module fixtures run before any per-test fixture: one thread must hold for the session."""
    assert threads_seen_by_a_module_fixture == 1
    assert torch.get_num_threads() == 1


def test_a_test_that_changes_the_threads_leaves_one_behind():
    torch.set_num_threads(2)  # the next test checks that the fixture reset it


def test_the_thread_count_is_back_to_one():
    assert torch.get_num_threads() == 1


def test_the_data_folder_is_read_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path))
    assert data_folder() == tmp_path
    monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path / "absent"))
    assert data_folder() is None  # the real-data tests are then skipped
