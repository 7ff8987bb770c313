"""Numbers in figure titles and report tables."""

import math

from captum_simec.viz import format_value


def test_format_value():
    assert format_value(math.nan) == "n/a" and format_value(None) == "n/a"
    assert format_value(-math.inf) == "-inf" and format_value(12345.678) == "1.235e+04"
    assert format_value(False) == "no" and format_value(7) == "7"
