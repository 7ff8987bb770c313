"""Per-example randomness: one seeded generator per example, draws for any subset of rows."""

import pytest
import torch

from captum_simec.explore._rng import ExampleRNG


def test_example_i_uses_seed_plus_i_and_draws_do_not_depend_on_the_other_rows():
    rng = ExampleRNG(3, 5, None)
    assert rng.seeds == [5, 6, 7]
    like = torch.zeros(1, dtype=torch.float64)
    subset = rng.normal(torch.tensor([2]), 4, like)
    alone = torch.randn(4, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    assert subset.shape == (1, 4) and subset.dtype == torch.float64
    assert torch.equal(subset[0], alone)
    both = ExampleRNG(3, 5, None).uniform(torch.tensor([0, 2]), 2, like)
    expected = [
        torch.rand(2, generator=torch.Generator().manual_seed(s), dtype=torch.float64)
        for s in (5, 7)
    ]
    assert torch.equal(both, torch.stack(expected))


def test_seeds_per_example_and_from_a_generator_are_reproducible():
    assert ExampleRNG(2, [4, 4], None).seeds == [4, 4]
    first = ExampleRNG(2, None, torch.Generator().manual_seed(1)).seeds
    again = ExampleRNG(2, None, torch.Generator().manual_seed(1)).seeds
    assert first == again and first[1] == first[0] + 1


@pytest.mark.parametrize(
    ("seed", "generator", "error"),
    [
        (1, torch.Generator(), ValueError),
        (-1, None, ValueError),
        ([1, 2, 3], None, ValueError),
        (1.5, None, ValueError),
        (None, "gen", TypeError),
    ],
)
def test_bad_seeds_are_refused(seed, generator, error):
    with pytest.raises(error):
        ExampleRNG(2, seed, generator)
