"""Tests of captum_simec.zoo.datasets: bundled digits, real MNIST / CCPP, synthetic stand-in."""

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from captum_simec.zoo.datasets import (
    DATA_ENV_VAR,
    MNIST_MEAN,
    MNIST_STD,
    RegressionData,
    Split,
    load_ccpp,
    load_digits,
    load_mnist,
    mnist_domain,
    mnist_split,
    shared_data_dir,
    synthetic_regression,
)

# --------------------------------------------------------------------------------------------
# Digits
# --------------------------------------------------------------------------------------------


def test_load_digits_shapes_ranges_and_split():
    split = load_digits()
    assert isinstance(split, Split)
    assert split.name == "digits"
    assert split.domain == (0.0, 1.0)
    n_train, n_test = split.x_train.shape[0], split.x_test.shape[0]
    assert n_train + n_test == 1797
    assert split.x_train.shape[1:] == (1, 28, 28)
    assert split.x_test.shape[1:] == (1, 28, 28)
    assert split.x_train.dtype == torch.float32 and split.y_train.dtype == torch.int64
    for x in (split.x_train, split.x_test):
        assert x.min() >= 0.0 and x.max() <= 1.0
    assert split.x_train.max() > 0.99  # the 16/16 pixels survive upsampling
    # Stratified: every class in both parts, about 20 % of each class in the test part.
    for c in range(10):
        n_c_test = int((split.y_test == c).sum())
        n_c = n_c_test + int((split.y_train == c).sum())
        assert abs(n_c_test - 0.2 * n_c) <= 1
    assert split.num_classes == 10


def test_load_digits_native_size_matches_sklearn():
    from sklearn.datasets import load_digits as sk_load

    split = load_digits(image_size=8, test_fraction=0.5, seed=3)
    raw = torch.from_numpy(sk_load().images.astype(np.float32) / 16.0)
    assert split.x_train.shape[1:] == (1, 8, 8)
    # Every returned image is one of the originals (nothing resampled at native size).
    first = split.x_train[0, 0]
    assert torch.isclose(raw, first).flatten(1).all(dim=1).any()


def test_load_digits_is_seeded():
    a, b, c = load_digits(seed=1), load_digits(seed=1), load_digits(seed=2)
    assert torch.equal(a.y_train, b.y_train) and torch.equal(a.x_test, b.x_test)
    assert not torch.equal(a.y_train, c.y_train)


def test_load_digits_rejects_bad_fraction():
    with pytest.raises(ValueError, match="test_fraction"):
        load_digits(test_fraction=1.0)


# --------------------------------------------------------------------------------------------
# Data folder resolution and errors
# --------------------------------------------------------------------------------------------


def test_shared_data_dir_env_var(monkeypatch, tmp_path):
    monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path))
    assert shared_data_dir() == tmp_path


def test_shared_data_dir_default_is_beside_the_current_directory(monkeypatch, tmp_path):
    monkeypatch.delenv(DATA_ENV_VAR, raising=False)
    checkout = tmp_path / "project"
    checkout.mkdir()
    monkeypatch.chdir(checkout)
    assert shared_data_dir() is None  # not relative to the package's own files
    (tmp_path / "shared" / "data").mkdir(parents=True)
    assert shared_data_dir() == tmp_path / "shared" / "data"


def test_missing_files_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_mnist(tmp_path)
    msg = str(err.value)
    assert "t10k-images-idx3-ubyte.gz" in msg and str(tmp_path / "mnist") in msg
    assert DATA_ENV_VAR in msg
    with pytest.raises(FileNotFoundError, match="combined.csv") as err:
        load_ccpp(tmp_path)
    assert DATA_ENV_VAR in str(err.value)


def test_env_var_pointing_nowhere(monkeypatch, tmp_path):
    monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match=DATA_ENV_VAR):
        load_mnist()


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = np.array([0x0800 | array.ndim, *array.shape], dtype=">i4").tobytes()
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


def test_load_mnist_on_tiny_idx_files(tmp_path):
    """The IDX reader and normalisation on a hand-made 3-image file."""
    folder = tmp_path / "mnist"
    folder.mkdir()
    images = np.zeros((3, 28, 28), dtype=np.uint8)
    images[0, 0, 0] = 255
    images[1, 5, 7] = 51
    _write_idx(folder / "t10k-images-idx3-ubyte.gz", images)
    _write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.array([7, 2, 1]))
    x, y = load_mnist(tmp_path)
    assert x.shape == (3, 1, 28, 28) and x.dtype == torch.float32
    assert y.tolist() == [7, 2, 1] and y.dtype == torch.int64
    lo, hi = mnist_domain()
    assert x[0, 0, 0, 0].item() == pytest.approx(hi, abs=1e-6)
    assert x[0, 0, 0, 1].item() == pytest.approx(lo, abs=1e-6)
    assert x[1, 0, 5, 7].item() == pytest.approx((0.2 - MNIST_MEAN) / MNIST_STD, abs=1e-6)
    raw, _ = load_mnist(folder, normalise=False)  # the mnist folder itself is accepted too
    assert raw.min() == 0.0 and raw.max() == 1.0


