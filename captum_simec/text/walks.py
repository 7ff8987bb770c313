"""SiMEC and SiMExp in embedding space: walks of the input embeddings of token ids.

A text model `f(ids)` looks its ids up in an embedding, `e = E[ids]` (batch, T, H), and
runs the rest of the network on `e`: `f(ids) = F(e)`. These walks move `e` (the output of
the `embedding` module, substituted through a forward hook, as `inputs_embeds` would) with
the ids, the attention mask and every other argument held fixed; padded positions (and any
position not `movable`) never move. The points are read back as tokens by
`captum_simec.text.read_tokens`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from captum_simec import _compat
from captum_simec._outputs import OutputSpec
from captum_simec.attr._base import position_mask
from captum_simec.explore import Walk, simec, simexp
from captum_simec.geometry import layer_function

__all__ = ["embedding_simec", "embedding_simexp"]


def _check_ids(input_ids: Any) -> Tensor:
    """`input_ids` when it is an integer tensor (batch, T).

    Raises:
        TypeError: not an integer tensor.
        ValueError: not two-dimensional.
    """
    if not isinstance(input_ids, Tensor) or input_ids.is_floating_point():
        raise TypeError(
            "`input_ids` must be an integer tensor of token ids (batch, T), got "
            f"{getattr(input_ids, 'dtype', type(input_ids).__name__)}."
        )
    if input_ids.dim() != 2:
        raise ValueError(f"`input_ids` must be (batch, T), got shape {tuple(input_ids.shape)}.")
    return input_ids


#: the arguments of `embedding_simec` that define the space walked (the rest go to the walk).
_SPACE_ARGUMENTS = ("attention_mask", "movable", "additional_forward_args")


def _embedding_space(
    forward_func: Callable[..., Any],
    embedding: nn.Module,
    input_ids: Tensor,
    attention_mask: Tensor | None = None,
    movable: Tensor | None = None,
    additional_forward_args: Any = None,
) -> dict[str, Any]:
    """The model on the embeddings: its function, start points, fixed arguments and `free`."""
    if not isinstance(embedding, nn.Module):
        raise TypeError(f"`embedding` must be the model's embedding module, got {embedding!r}.")
    ids = _check_ids(input_ids)
    args = _compat.format_additional_forward_args(additional_forward_args)
    through, hidden, rest = layer_function(forward_func, embedding, (ids,), args)
    if movable is None:
        movable = attention_mask
    elif attention_mask is not None:
        position_mask(attention_mask, hidden)  # the same shape checks for both masks
        movable = movable.bool() & attention_mask.to(movable.device).bool()
    return {
        "forward_func": through,
        "inputs": hidden[0],
        "additional_forward_args": rest,
        "free": position_mask(movable, hidden),
    }


def embedding_simec(
    forward_func: Callable[..., Any],
    embedding: nn.Module,
    input_ids: Tensor,
    *,
    attention_mask: Tensor | None = None,
    movable: Tensor | None = None,
    additional_forward_args: Any = None,
    output: OutputSpec = None,
    **options: Any,
) -> Walk:
    """SiMEC in embedding space: a random walk of the token embeddings inside the class.

    Each step moves the embeddings `e` (batch, T, H) along the null space of the pullback
    metric of `F`, the model from its embeddings on, so the output stays fixed to first order
    (`captum_simec.explore.simec`); ids and masks stay fixed.

    Args:
        forward_func: the model on token ids, `forward_func(input_ids, *additional_args)`.
        embedding: the module that turns ids into vectors, whose output the walk moves:
            ``model.get_input_embeddings()`` for Hugging Face models (the same space as
            ``inputs_embeds`` and as the rows of its weight, which `read_tokens` reads).
        input_ids: token ids (batch, T).
        attention_mask: (batch, T), 1 for a token, 0 for padding: padded positions never
            move. The model gets it only through `additional_forward_args`.
        movable: (batch, T), the positions that may move (e.g. all but [CLS] and [SEP]);
            default: every token (the `attention_mask`).
        additional_forward_args: the model's other arguments (e.g. the attention mask), as
            in Captum.
        output: the tensor to explain when the model returns a ModelOutput, dict or tuple
            (``"logits"``, a position or a callable).
        **options: the options of `simec` (`steps`, `step_size` in embedding units,
            `output_metric`, `target`, `seed`, `corrector`, ...).

    Returns:
        A `Walk` whose points are embeddings (saves, batch, T, H).

    Raises:
        TypeError: `input_ids` that are not integers, `embedding` not a module.
        ValueError: masks of a shape other than (batch, T), and what `simec` refuses.
    """
    space = _embedding_space(
        forward_func, embedding, input_ids, attention_mask, movable, additional_forward_args
    )
    return simec(**space, output=output, **options)


def embedding_simexp(
    forward_func: Callable[..., Any], embedding: nn.Module, input_ids: Tensor, **options: Any
) -> Walk:
    """SiMExp in embedding space: a walk of the token embeddings across classes.

    The arguments are those of `embedding_simec` (`attention_mask`, `movable`,
    `additional_forward_args`); the other `options` are those of `simexp` (`output`, `mode`,
    `steps`, `step_size`, `target`, `target_class`, ...). ``mode="leave_class"`` walks to
    the nearest change of prediction along the margin's gradient and stops just across the
    boundary; for (batch, T, V) language-model logits pass ``target=(t, token)``: the
    decision is the argmax at position t.

    Returns:
        A `Walk` whose points are embeddings (saves, batch, T, H).
    """
    space = {name: options.pop(name, None) for name in _SPACE_ARGUMENTS}
    return simexp(**_embedding_space(forward_func, embedding, input_ids, **space), **options)
