"""The tensor to explain, from whatever a model returns: `select_output` and `check_output`.

Hugging Face models return a `ModelOutput` (a dict whose values are also attributes and
positions), other models a dict, a tuple or a `Future`. Every entry point takes ``output=``:
a key or attribute name (``output="logits"``), a position (``output=0``), or a callable of
the raw output (``output=lambda out: out.logits[:, -1]``); `select_output(model, output)`
wraps a model the same way for use anywhere else (Captum's own methods included). A model
that returns anything but one tensor, without ``output=``, gets the same error from every
entry point (`check_output`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch import Tensor

__all__ = ["OutputSpec", "SelectOutput", "check_output", "select_output"]

#: what ``output=`` accepts: None (the model returns the tensor), a key or attribute name,
#: a position, or a callable of the model's raw output.
OutputSpec = str | int | Callable[[Any], Any] | None

_HOW = (
    "choose the tensor to explain with `output=`: a key or attribute (output='logits'), a "
    "position (output=0) or a callable of the output (output=lambda out: out.logits); or "
    "wrap the model yourself: captum_simec.select_output(model, 'logits'), or "
    "lambda *args: model(*args).logits"
)


def _describe(value: Any) -> str:
    """`value` in a few words, with the keys or element types a user could pick from."""
    kind = type(value).__name__
    if isinstance(value, Mapping):
        return f"a {kind} with keys {list(value.keys())}"
    if isinstance(value, tuple | list):
        parts = [
            f"tensor{tuple(v.shape)}" if isinstance(v, Tensor) else type(v).__name__
            for v in value[:6]
        ]
        more = ", ..." if len(value) > 6 else ""
        return f"a {kind} of {len(value)} ({', '.join(parts)}{more})"
    return f"a {kind}"


def check_output(value: Any, batch: int) -> Tensor:
    """`value` when it is one floating-point tensor whose dim 0 is the batch of `batch`.

    Raises:
        TypeError: not a tensor (a ModelOutput, dict, tuple, Future or number: the message
            names ``output=`` and the wrapper alternative), or not floating point.
        ValueError: a scalar, or a tensor without the batch as dim 0.
    """
    if not isinstance(value, Tensor):
        raise TypeError(f"forward_func returned {_describe(value)}, not a tensor: {_HOW}.")
    if value.dim() == 0 or value.shape[0] != batch:
        raise ValueError(
            f"forward_func returned shape {tuple(value.shape)} for a batch of {batch}; the "
            "output must keep the batch as dim 0 (one output per example): do not reduce "
            "over the batch, and return per-example outputs."
        )
    if not value.is_floating_point():
        raise TypeError(
            f"forward_func returned dtype {value.dtype}; it must return floats (logits or "
            "log-probabilities, not class indices)."
        )
    return value


def _pick(value: Any, output: str | int) -> Any:
    """`value[output]` for a key or position, `getattr(value, output)` for an attribute."""
    if isinstance(value, Mapping) and output in value:
        return value[output]
    if isinstance(output, str) and not isinstance(value, Mapping) and hasattr(value, output):
        return getattr(value, output)
    if isinstance(output, int) and isinstance(value, Mapping) and hasattr(value, "to_tuple"):
        value = value.to_tuple()  # a Hugging Face ModelOutput: positions of its set fields
    positions = len(value) if isinstance(value, tuple | list) else 0
    if isinstance(output, int) and -positions <= output < positions:
        return value[output]
    raise ValueError(
        f"output={output!r} is not in what forward_func returned, {_describe(value)}: pass "
        "one of its keys, attributes or positions, or a callable of the output."
    )


class SelectOutput:
    """`forward_func` followed by picking the tensor `output` from its result.

    An adapter: it keeps the model as `.forward_func`, so eval-mode checks and the Jacobian
    path's cache see the module behind it.

    Args:
        forward_func: the model or function.
        output: a key or attribute name, a position, or a callable of the raw output.

    Raises:
        TypeError: `output` is none of those.
    """

    def __init__(self, forward_func: Callable[..., Any], output: str | int | Callable) -> None:
        if isinstance(output, bool) or not (isinstance(output, str | int) or callable(output)):
            raise TypeError(
                "`output` must be a key or attribute name (str), a position (int) or a "
                f"callable of the model's output, got {type(output).__name__}."
            )
        self.forward_func = forward_func
        self.output = output

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        value = self.forward_func(*args, **kwargs)
        return self.output(value) if callable(self.output) else _pick(value, self.output)

    def __repr__(self) -> str:
        return f"SelectOutput({self.forward_func!r}, output={self.output!r})"


def select_output(forward_func: Callable[..., Any], output: OutputSpec) -> Callable[..., Any]:
    """`forward_func` returning the tensor `output` picks from its result (itself for None).

    For any method that expects a model returning one tensor, e.g. Captum's
    ``LayerIntegratedGradients(select_output(model, "logits"), model.bert.embeddings)``.

    Args:
        forward_func: the model or function.
        output: None, a key or attribute name (``"logits"``), a position (``0``), or a
            callable of the raw output.

    Raises:
        TypeError: an `output` of another type.
    """
    return forward_func if output is None else SelectOutput(forward_func, output)
