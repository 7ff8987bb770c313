"""The settings of a robustness audit: the values that determine its records, checked once.

They are stored with the records (``settings.json``) and a resumed audit must use the same
ones. The defaults are class attributes (``AuditSettings.simec_steps`` is 20, and so is
``RobustnessAudit.simec_steps``), read by the command line too.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from captum_simec._validation import check_choice, check_int, check_positive
from captum_simec.audit.attacks._inputs import NORMS
from captum_simec.explore import Box
from captum_simec.geometry import resolve_output_metric

__all__ = ["ATTACKS", "AuditSettings"]

ATTACKS = ("fgsm", "pgd", "deepfool")
_ATTACK_LOSSES = ("margin", "ce", "targeted")


def _check_domain(domain: Box | tuple[Any, Any] | None) -> Box | None:
    """A `Box` from None, a `Box` or `(lo, hi)`; the audit supports one input tensor."""
    if domain is None:
        return None
    if isinstance(domain, list):
        domain = tuple(domain)
    if isinstance(domain, tuple) and len(domain) == 2:
        domain = Box(*domain)
    if not isinstance(domain, Box):
        raise TypeError(
            f"`domain` must be None, a Box or a (lo, hi) pair, got {type(domain).__name__}."
        )
    if isinstance(domain.lower, tuple) or isinstance(domain.upper, tuple):
        raise ValueError(
            "`domain` holds one bound per input, but the audit takes a single input tensor: "
            "pass one (lo, hi) pair."
        )
    return domain


def _check_attacks(attacks: Iterable[str]) -> tuple[str, ...]:
    """The attacks to run, in the order of :data:`ATTACKS`."""
    if isinstance(attacks, str) or not isinstance(attacks, Iterable):
        raise TypeError(
            f"`attacks` must be a sequence drawn from {ATTACKS}, got {attacks!r}; pass () to "
            "skip the attacks."
        )
    attacks = tuple(attacks)
    unknown = sorted(set(attacks) - set(ATTACKS))
    if unknown:
        raise ValueError(
            f"`attacks` must be drawn from {ATTACKS}, got {unknown}; pass () to skip the attacks."
        )
    return tuple(a for a in ATTACKS if a in attacks)


def _check_eps_max(
    eps_max: Mapping[str, float] | None, attacks: tuple[str, ...], domain: Box | None
) -> dict[str, float] | None:
    """The largest attack radius per norm, or None when the domain's box provides it."""
    if eps_max is None:
        if attacks and domain is None:
            raise ValueError(
                "the attacks need a largest radius: pass `domain=(lo, hi)` (eps_max is then "
                "derived from the box) or `eps_max={'L2': ..., 'Linf': ...}`, or attacks=()."
            )
        return None
    if not isinstance(eps_max, Mapping):
        raise TypeError(
            f"`eps_max` must be a mapping {{'L2': ..., 'Linf': ...}}, got {type(eps_max).__name__}."
        )
    if set(eps_max) != set(NORMS):
        raise ValueError(f"`eps_max` must have the keys {NORMS}, got {sorted(eps_max)}.")
    return {k: check_positive(v, f"eps_max[{k!r}]") for k, v in eps_max.items()}


def fingerprint(value: Any) -> Any:
    """A JSON-compatible description of `value` that is the same in every process.

    Plain values stay themselves; a tensor becomes its shape, dtype and a digest of its
    values; a function its qualified name and a digest of its code, defaults and closure
    (not its memory address, which `repr` shows); any other object its type and
    fingerprinted attributes. A resumed audit compares the fingerprints of its settings.
    """
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, list | tuple):
        return [fingerprint(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): fingerprint(item) for key, item in value.items()}
    if isinstance(value, Tensor):
        data = value.detach().cpu().contiguous()
        digest = hashlib.sha256(data.numpy().tobytes() if data.numel() else b"").hexdigest()
        return f"tensor{tuple(data.shape)} {data.dtype} sha256:{digest[:16]}"
    return f"{_qualified_name(value)} sha256:{_digest(value)[:16]}"


def _qualified_name(value: Any) -> str:
    named = value if hasattr(value, "__qualname__") else type(value)
    return f"{getattr(named, '__module__', '?')}.{named.__qualname__}"


def _digest(value: Any, depth: int = 0) -> str:
    """sha256 of what defines `value`: code, defaults and closure of a function, the state
    of a bound method's object, the attributes of any other object (a few levels deep)."""
    parts: list[Any] = [_qualified_name(value)]
    if depth < 4:
        function = getattr(value, "__func__", value)
        code = getattr(function, "__code__", None)
        if code is not None:
            cells = [cell.cell_contents for cell in function.__closure__ or ()]
            parts += [_code(code), function.__defaults__, cells, getattr(value, "__self__", None)]
        elif hasattr(value, "__dict__") and not callable(getattr(value, "forward", None)):
            parts.append(sorted(vars(value).items()))
        parts = [_describe(part, depth) for part in parts]
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def _describe(part: Any, depth: int) -> Any:
    if isinstance(part, list | tuple):
        return [_describe(item, depth) for item in part]
    if part is None or isinstance(part, str | bool | int | float | bytes):
        return part
    if isinstance(part, Tensor):
        return fingerprint(part)
    return _digest(part, depth + 1)


