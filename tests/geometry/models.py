"""Small float64 models of every family the geometry core must handle (test fixtures)."""

import torch
from torch import nn


class TinyMLP(nn.Module):
    def __init__(self, n: int = 6, m: int = 4, head: str = "logits", act: type = nn.Tanh):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(n, 8), act(), nn.Linear(8, m))
        self.head = head

    def forward(self, x):
        y = self.body(x)
        if self.head == "log_softmax":
            return torch.log_softmax(y, dim=1)
        if self.head == "softmax":
            return torch.softmax(y, dim=1)
        return y


class TinyCNN(nn.Module):
    def __init__(self, m: int = 3):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 2, 3), nn.MaxPool2d(2), nn.ReLU(), nn.Conv2d(2, 3, 2), nn.AvgPool2d(1)
        )
        self.fc = nn.Linear(3 * 2 * 2, m)

    def forward(self, x):
        return self.fc(self.features(x).flatten(1))


class TinyResidual(nn.Module):
    def __init__(self, n: int = 5, m: int = 3):
        super().__init__()
        self.inner = nn.Sequential(nn.Linear(n, n), nn.GELU(), nn.Linear(n, n))
        self.out = nn.Linear(n, m)

    def forward(self, x):
        return self.out(x + self.inner(x))


class TinyRecurrent(nn.Module):
    def __init__(self, cell: str = "gru", d: int = 2, m: int = 3):
        super().__init__()
        rnn = nn.GRU if cell == "gru" else nn.LSTM
        self.rnn = rnn(d, 4, batch_first=True)
        self.out = nn.Linear(4, m)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.out(out[:, -1])


def model_zoo():
    """(name, model, input) triples in float64, eval mode, seeded."""
    torch.manual_seed(0)
    cases = [
        ("mlp", TinyMLP(), torch.randn(3, 6)),
        ("mlp_leaky", TinyMLP(act=nn.LeakyReLU), torch.randn(3, 6)),
        ("cnn", TinyCNN(), torch.randn(3, 1, 8, 8)),
        ("residual", TinyResidual(), torch.randn(3, 5)),
        ("gru", TinyRecurrent("gru"), torch.randn(3, 3, 2)),
        ("lstm", TinyRecurrent("lstm"), torch.randn(3, 3, 2)),
    ]
    return [(name, model.double().eval(), x.double()) for name, model, x in cases]
