"""Data indexing: every batch keeps the data-set indices of its examples, whatever the source."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset

from captum_simec.audit._data import index_batches

from .helpers import tiny_data


class _Dicts(Dataset):
    """Items as dicts with 'inputs' and 'labels' keys."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict:
        return {"inputs": self.x[i], "labels": self.y[i]}


class _Stream(IterableDataset):
    def __iter__(self):
        yield torch.zeros(1, 4, 4)


def _collect(batches):
    indices, xs, ys = zip(*batches, strict=True)
    return torch.cat(indices), torch.cat(xs), None if ys[0] is None else torch.cat(ys)


def test_tensors_datasets_and_loaders_give_the_same_indexed_batches():
    x, y = tiny_data(7)
    batches, total = index_batches(x, y, batch_size=3)
    assert total == 7
    index, xs, ys = _collect(batches)
    assert index.tolist() == list(range(7)) and torch.equal(xs, x) and torch.equal(ys, y)
    for data in (TensorDataset(x, y), _Dicts(x, y)):
        index, xs, ys = _collect(index_batches(data, batch_size=3)[0])
        assert index.tolist() == list(range(7)) and torch.equal(xs, x) and torch.equal(ys, y)
    picked = DataLoader(TensorDataset(x), batch_size=2, sampler=[5, 1, 3])
    batches, total = index_batches(picked)
    index, xs, ys = _collect(batches)
    assert total == 3 and index.tolist() == [5, 1, 3] and ys is None
    assert torch.equal(xs, x[[5, 1, 3]])


def test_sources_without_an_index_or_a_batch_size_are_refused():
    x, y = tiny_data(3)
    with pytest.raises(ValueError, match="IterableDataset"):
        index_batches(DataLoader(_Stream(), batch_size=1))
    with pytest.raises(ValueError, match="batch_size=None"):
        index_batches(DataLoader(TensorDataset(x), batch_size=None))
    with pytest.raises(TypeError, match="`data` must be a tensor, a map-style Dataset"):
        index_batches([x])
    with pytest.raises(TypeError, match="`batch_size` must be an int"):
        index_batches(x, batch_size=2.0)
    with pytest.raises(ValueError, match="'x' \\(or 'inputs'\\)"):
        next(index_batches(DataLoader([{"image": x[0]}], batch_size=1))[0])
