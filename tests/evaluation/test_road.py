"""ROAD with noisy linear imputation (captum_simec.evaluation.road) against direct solutions."""

import itertools

import numpy as np
import pytest
import torch

from captum_simec import evaluation
from tests.attr.helpers import Linear

WEIGHTS = {
    (dy, dx): (1 / 6 if dy == 0 or dx == 0 else 1 / 12) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
}
WEIGHTS.pop((0, 0))


def _direct_imputation(image: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """Every removed pixel = the weighted mean of its in-image neighbours: a dense solve."""
    height, width = image.shape
    unknown = [(y, x) for y, x in itertools.product(range(height), range(width)) if removed[y, x]]
    index = {pixel: k for k, pixel in enumerate(unknown)}
    matrix, right = np.zeros((len(unknown), len(unknown))), np.zeros(len(unknown))
    for (y, x), k in index.items():
        neighbours = [
            ((y + dy, x + dx), w)
            for (dy, dx), w in WEIGHTS.items()
            if 0 <= y + dy < height and 0 <= x + dx < width
        ]
        total = sum(w for _, w in neighbours)
        matrix[k, k] = 1.0
        for pixel, w in neighbours:
            if pixel in index:
                matrix[k, index[pixel]] -= w / total
            else:
                right[k] += w / total * image[pixel]
    solved = image.copy()
    for pixel, value in zip(unknown, np.linalg.solve(matrix, right), strict=True):
        solved[pixel] = value
    return solved


def test_linear_imputation_matches_a_dense_solve():
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(3, 2, 4, 5, dtype=torch.float64, generator=generator)
    removed = torch.rand(3, 2, 4, 5, generator=generator) < 0.6
    removed[0, 0, :2, :] = True  # a removed border strip
    ours = evaluation.linear_imputation(images, removed)
    for b, c in itertools.product(range(3), range(2)):
        expected = _direct_imputation(images[b, c].numpy(), removed[b, c].numpy())
        np.testing.assert_allclose(ours[b, c].numpy(), expected, atol=1e-9)
    assert torch.equal(ours[~removed], images[~removed])


def test_linear_imputation_of_a_fully_removed_plane_is_zero():
    images = torch.rand(2, 3, 3)
    removed = torch.zeros(2, 3, 3, dtype=torch.bool)
    removed[1] = True
    ours = evaluation.linear_imputation(images, removed)
    assert torch.equal(ours[0], images[0]) and torch.all(ours[1] == 0)


def test_gaussian_imputer_is_the_conditional_mean():
    generator = torch.Generator().manual_seed(1)
    mixing = torch.randn(4, 4, dtype=torch.float64, generator=generator)
    reference = torch.randn(500, 4, dtype=torch.float64, generator=generator) @ mixing
    imputer = evaluation.GaussianImputer(reference, ridge=0.0)
    x = torch.randn(2, 4, dtype=torch.float64, generator=generator)
    removed = torch.tensor([[True, False, True, False], [False, False, False, True]])
    ours = imputer(x, removed)
    mean = reference.mean(0).numpy()
    cov = np.cov(reference.numpy().T)
    for row in range(2):
        gone, kept = removed[row].numpy(), ~removed[row].numpy()
        gain = cov[np.ix_(gone, kept)] @ np.linalg.inv(cov[np.ix_(kept, kept)])
        expected = mean[gone] + gain @ (x[row].numpy()[kept] - mean[kept])
        np.testing.assert_allclose(ours[row].numpy()[gone], expected, atol=1e-9)
        np.testing.assert_allclose(ours[row].numpy()[kept], x[row].numpy()[kept])
    everything = imputer(x, torch.ones_like(removed))
    torch.testing.assert_close(everything, reference.mean(0).expand(2, 4))


def test_road_curve_matches_a_direct_implementation_on_a_tiny_input():
    weight = torch.randn(2, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    model = Linear(weight).eval()
    x = torch.rand(2, 1, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    attributions = torch.arange(18, dtype=torch.float64).reshape(2, 1, 3, 3).flip(-1)
    fractions = (0.0, 1 / 3, 2 / 3)
    for order in ("morf", "lerf"):
        curve = evaluation.road_curve(
            model, x, attributions, 0, order=order, fractions=fractions, noise_std=0.0
        )
        assert curve.mode == f"road_{order}" and curve.scores.shape == (2, 3)
        for b, (k, fraction) in itertools.product(range(2), enumerate(fractions)):
            values = attributions[b].flatten()
            ranking = values.argsort(descending=order == "morf")
            removed = np.zeros(9, dtype=bool)
            removed[ranking[: round(fraction * 9)].numpy()] = True
            image = _direct_imputation(x[b, 0].numpy(), removed.reshape(3, 3))
            logits = weight @ torch.from_numpy(image).flatten()
            expected = torch.softmax(logits, dim=0)[0]
            assert float(curve.scores[b, k]) == pytest.approx(float(expected), abs=1e-9)
    # the AUC is the mean score over the fractions (trapezoid rule divided by their span)
    scores = curve.scores
    torch.testing.assert_close(curve.auc, (scores[:, 0] / 2 + scores[:, 1] + scores[:, 2] / 2) / 2)


def test_road_noise_is_seeded_and_imputations_are_clipped_to_the_domain():
    model = Linear(torch.randn(3, 16)).eval()
    x, attributions = torch.rand(4, 1, 4, 4), torch.rand(4, 1, 4, 4)
    kw = dict(noise_std=0.5, domain=(0.0, 1.0), seed=5)
    assert torch.equal(
        evaluation.road_curve(model, x, attributions, **kw).scores,
        evaluation.road_curve(model, x, attributions, **kw).scores,
    )

    def echo(inputs):  # the outputs are the pixels: the score of target j is pixel j
        return inputs.flatten(1)

    def too_bright(images, removed):
        return torch.where(removed, torch.full_like(images, 5.0), images)

    curve = evaluation.road_curve(
        echo,
        x[:1],
        -torch.arange(16.0).reshape(1, 1, 4, 4),  # pixel 0 is the most relevant
        0,
        imputer=too_bright,
        noise_std=0.0,
        domain=(0.0, 1.0),
        fractions=(0.0, 0.5),
        output_transform="identity",
    )
    assert curve.scores[0, 0] == pytest.approx(float(x[0, 0, 0, 0]))
    assert curve.scores[0, 1] == 1.0  # 5.0 clipped to the domain


def test_road_errors():
    model, x = Linear(torch.randn(2, 4)).eval(), torch.rand(3, 4)
    with pytest.raises(ValueError, match="GaussianImputer"):
        evaluation.road_curve(model, x, x)
    with pytest.raises(ValueError, match="imputer=linear_imputation"):
        evaluation.road_curve(model, x.reshape(3, 2, 2), x.reshape(3, 2, 2))
    images = torch.rand(2, 1, 2, 2)
    with pytest.raises(ValueError, match="order='best'"):
        evaluation.road_curve(model, images, images, order="best")
    with pytest.raises(ValueError, match="fractions"):
        evaluation.road_curve(model, images, images, fractions=(0.5, 1.0))
    with pytest.raises(ValueError, match="noise_std"):
        evaluation.road_curve(model, images, images, noise_std=-1.0)
    with pytest.raises(ValueError, match="two rows"):
        evaluation.GaussianImputer(torch.rand(1, 4))
