"""Walks inside (SiMEC) and across (SiMExp) the equivalence classes of a model's inputs.

Public: `simec`, `simexp`, `preimage`, their result `Walk` (and `Preimage`), the domain `Box`
and the `Corrector`; `boundary_path`, the target's gradient integrated along the SiMExp walk
out of the class (its result `BoundaryPath`; behind ``score="boundary"``). The walk loop
(`_walker`), its direction policies (`_policy`, `_directions`, `_boundary`), per-example
randomness (`_rng`) and records (`_record`) are internal.
"""

from captum_simec.explore.boundary import BoundaryPath, boundary_path
from captum_simec.explore.constraints import Box
from captum_simec.explore.corrector import Corrector
from captum_simec.explore.preimage import Preimage, preimage
from captum_simec.explore.simec import simec
from captum_simec.explore.simexp import simexp
from captum_simec.explore.walk import RankChangeWarning, Walk

__all__ = [
    "BoundaryPath",
    "Box",
    "Corrector",
    "Preimage",
    "RankChangeWarning",
    "Walk",
    "boundary_path",
    "preimage",
    "simec",
    "simexp",
]
