"""Text benchmark: SiMEC on token ids and in embedding space, on a tiny BERT (random weights).

Per example (batch 1), on `BertForSequenceClassification` built from a config (2 layers,
hidden 64, 16 tokens: n = 16 x 64 = 1024 embedding coordinates, 2 labels; no download):

1. attribution on the ids through the word-embedding layer: `LayerSiMECAttribution`
   relevance (target metric) and the ``boundary`` score, against Captum's
   `LayerIntegratedGradients` with 50 steps on the same model and ids, per example at batch
   1 and at batch 16 (the boundary walk's ~34 steps are sequential; LayerIG runs its 50
   points in one pass);
2. one SiMEC step in embedding space (`embedding_simec`; the slope of walk time over steps,
   both walks timed in turns) against the Jacobian floor: one Jacobian of the model on its
   embeddings (2 logits) by the fastest path; target: step <= 1.3 x floor + 0.5 ms;
3. `read_tokens` per saved point: nearest tokens (L2 and cosine, top-1) of the 16 positions,
   for the model's own 40-token vocabulary and for a BERT-base-sized one (30,522 x 64).

Run: ``.venv/bin/python benchmarks/bench_text.py [--quick]``. Needs the `text` extra. Prints
markdown tables and writes ``benchmarks/results/bench_text.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
from _common import (  # noqa: E402
    fmt_ms,
    fmt_ratio,
    interleaved,
    markdown_table,
    module_available,
    setup_torch,
    start_run,
    verdict,
)
from captum.attr import LayerIntegratedGradients  # noqa: E402

from captum_simec import LayerSiMECAttribution, select_output  # noqa: E402
from captum_simec.geometry import jacobian, layer_function  # noqa: E402
from captum_simec.text import embedding_simec, read_tokens  # noqa: E402

warnings.filterwarnings("ignore", message="Input Tensor 0 did not already require gradients")
LENGTH, HIDDEN, VOCAB = 16, 64, 40


def tiny_bert() -> torch.nn.Module:
    import transformers

    transformers.logging.set_verbosity_error()
    config = transformers.BertConfig(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=2 * HIDDEN,
        max_position_embeddings=LENGTH,
        num_labels=2,
    )
    torch.manual_seed(0)
    return transformers.BertForSequenceClassification(config).eval()


def bench_attribution(model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor, args) -> dict:
    embedding = model.get_input_embeddings()
    logits = select_output(model, "logits")
    ours = LayerSiMECAttribution(logits, embedding)
    theirs = LayerIntegratedGradients(logits, embedding)
    methods = {
        "relevance": lambda: ours.attribute(ids, target=1, additional_forward_args=(mask,)),
        "LayerIG-50": lambda: theirs.attribute(
            ids, baselines=torch.zeros_like(ids), target=1, additional_forward_args=(mask,)
        ),
        "boundary": lambda: ours.attribute(
            ids, target=1, additional_forward_args=(mask,), score="boundary"
        ),
    }
    timings = interleaved(methods, budget_s=args.budget, min_repeats=args.min_repeats)
    return {name: value["median"] / ids.shape[0] for name, value in timings.items()}


def bench_step(model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor, args) -> dict:
    embedding = model.get_input_embeddings()
    through, hidden, rest = layer_function(
        select_output(model, "logits"), embedding, (ids,), (mask,)
    )
    k1, k2 = (5, 25) if args.quick else (10, 60)

    def walk(steps: int) -> Any:
        return lambda: embedding_simec(
            model,
            embedding,
            ids,
            attention_mask=mask,
            additional_forward_args=(mask,),
            output="logits",
            steps=steps,
            step_size=0.01,
            seed=0,
            progress=False,
        )

    methods = {f"jac:{p}": (lambda p=p: jacobian(through, hidden, rest, method=p)) for p in
               ("replicate", "batched_grad")}  # fmt: skip
    methods |= {f"simec:{k1}": walk(k1), f"simec:{k2}": walk(k2)}
    timings = interleaved(methods, budget_s=3 * args.budget, min_repeats=args.min_repeats)
    median = {name: value["median"] for name, value in timings.items()}
    floors = {name.split(":")[1]: v for name, v in median.items() if name.startswith("jac:")}
    path = min(floors, key=floors.get)
    step = (median[f"simec:{k2}"] - median[f"simec:{k1}"]) / (k2 - k1)
    allowed = 1.3 * floors[path] + 0.5e-3
    return {"floor_path": path, "floor_s": floors[path], "step_s": step, "target": step <= allowed}


def bench_reader(model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor, args) -> dict:
    embedding = model.get_input_embeddings()
    saves = 20 if args.quick else 100
    walk = embedding_simec(
        model, embedding, ids, attention_mask=mask, additional_forward_args=(mask,),
        output="logits", steps=saves - 1, step_size=0.01, seed=0, progress=False,
    )  # fmt: skip
    large = torch.randn(30522, HIDDEN, generator=torch.Generator().manual_seed(0)) * 0.05
    large[:VOCAB] = embedding.weight.detach()
    methods = {
        f"{VOCAB} tokens": lambda: read_tokens(walk, embedding, ids, mask),
        "30,522 tokens": lambda: read_tokens(walk, large, ids, mask),
    }
    timings = interleaved(methods, budget_s=args.budget, min_repeats=args.min_repeats)
    return {name: value["median"] / saves for name, value in timings.items()} | {"saves": saves}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    args.budget, args.min_repeats = (2.0, 3) if args.quick else (6.0, 7)
    if not module_available("transformers"):
        print("## text: skipped (the text extra is not installed: pip install -e '.[text]')")
        return 0
    setup_torch(1)
    run = start_run("bench_text", args.quick)
    model = tiny_bert()
    generator = torch.Generator().manual_seed(1)
    all_ids = torch.randint(1, VOCAB, (16, LENGTH), generator=generator)
    all_mask = torch.ones_like(all_ids)
    all_mask[:, LENGTH - 3 :] = 0  # three padded positions
    ids, mask = all_ids[:1], all_mask[:1]
    attribution = {b: bench_attribution(model, all_ids[:b], all_mask[:b], args) for b in (1, 16)}
    step = bench_step(model, ids, mask, args)
    reader = bench_reader(model, ids, mask, args)

    rows = [
        [name, *(fmt_ms(attribution[b][name]) for b in (1, 16)),
         *(fmt_ratio(attribution[b]["LayerIG-50"] / attribution[b][name]) for b in (1, 16))]
        for name in attribution[1]
    ]  # fmt: skip
    print("### Attribution on ids (ms per example, CPU-time medians)\n")
    print(markdown_table(
        ["method", "batch 1", "batch 16", "LayerIG-50 / method, batch 1", "batch 16"], rows
    ))  # fmt: skip
    print("\n### One SiMEC step in embedding space (n = 16 x 64 = 1024), batch 1\n")
    print(markdown_table(
        ["step", "Jacobian floor (path)", "step / floor", "<= 1.3 floor + 0.5 ms"],
        [[fmt_ms(step["step_s"]), f"{fmt_ms(step['floor_s'])} ({step['floor_path']})",
          fmt_ratio(step["step_s"] / step["floor_s"]), verdict(step["target"])]],
    ))  # fmt: skip
    print(
        f"\n### read_tokens per saved point (16 positions, L2 + cosine; {reader['saves']} saves)\n"
    )
    print(markdown_table(
        ["vocabulary", "per saved point"],
        [[name, fmt_ms(s)] for name, s in reader.items() if name != "saves"],
    ))  # fmt: skip
    run.finish({"attribution": attribution, "step": step, "reader": reader})
    return 0


if __name__ == "__main__":
    sys.exit(main())
