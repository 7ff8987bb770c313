"""Walk options: one set of defaults for every public walk function, checked once."""

import dataclasses
import inspect

import pytest

from captum_simec.explore import preimage, simec, simexp
from captum_simec.explore.options import DEFAULTS, WalkOptions

FIELDS = {f.name for f in dataclasses.fields(WalkOptions)}


@pytest.mark.parametrize("function", [simec, simexp, preimage])
def test_public_signatures_show_the_shared_defaults(function):
    parameters = inspect.signature(function).parameters
    shared = FIELDS & set(parameters)
    assert len(shared) >= 10
    for name in shared - {"step_size", "corrector"}:  # preimage sets its own two
        assert parameters[name].default == getattr(DEFAULTS, name), name
    if function is simexp:  # the drift bound under its SiMExp name
        assert parameters["max_output_change"].default == DEFAULTS.max_drift


def test_collect_takes_the_options_among_the_arguments_then_the_overrides():
    options = WalkOptions.collect({"steps": 7, "direction": "isotropic", "seed": 3}, seed=4)
    assert options.steps == 7 and options.seed == 4
    assert options.step_size == DEFAULTS.step_size


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"steps": True}, TypeError, "`steps` must be an int"),
        ({"save_every": -1}, ValueError, "`save_every` must be a positive"),
        ({"step_size": "0.1"}, TypeError, "`step_size` must be a float"),
        ({"step_size": float("nan")}, ValueError, "`step_size`"),
        ({"on_rank_change": "halt"}, ValueError, "on_rank_change="),
        (
            {"max_drift": -1.0, "drift_reason": "max_output_change"},
            ValueError,
            "`max_output_change`",
        ),
        ({"progress": 1}, TypeError, "`progress`"),
    ],
)
def test_options_are_checked_on_construction(changes, error, match):
    with pytest.raises(error, match=match):
        WalkOptions(**changes)