def _code(code: Any) -> list[Any]:
    """A code object's bytecode, names and constants (nested code objects included)."""
    constants = [_code(c) if hasattr(c, "co_code") else repr(c) for c in code.co_consts]
    return [code.co_code, code.co_names, constants]


@dataclass(kw_only=True, eq=False)
class AuditSettings:
    """The settings of a :class:`~captum_simec.audit.RobustnessAudit` that determine its records.

    Each is described in :class:`~captum_simec.audit.RobustnessAudit`, which takes them as
    keyword arguments; they are validated on construction.

    Raises:
        TypeError: a setting of the wrong type.
        ValueError: a bad box (lo > hi), negative steps, non-positive step sizes, an unknown
            attack or attack loss, attacks without a domain or ``eps_max``.
    """

    domain: Box | tuple[Any, Any] | None = None
    output_metric: Any = "euclidean"
    simec_steps: int = 20
    simec_step_size: float = 0.05
    max_drift: float | None = None
    corrector: bool = False
    simexp_steps: int = 300
    simexp_step_size: float = 0.05
    attacks: Sequence[str] = ("fgsm", "pgd")
    pgd_steps: int = 20
    eps_max: Mapping[str, float] | None = None
    attack_rtol: float = 2.5e-4
    attack_loss: str = "margin"
    seed: int = 0
    rtol: float | None = None

    def __post_init__(self) -> None:
        self.domain = _check_domain(self.domain)
        resolve_output_metric(self.output_metric)  # validates early; the walks resolve it again
        self.simec_steps = check_int(self.simec_steps, "simec_steps", 0)
        self.simexp_steps = check_int(self.simexp_steps, "simexp_steps", 0)
        self.simec_step_size = check_positive(self.simec_step_size, "simec_step_size")
        self.simexp_step_size = check_positive(self.simexp_step_size, "simexp_step_size")
        if self.max_drift is not None:
            self.max_drift = check_positive(self.max_drift, "max_drift")
        self.corrector = bool(self.corrector)
        self.attacks = _check_attacks(self.attacks)
        self.pgd_steps = check_int(self.pgd_steps, "pgd_steps", 1)
        self.eps_max = _check_eps_max(self.eps_max, self.attacks, self.domain)
        self.attack_rtol = check_positive(self.attack_rtol, "attack_rtol")
        self.attack_loss = check_choice(self.attack_loss, "attack_loss", _ATTACK_LOSSES)
        self.seed = check_int(self.seed, "seed", 0)

    @property
    def settings(self) -> dict[str, Any]:
        """The settings that determine the records (JSON-compatible)."""

        def bound(value: Any) -> Any:
            return value.tolist() if isinstance(value, Tensor) else value

        return {
            "domain": None
            if self.domain is None
            else [bound(self.domain.lower), bound(self.domain.upper), self.domain.constraint],
            "output_metric": fingerprint(self.output_metric),
            "simec_steps": self.simec_steps,
            "simec_step_size": self.simec_step_size,
            "max_drift": self.max_drift,
            "corrector": self.corrector,
            "simexp_steps": self.simexp_steps,
            "simexp_step_size": self.simexp_step_size,
            "attacks": list(self.attacks),
            "pgd_steps": self.pgd_steps,
            "eps_max": self.eps_max,
            "attack_rtol": self.attack_rtol,
            "attack_loss": self.attack_loss,
            "seed": self.seed,
            "rtol": self.rtol,
        }

    def _bounds(self, x: Tensor) -> tuple[Tensor, Tensor] | None:
        """The domain's lower and upper bounds shaped like one example, or None."""
        if self.domain is None:
            return None
        bound = self.domain.bind((x.shape[1:],), x.dtype, x.device)
        return bound.lower.view(x.shape[1:]), bound.upper.view(x.shape[1:])

    def _eps_max(self, bounds: tuple[Tensor, Tensor] | None, n: int) -> dict[str, float]:
        """The largest attack radius per norm: given, or the box's width and diagonal."""
        if self.eps_max is not None:
            return dict(self.eps_max)
        assert bounds is not None  # guaranteed by __post_init__ when attacks run
        width = float((bounds[1] - bounds[0]).max())
        return {"Linf": width, "L2": width * math.sqrt(n)}

    def _target_for_metric(self, prediction: Tensor) -> Tensor | None:
        """The target of the output metrics that need one (the predicted class), else None."""
        metric = resolve_output_metric(self.output_metric)
        return prediction if metric.requires_target else None
