"""Rank tolerance benchmark: the error of the computed factor in float32, bfloat16 and float16.

The default rank tolerance is `c sqrt(p) eps(dtype) s_max` (docs/method.md, "The rank
tolerance"). This script measures the constant: on the reference models of
`captum_simec.zoo` (trained digits CNN, MLPs with four activations, a residual CNN with
batch norm, ResNet-18-like at 64x64 and 224x224, GRU, LSTM and the CCPP residual LSTM) it
computes `A = J` with the same weights in each dtype and in float64 (taken as exact) and
reports, over the examples,

- `c_E = ||A - A_64||_2 / (sqrt(p) eps s_max)`, the spectral-norm error of the factor, which
  bounds how far any singular value moves (Weyl), and
- `c_s = max_k |s_k - s_k,64| / (sqrt(p) eps s_max)`, how far they actually moved,

and whether the default rank agrees with float64's. The default takes `c = 10`
(`captum_simec.geometry.tolerance.RANK_SAFETY`); the table says how much margin that leaves.

Run: ``.venv/bin/python benchmarks/bench_tolerance.py [--quick]``. Prints a markdown table and
writes ``benchmarks/results/bench_tolerance.json``.
"""

from __future__ import annotations

import argparse
import copy
import math
from collections.abc import Callable
from typing import Any

import torch
from _common import markdown_table, setup_torch, start_run

from captum_simec.geometry import pullback_spectrum
from captum_simec.geometry.tolerance import RANK_SAFETY

DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def reference_models(quick: bool) -> list[tuple[str, Callable[[], tuple[Any, torch.Tensor]]]]:
    """(label, builder) pairs; each builder returns a float32 model in eval mode and inputs."""
    from captum_simec import zoo as models

    generator = torch.Generator().manual_seed(0)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator)

    def digits() -> tuple[Any, torch.Tensor]:
        model, split = models.fit_digits_cnn(seed=0, progress=False)
        return model, split.x_test[:8]

    def mlp(activation: str) -> Callable[[], tuple[Any, torch.Tensor]]:
        return lambda: (
            models.MLP(784, (64, 64), 10, activation=activation, head="log_softmax", seed=0),
            randn(8, 784),
        )

    cases = [
        ("digits CNN, log-softmax (trained)", digits),
        ("MLP 784-64-64-10 ReLU, log-softmax", mlp("relu")),
        ("MLP 784-64-64-10 tanh, log-softmax", mlp("tanh")),
        ("MLP 784-64-64-10 sigmoid, log-softmax", mlp("sigmoid")),
        ("MLP 784-64-64-10 GELU, log-softmax", mlp("gelu")),
        ("MLP 784-256x4-10 ReLU", lambda: (models.MLP(784, (256,) * 4, 10, seed=0), randn(8, 784))),
        ("ResidualCNN 3x32x32", lambda: (models.ResidualCNN(3, 10, seed=0), randn(4, 3, 32, 32))),
        ("SequenceGRU 20x8", lambda: (models.SequenceGRU(8, 32, 3, seed=0), randn(8, 20, 8))),
        (
            "SequenceLSTM 20x8, 2 layers",
            lambda: (models.SequenceLSTM(8, 32, 3, num_layers=2, seed=0), randn(8, 20, 8)),
        ),
        ("CCPP residual LSTM", lambda: (models.PowerPlantResidualLSTM(seed=0), torch.rand(8, 4))),
    ]
    if not quick:
        cases += [
            (
                "ResNet-18-like 3x64x64, 100 classes, log-softmax",
                lambda: (
                    models.ResNet18Like(num_classes=100, head="log_softmax", seed=0),
                    randn(2, 3, 64, 64),
                ),
            ),
            (
                "ResNet-18-like 3x224x224, 10 classes",
                lambda: (models.ResNet18Like(num_classes=10, seed=0), randn(1, 3, 224, 224)),
            ),
        ]
    return cases


def measure(model: Any, x: torch.Tensor, dtype: torch.dtype, exact: Any) -> dict[str, Any]:
    """`c_E`, `c_s` and the ranks of `model` run in `dtype` against the float64 `exact`."""
    try:
        spectrum = pullback_spectrum(copy.deepcopy(model).to(dtype), x.to(dtype))
    except (RuntimeError, NotImplementedError) as error:  # a kernel missing in this dtype
        return {"error": f"{type(error).__name__}: {error}"[:120]}
    p = exact.factor.shape[1]
    scale = math.sqrt(p) * torch.finfo(dtype).eps * exact.singular_values[:, 0]
    error = torch.linalg.matrix_norm(spectrum.factor.double() - exact.factor, ord=2)
    moved = (spectrum.singular_values - exact.singular_values).abs().amax(dim=1)
    return {
        "c_E": (error / scale).max().item(),
        "c_s": (moved / scale).max().item(),
        "rank": spectrum.rank.tolist(),
        "rank_float64": exact.rank.tolist(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small models only (~1 min)")
    args = parser.parse_args(argv)
    setup_torch(1)
    run = start_run("bench_tolerance", args.quick, "float32/bfloat16/float16 against float64")
    records, rows = [], []
    for label, build in reference_models(args.quick):
        model, x = build()
        model = model.eval()
        exact = pullback_spectrum(copy.deepcopy(model).double(), x.double())
        p, n = exact.factor.shape[1:]
        record = {"model": label, "p": p, "n": n}
        for dtype in DTYPES:
            record[str(dtype)] = measure(model, x, dtype, exact)
        records.append(record)
        cells = [label, p, n]
        for dtype in DTYPES:
            result = record[str(dtype)]
            if "error" in result:
                cells.append("n/a (kernel missing)")
                continue
            agree = "yes" if result["rank"] == result["rank_float64"] else "no"
            cells.append(f"{result['c_E']:.2f} / {result['c_s']:.2f} / {agree}")
        rows.append(cells)
        print(f"  {label}: done", flush=True)
    headers = ["model", "p", "n", *(f"{str(d)[6:]}: c_E / c_s / rank = float64" for d in DTYPES)]
    print("\n### Error of the computed factor, in units of sqrt(p) eps(dtype) s_max\n")
    print(markdown_table(headers, rows))
    worst = {
        str(d)[6:]: max(r[str(d)]["c_E"] for r in records if "error" not in r[str(d)])
        for d in DTYPES
    }
    print(
        f"\nWorst c_E: {', '.join(f'{k} {v:.2f}' for k, v in worst.items())}; the default "
        f"tolerance uses c = {RANK_SAFETY:g}, so float32 keeps a margin of "
        f"{RANK_SAFETY / worst['float32']:.1f}x. A rank that differs from float64's in "
        "bfloat16/float16 is a direction those dtypes cannot resolve (they warn when it lies "
        "above their rounding level)."
    )
    run.finish({"records": records, "worst_c_E": worst, "rank_safety": RANK_SAFETY})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
