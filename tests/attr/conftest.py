"""One torch thread for the attribution tests: the CI and dev machines have two shared cores,
where oversubscribed intra-op threads make small convolutions ten times slower."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
