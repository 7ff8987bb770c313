"""Recurrent reference models: sequence classifiers and the power-plant regressor (paper III).

``torch.func`` support differs between them (measured with torch 2.13 on CPU, see each
docstring); plain autograd always works, which is the Jacobian path the library falls back to.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from captum_simec.zoo.models import _Classifier, _seeded

__all__ = ["PowerPlantResidualLSTM", "SequenceGRU", "SequenceLSTM"]


class _SequenceClassifier(_Classifier):
    """Shared logic and constructor of :class:`SequenceGRU` and :class:`SequenceLSTM`."""

    _rnn_type: type[nn.RNNBase]

    def __init__(
        self,
        input_size: int,
        hidden_size: int = 32,
        num_classes: int = 3,
        num_layers: int = 1,
        head: str = "logits",
        seed: int | None = None,
    ) -> None:
        super().__init__(head)
        with _seeded(seed):
            self.rnn = self._rnn_type(input_size, hidden_size, num_layers, batch_first=True)
            self.fc = nn.Linear(hidden_size, num_classes)

    def _initial_state(self, x: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        raise NotImplementedError  # pragma: no cover

    def _last_hidden(self, state: Tensor | tuple[Tensor, Tensor]) -> Tensor:
        raise NotImplementedError  # pragma: no cover

    def logits(self, x: Tensor) -> Tensor:
        """Raw class scores from the last layer's final hidden state.

        Args:
            x: ``(B, T, input_size)``, or ``(T, input_size)`` for one unbatched sequence.

        Returns:
            ``(B, num_classes)``, or ``(num_classes,)`` for an unbatched input.
        """
        _, state = self.rnn(x, self._initial_state(x))
        return self.fc(self._last_hidden(state)[-1])

    def _state_shape(self, x: Tensor) -> tuple[int, ...]:
        layers, hidden = self.rnn.num_layers, self.rnn.hidden_size
        return (layers, hidden) if x.dim() == 2 else (layers, x.shape[0], hidden)


class SequenceGRU(_SequenceClassifier):
    """Classify a fixed-length sequence ``(B, T, d)`` from a GRU's last hidden state.

    The initial state is an explicit zero tensor built from the input (``x.new_zeros``), so
    it follows the input's dtype, device and ``torch.func`` batching.

    ``torch.func`` support measured with torch 2.13 on CPU: ``vmap(jacrev(f))``,
    ``vmap(jacfwd(f))`` and ``vmap`` of a ``vjp`` all work, as does plain autograd; but a
    forward-only ``vmap(model)`` fails ("Batching rule not implemented for aten::gru.input"),
    so evaluate batches with an ordinary call.

    Args:
        input_size: Features per time step ``d``.
        hidden_size: GRU width.
        num_classes: Number of classes.
        num_layers: Stacked GRU layers.
        head: ``"logits"``, ``"softmax"`` or ``"log_softmax"``.
        seed: Seed of the initial weights; ``None`` uses the global RNG.
    """

    _rnn_type = nn.GRU

    def _initial_state(self, x: Tensor) -> Tensor:
        return x.new_zeros(self._state_shape(x))

    def _last_hidden(self, state: Tensor) -> Tensor:
        return state


class SequenceLSTM(_SequenceClassifier):
    """Classify a fixed-length sequence ``(B, T, d)`` from an LSTM's last hidden state.

    The initial ``(h, c)`` are explicit zero tensors built from the input (``x.new_zeros``).

    ``torch.func`` support measured with torch 2.13 on CPU (float32): ``vmap(jacrev(f))`` and
    ``vmap`` of a ``vjp`` work (torch warns of a slow fallback for ``aten::mkldnn_rnn_layer``),
    as does plain autograd; ``jacfwd`` fails (no forward-mode AD for ``mkldnn_rnn_layer``) and
    a forward-only ``vmap(model)`` fails ("Batching rule not implemented for aten::lstm.input").
    Use reverse mode.

    Args:
        input_size: Features per time step ``d``.
        hidden_size: LSTM width.
        num_classes: Number of classes.
        num_layers: Stacked LSTM layers.
        head: ``"logits"``, ``"softmax"`` or ``"log_softmax"``.
        seed: Seed of the initial weights; ``None`` uses the global RNG.
    """

    _rnn_type = nn.LSTM

    def _initial_state(self, x: Tensor) -> tuple[Tensor, Tensor]:
        shape = self._state_shape(x)
        return x.new_zeros(shape), x.new_zeros(shape)

    def _last_hidden(self, state: tuple[Tensor, Tensor]) -> Tensor:
        return state[0]


class PowerPlantResidualLSTM(nn.Module):
    """The small residual regressor with an LSTM-cell stage (paper III §7.3, power plant).

    ``e = tanh(W_in x)``; an ``nn.LSTMCell`` runs ``steps`` times on the constant input ``e``
    from zero ``(h, c)`` (built with ``new_zeros``); then ``z = h + e`` (residual) and
    ``y = W_out tanh(z)``. Every nonlinearity is smooth (tanh, sigmoid), so the Jacobian is
    continuous. Works with ``vmap(jacrev)``, ``vmap(jacfwd)`` and plain autograd.

    Args:
        in_features: Number of inputs (4 for CCPP).
        hidden: Width of the embedding and of the LSTM cell.
        steps: Number of LSTM-cell steps.
        seed: Seed of the initial weights; ``None`` uses the global RNG.

    Shape:
        Input ``(B, in_features)``, output ``(B, 1)``; an unbatched ``(in_features,)`` input
        gives ``(1,)``.
    """

    def __init__(
        self, in_features: int = 4, hidden: int = 16, steps: int = 3, seed: int | None = None
    ) -> None:
        super().__init__()
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        self.steps = steps
        with _seeded(seed):
            self.embed = nn.Linear(in_features, hidden)
            self.cell = nn.LSTMCell(hidden, hidden)
            self.out = nn.Linear(hidden, 1)

    def forward(self, x: Tensor) -> Tensor:
        """Predicted (standardised) target, shape ``(B, 1)``."""
        e = torch.tanh(self.embed(x))
        h, c = e.new_zeros(e.shape), e.new_zeros(e.shape)
        for _ in range(self.steps):
            h, c = self.cell(e, (h, c))
        return self.out(torch.tanh(h + e))
