"""The shared argument checks: TypeError for a wrong type, ValueError for a wrong value."""

from __future__ import annotations

import math

import pytest
import torch

from captum_simec._validation import (
    check_callable,
    check_choice,
    check_input_tensor,
    check_non_negative,
    check_positive,
)


def test_check_non_negative_and_positive_share_the_type_rule():
    assert check_non_negative(0, "overshoot") == 0.0
    assert check_non_negative(0.5, "overshoot") == 0.5
    assert check_positive(2, "tol") == 2.0
    for check in (check_non_negative, check_positive):
        with pytest.raises(TypeError, match="`x` must be .*got str '1'. Pass a number."):
            check("1", "x", "Pass a number.")
        with pytest.raises(TypeError, match="got bool"):
            check(True, "x")
        for bad in (-1.0, math.nan, math.inf):
            with pytest.raises(ValueError, match="`x` must be a .*finite number"):
                check(bad, "x")
    with pytest.raises(ValueError, match="positive"):
        check_positive(0.0, "x")


def test_check_choice_ignoring_case_returns_the_spelled_choice():
    assert check_choice("linf", "norm", ("L2", "Linf"), ignore_case=True) == "Linf"
    assert check_choice("L2", "norm", ("L2", "Linf")) == "L2"
    with pytest.raises(ValueError, match=r"`norm` must be one of \('L2', 'Linf'\), got 'l2'"):
        check_choice("l2", "norm", ("L2", "Linf"))
    with pytest.raises(ValueError, match=r"\(in any case\), got 'L1'"):
        check_choice("L1", "norm", ("L2", "Linf"), ignore_case=True)
    with pytest.raises(ValueError, match="got 2"):
        check_choice(2, "norm", ("L2", "Linf"), ignore_case=True)


def test_check_callable():
    assert check_callable(len, "model") is len
    with pytest.raises(TypeError, match="`model` must be a torch.nn.Module or another callable"):
        check_callable("weights.pt", "model")


def test_check_input_tensor():
    x = torch.zeros(3, 2)
    assert check_input_tensor(x) is x
    assert check_input_tensor(torch.zeros(3)).shape == (3,)
    with pytest.raises(TypeError, match="`inputs` must be a tensor, got tuple"):
        check_input_tensor((x,))
    with pytest.raises(
        TypeError, match=r"`data` has dtype torch.int64; it must hold floating point.*\.float\(\)"
    ):
        check_input_tensor(x.long(), "data")
    with pytest.raises(ValueError, match=r"batch dimension \(x\[None\]\)"):
        check_input_tensor(torch.tensor(1.0))
    with pytest.raises(ValueError, match=r"features a dimension of their own"):
        check_input_tensor(torch.zeros(3), min_dim=2)
    big = torch.full((2, 2), 3e38)  # finite, but the cheap sum overflows
    assert check_input_tensor(big) is big
    with pytest.raises(ValueError, match="NaN or inf"):
        check_input_tensor(torch.tensor([[0.0, math.inf]]))