def test_load_mnist_rejects_bad_magic(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    _write_idx(folder / "t10k-images-idx3-ubyte.gz", np.zeros((2, 28, 28)))
    _write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.zeros((2, 1)))  # 2-D: wrong magic
    with pytest.raises(ValueError, match="magic"):
        load_mnist(tmp_path)


def test_mnist_domain():
    lo, hi = mnist_domain()
    assert lo == pytest.approx(-0.4242, abs=1e-4)
    assert hi == pytest.approx(2.8215, abs=1e-4)


# --------------------------------------------------------------------------------------------
# Real data (skipped when ../shared/data is absent)
# --------------------------------------------------------------------------------------------


def test_load_mnist_real(shared_data):
    x, y = load_mnist(shared_data)
    assert x.shape == (10000, 1, 28, 28) and x.dtype == torch.float32
    assert y.shape == (10000,) and y.dtype == torch.int64
    assert y.min() == 0 and y.max() == 9
    assert torch.bincount(y).min() > 800  # every digit well represented
    assert x.min().item() == pytest.approx(-0.4242, abs=1e-4)
    assert x.max().item() == pytest.approx(2.8215, abs=1e-4)
    assert y[:5].tolist() == [7, 2, 1, 0, 4]  # the well-known start of the test split


def test_mnist_split_real(shared_data):
    split = mnist_split(root=shared_data)
    assert split.x_train.shape == (8000, 1, 28, 28)
    assert split.x_test.shape == (2000, 1, 28, 28)
    assert split.domain == mnist_domain() and split.name == "mnist"
    ordered = mnist_split(train_size=9000, seed=None, root=shared_data)
    x, y = load_mnist(shared_data)
    assert torch.equal(ordered.x_test, x[9000:]) and torch.equal(ordered.y_train, y[:9000])
    again = mnist_split(root=shared_data)
    assert torch.equal(split.y_train, again.y_train)


def test_load_ccpp_real(shared_data):
    data = load_ccpp(shared_data)
    assert isinstance(data, RegressionData)
    assert data.x.shape == (9568, 4) and data.y.shape == (9568, 1)
    assert data.x.dtype == torch.float32 and data.y.dtype == torch.float32
    assert data.feature_names == ("AT", "V", "AP", "RH") and data.target_name == "PE"
    assert data.x.min() == 0.0 and data.x.max() == 1.0
    assert data.y.mean().item() == pytest.approx(0.0, abs=1e-4)
    assert data.y.std().item() == pytest.approx(1.0, abs=1e-3)
    pe = data.target_to_physical(data.y)
    assert pe.mean().item() == pytest.approx(454.365, abs=0.01)
    assert 420 < pe.min().item() < 421 and 495 < pe.max().item() < 496
    # The first row is data, not a header: 8.34;40.77;1010.84;90.01;480.48.
    first = data.inputs_to_physical(data.x[0])
    np.testing.assert_allclose(first.numpy(), [8.34, 40.77, 1010.84, 90.01], rtol=1e-5)
    assert pe[0].item() == pytest.approx(480.48, abs=1e-3)
    back = data.inputs_from_physical(data.inputs_to_physical(data.x[:10].double()))
    torch.testing.assert_close(back.float(), data.x[:10])
    assert data.target_from_physical(480.48) == pytest.approx(data.y[0].item(), abs=1e-5)


# --------------------------------------------------------------------------------------------
# Synthetic stand-in
# --------------------------------------------------------------------------------------------


def test_synthetic_regression_layout_and_monotonicity():
    data = synthetic_regression(n=3000, seed=0)
    assert data.x.shape == (3000, 4) and data.y.shape == (3000, 1)
    assert data.x.dtype == torch.float32
    assert data.feature_names == ("AT", "V", "AP", "RH")
    assert data.x.min() >= 0.0 and data.x.max() <= 1.0
    # Signs of the linear trend: down in AT and V, up in AP and RH.
    x = np.c_[data.x.numpy(), np.ones(3000)]
    coef, *_ = np.linalg.lstsq(x, data.y.numpy()[:, 0], rcond=None)
    assert coef[0] < 0 and coef[1] < 0 and coef[2] > 0 and coef[3] > 0
    pe = data.target_to_physical(data.y)
    assert 430 < pe.mean().item() < 480
    at = data.inputs_to_physical(data.x)[:, 0]
    assert at.min() >= 1.81 - 1e-4 and at.max() <= 37.11 + 1e-4


def test_synthetic_regression_is_seeded():
    a, b = synthetic_regression(50, seed=4), synthetic_regression(50, seed=4)
    c = synthetic_regression(50, seed=5)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert not torch.equal(a.x, c.x)


def test_regression_train_test_split():
    data = synthetic_regression(100, seed=0)
    x_tr, y_tr, x_te, y_te = data.train_test_split(0.25, seed=1)
    assert x_tr.shape == (75, 4) and x_te.shape == (25, 4)
    assert y_tr.shape == (75, 1) and y_te.shape == (25, 1)
    rows = {tuple(r) for r in torch.cat([x_tr, x_te]).tolist()}
    assert len(rows) == 100
