"""The class decision of an output: the argmax over its last dimension, at the target's position."""

import pytest
import torch

from captum_simec.geometry import MarginMetric
from captum_simec.geometry.decisions import num_classes, predicted_class, runner_up

# two examples, outputs (T=3, V=4) flattened: the global argmax is at position 2
OUTPUTS = torch.tensor(
    [
        [0.1, 0.9, 0.3, 0.2, 0.5, 0.4, 0.8, 0.0, 5.0, 1.0, 2.0, 3.0],
        [1.0, 0.0, 0.2, 0.3, 0.1, 0.2, 0.3, 0.4, 0.0, 9.0, 0.0, 0.0],
    ]
)


def test_num_classes_is_the_last_dimension():
    assert num_classes((10,)) == 10
    assert num_classes((3, 4)) == 4
    assert num_classes(()) == 1


def test_the_decision_is_the_argmax_at_the_position_of_the_target():
    position = torch.tensor([1 * 4 + 0, 0 * 4 + 3])  # targets (1, 0) and (0, 3)
    assert predicted_class(OUTPUTS, 4, position).tolist() == [1 * 4 + 2, 0 * 4 + 0]
    assert predicted_class(OUTPUTS, 12).tolist() == [8, 9]  # a classifier: the whole output
    with pytest.raises(ValueError, match=r"3 positions of 4 classes.*target=\(t, class\)"):
        predicted_class(OUTPUTS, 4)


def test_the_runner_up_is_at_the_target_position():
    target = torch.tensor([1 * 4 + 2, 2 * 4 + 1])
    assert runner_up(OUTPUTS, target, 4).tolist() == [1 * 4 + 0, 2 * 4 + 0]
    assert runner_up(OUTPUTS, target, 12).tolist() == [8, 0]  # the target itself is excluded


def test_the_margin_metric_of_a_sequence_output_stays_at_the_position():
    target = torch.tensor([1 * 4 + 2, 2 * 4 + 1])
    rows = MarginMetric().for_output((3, 4)).cotangents(OUTPUTS, target)
    expected = torch.zeros(2, 1, 12)
    expected[0, 0, 6], expected[0, 0, 4] = 1.0, -1.0
    expected[1, 0, 9], expected[1, 0, 8] = 1.0, -1.0
    torch.testing.assert_close(rows, expected)
    assert MarginMetric().for_output((12,)).classes == 12
