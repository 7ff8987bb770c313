"""Every score by name: the flat maps of a `ScoreRequest`, for the input and layer classes."""

from __future__ import annotations

from torch import Tensor

from captum_simec.attr._base import GEOMETRIC_SCORES, PATH_SCORES, ScoreRequest
from captum_simec.attr._path_scores import boundary_score
from captum_simec.attr._spectrum_scores import spectrum_scores
from captum_simec.attr._walk_scores import walk_score

__all__ = ["score_maps"]


def score_maps(request: ScoreRequest) -> tuple[Tensor, Tensor | None]:
    """Flat scores (batch, n) of `request.score`, and the convergence delta of a path score
    (`sum_i a_i - (f_t(x) - f_t(x_end))`, batch) or None."""
    if request.score in GEOMETRIC_SCORES:
        return spectrum_scores(request)[0], None
    if request.score in PATH_SCORES:
        return boundary_score(request)
    return walk_score(request), None
