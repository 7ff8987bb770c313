"""Walks inside (SiMEC) and across (SiMExp) the equivalence classes of a model's inputs."""

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
