"""Walks inside (SiMEC) and across (SiMExp) the equivalence classes of a model's inputs.

Public: `simec`, `simexp`, `preimage`, their result `Walk` (and `Preimage`), the domain `Box`
and the `Corrector`. The walk loop (`_walker`), its direction policies (`_policy`,
`_directions`), per-example randomness (`_rng`) and records (`_record`) are internal.
"""

from captum_simec.explore.constraints import Box
from captum_simec.explore.corrector import Corrector
from captum_simec.explore.preimage import Preimage, preimage
from captum_simec.explore.simec import simec
from captum_simec.explore.simexp import simexp
from captum_simec.explore.walk import RankChangeWarning, Walk

__all__ = [
    "Box",
    "Corrector",
    "Preimage",
    "RankChangeWarning",
    "Walk",
    "preimage",
    "simec",
    "simexp",
]
