"""The ``captum-simec`` command: ``demo``, ``audit`` and ``explore``.

Examples::

    captum-simec demo --out demo_output
    captum-simec audit --model my_models.py:make_model --state-dict weights.pt \\
        --data test.pt --box 0 1 --out audit_output
    torchrun --nproc_per_node 4 -m captum_simec.cli audit --model pkg.models:Net --data test.pt
    captum-simec explore --model net.ts.pt --data test.npz --walk simexp --examples 2

Errors in the arguments (a model that cannot be imported, a factory that is not callable,
data without the expected keys or a batch dimension, inputs the model rejects, labels out
of the model's range, data outside --box, an --out folder that holds another audit) end
the command with exit code 2 and a one-line message in the command's words. Any other
error is a bug (ours or the model's) and shows its traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from captum_simec.audit.robustness import RobustnessAudit
from captum_simec.audit.store import ChangedSettingsError, ExistingAuditError
from captum_simec.cli_inputs import UsageError, fit_model_to_data, load_data, load_model
from captum_simec.explore import Box
from captum_simec.geometry import model_outputs, resolve_output_metric

__all__ = ["build_parser", "main"]

_METRICS = ("euclidean", "fisher", "margin", "target", "topk")
_AUDIT_EXAMPLES = """examples:
  captum-simec audit --model my_models.py:make_model --state-dict weights.pt \\
      --data test.pt --box 0 1 --out audit_output
  torchrun --nproc_per_node 4 -m captum_simec.cli audit --model pkg.models:Net \\
      --data test.npz --box 0 1 --out audit_output
  an interrupted audit continues with the same command plus --resume
"""


def _box(args: argparse.Namespace, x: Tensor) -> tuple[float | Tensor, float | Tensor]:
    """The input domain: --box, or the data's range (per column for tabular (N, F) data).

    Raises:
        UsageError: LO >= HI, or data outside --box (beyond rounding).
    """
    if args.box is None:
        if x.dim() == 2:  # tabular: each column has its own range (and units)
            low, high = x.amin(dim=0), x.amax(dim=0)
            print(
                f"box: the data's range per feature ({x.shape[1]} features, widths "
                f"{float((high - low).min()):.4g} to {float((high - low).max()):.4g}; "
                "set one for all with --box LO HI)"
            )
            return low, high
        low, high = float(x.min()), float(x.max())
        print(f"box: [{low:.4g}, {high:.4g}] (the data's range; set it with --box LO HI)")
        return low, high
    low, high = args.box
    if not low < high:
        raise UsageError(f"--box {low} {high}: LO must be smaller than HI.")
    outside = Box(low, high).bind((x.shape[1:],), x.dtype, x.device).outside(x.flatten(1))
    if outside.any():
        examples = outside.nonzero().flatten().tolist()
        raise UsageError(
            f"--data: {len(examples)} example(s) lie outside --box {low:g} {high:g} (e.g. "
            f"examples {examples[:5]}, with values from {float(x.min()):.4g} to "
            f"{float(x.max()):.4g}); widen --box, or leave it out to use the data's range."
        )
    return low, high


def _progress(args: argparse.Namespace) -> bool | None:
    return False if args.no_progress else None


def _warn(args: argparse.Namespace, message: str) -> None:
    print(f"captum-simec {args.command}: warning: {message}", file=sys.stderr)


def _model_and_data(args: argparse.Namespace) -> tuple[Callable[..., Tensor], Tensor, Tensor]:
    """The model (eval mode), the inputs in its dtype and the labels (checked against it)."""
    model = load_model(args.model, args.state_dict)
    if args.state_dict is None and not isinstance(model, torch.jit.ScriptModule):
        _warn(
            args,
            f"no --state-dict: using the weights {args.model}() returns as they are (random "
            "initial weights, unless the factory loads trained ones).",
        )
    x, y = load_data(args.data)
    return model, fit_model_to_data(model, x, y), y


# ----------------------------------------------------------------------------- commands


def _cmd_demo(args: argparse.Namespace) -> int:
    from captum_simec.demo import run_demo

    run_demo(args.out, quick=args.quick, seed=args.seed, progress=_progress(args))
    return 0


def _cmd_audit(args: argparse.Namespace) -> int:
    from captum_simec.audit.distributed import audit_distributed
    from captum_simec.report import write_audit_report

    model, x, y = _model_and_data(args)
    if args.limit is not None:
        x, y = x[: args.limit], None if y is None else y[: args.limit]
    domain = _box(args, x)
    audit = RobustnessAudit(
        model,
        domain=domain,
        output_metric=args.metric,
        simec_steps=args.simec_steps,
        simec_step_size=args.simec_step_size or args.step_size,
        max_drift=args.max_drift,
        corrector=args.corrector,
        simexp_steps=args.simexp_steps,
        simexp_step_size=args.simexp_step_size or args.step_size,
        attacks=() if args.no_attacks else tuple(args.attacks),
        pgd_steps=args.pgd_steps,
        seed=args.seed,
        progress=_progress(args),
    )
    dataset = TensorDataset(x) if y is None else TensorDataset(x, y)
    loader = DataLoader(dataset, batch_size=args.batch_size)
    start = time.perf_counter()
    try:
        result = audit_distributed(
            audit, loader, args.out, batch_size=args.batch_size, resume=args.resume
        )
    except ExistingAuditError as error:
        raise UsageError(
            f"--out {args.out} already holds {error.count} audited examples: add --resume to "
            "continue that audit, or choose another --out."
        ) from error
    except ChangedSettingsError as error:
        raise UsageError(
            f"--resume: {args.out} was audited with other settings ({', '.join(error.changed)}); "
            "resume with the options of that audit, or choose another --out."
        ) from error
    if result is None:  # a torchrun rank other than 0: rank 0 reports
        return 0
    seconds = time.perf_counter() - start
    files = write_audit_report(result, args.out, title=f"Robustness audit of {args.model}")
    overall = result.summary()["overall"]
    audited = result.timings.get("examples", 0.0)
    print(
        f"audited {int(audited)} new examples in {seconds:.1f} s "
        f"({audited / max(seconds, 1e-9):.2f} examples/s); {len(result)} in the table"
    )
    print(f"accuracy {overall['accuracy']:.3f}, SiMExp flip rate {overall['flip_rate']:.3f}")
    print(
        f"rank: median null dimension {overall['null_dim']['median']:.4g}, spectral gap "
        f"{overall['spectral_gap']['median']:.3g}, smallest rank margin "
        f"{float(result.column('rank_margin').min()):.3g} (near 1: a close call)"
    )
    print(
        f"median flip distance L2 {overall['flip_l2']['median']:.4g}, "
        f"PGD L2 eps {overall['pgd_l2_eps']['median']:.4g}, "
        f"ratio {overall['ratio_l2']['median']:.3g}; "
        f"L-inf ratio {overall['ratio_linf']['median']:.3g}"
    )
    print(f"report: {files.html.resolve()}")
    return 0


def _cmd_explore(args: argparse.Namespace) -> int:
    from captum_simec.explore import simec, simexp
    from captum_simec.report import Report
    from captum_simec.viz import plot_image_strip, plot_traces

    model, x, _ = _model_and_data(args)
    x = x[: args.examples]
    domain = _box(args, x)
    needs_target = resolve_output_metric(args.metric).requires_target
    common = {
        "steps": args.steps,
        "step_size": args.step_size,
        "output_metric": args.metric,
        "target": _predictions(model, x) if needs_target else None,  # as the audit does
        "domain": domain,
        "seed": args.seed,
        "progress": _progress(args),
    }
    if args.walk == "simec":
        walk = simec(model, x, corrector=args.corrector, **common)
    else:
        walk = simexp(model, x, mode=args.mode, **common)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    records = walk.to_records()
    (out / "walk.json").write_text(json.dumps(records, indent=1, default=str))
    report = Report(f"{walk.kind} walk of {args.model}")
    report.table(records)
    image_like = x.dim() == 4 or (x.dim() == 3 and x.shape[1] > 4)
    for example in range(walk.batch_size):
        if image_like:
            report.figure(plot_image_strip(walk, example), f"strip-{example}")
    report.figure(plot_traces(walk), "traces", "Output drift and rank along the walk.")
    files = report.write(out)
    for record in records:
        print(
            f"example {record['example']}: stopped after {record['stopped_at']} steps "
            f"({record['stop_reason']}), path {record['path_length']:.4g}, max drift "
            f"{record['max_drift']:.3g}; rank {record['start_rank']} (spectral gap "
            f"{record['start_spectral_gap']:.3g}) -> {record['final_rank']} "
            f"(gap {record['final_spectral_gap']:.3g})"
        )
    print(f"report: {files.html.resolve()}")
    return 0


def _predictions(model: Callable[..., Tensor], x: Tensor) -> Tensor:
    return model_outputs(model, (x,)).argmax(dim=1)


# ----------------------------------------------------------------------------- parser


def _number(kind: type, low: float, strict: bool = False) -> Callable[[str], float]:
    """An argparse type: a `kind` (int or float) >= `low` (> `low` when `strict`)."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not {'an int' if kind is int else 'a number'}"
            ) from None
        if value < low or (strict and value == low):
            bound = f"> {low:g}" if strict else f">= {low:g}"
            raise argparse.ArgumentTypeError(f"{text} must be {bound}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


_COUNT = _number(int, 0)  # steps: 0 skips a stage
_POSITIVE_INT = _number(int, 1)
_POSITIVE = _number(float, 0.0, strict=True)


def _add_model_data(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model and data")
    group.add_argument(
        "--model",
        required=True,
        metavar="SPEC",
        help="MODULE:FACTORY (dotted module or path/to/file.py; the factory is called with no "
        "arguments and returns an nn.Module) or a TorchScript file",
    )
    group.add_argument("--state-dict", metavar="FILE", help="weights to load into the model")
    group.add_argument(
        "--data",
        required=True,
        metavar="FILE",
        help=".pt or .npz with inputs (key x or inputs, batch first, floats) and optional "
        "labels (key y or labels)",
    )
    group.add_argument(
        "--box",
        nargs=2,
        type=float,
        metavar=("LO", "HI"),
        help="the input domain [LO, HI] (default: the data's range, per feature for "
        "tabular (N, features) data)",
    )
    group.add_argument(
        "--metric",
        default="euclidean",
        choices=_METRICS,
        help="output metric G of the spectrum and walks (default: %(default)s)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``captum-simec`` and its subcommands."""
    parser = argparse.ArgumentParser(
        prog="captum-simec",
        description="Singular pullback-metric geometry (SiMEC / SiMExp) for PyTorch "
        "classifiers: a demo, a robustness audit, and class walks.",
    )
    parser.add_argument(
        "--traceback", action="store_true", help="show the full traceback of an error"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="train the paper's CNN on digits, compare, walk and audit (a few minutes)",
        description="Trains the paper's small CNN on scikit-learn's digits, compares SiMEC "
        "with Integrated Gradients, walks SiMEC/SiMExp, audits test images, and writes "
        "figures, records and report.md/report.html to --out.",
    )
    demo.add_argument(
        "--out", default="demo_output", metavar="DIR", help="output folder (default: %(default)s)"
    )
    demo.add_argument("--quick", action="store_true", help="a smaller run (under a minute)")
    demo.add_argument(
        "--seed", type=_COUNT, default=0, metavar="N", help="seed of everything (default: 0)"
    )
    demo.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    demo.set_defaults(handler=_cmd_demo)

    audit = commands.add_parser(
        "audit",
        help="per-example robustness audit of a classifier over a data file",
        description="Per example: prediction, rank and null dimension of the pullback metric, "
        "robustness map, SiMEC class extent, SiMExp flip distance, and the smallest "
        "flipping FGSM / PGD radius. Writes records.csv, records.json, summary.json, "
        "report.md and report.html to --out. Runs under torchrun for several processes.",
        epilog=_AUDIT_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_model_data(audit)
    walks = audit.add_argument_group("walks")
    walks.add_argument(
        "--simec-steps",
        type=_COUNT,
        default=RobustnessAudit.simec_steps,
        metavar="K",
        help="SiMEC (class extent) steps; 0 skips (default: %(default)s)",
    )
    walks.add_argument(
        "--simexp-steps",
        type=_COUNT,
        default=RobustnessAudit.simexp_steps,
        metavar="K",
        help="most SiMExp (flip) steps; 0 skips (default: %(default)s)",
    )
    walks.add_argument(
        "--step-size",
        type=_POSITIVE,
        default=RobustnessAudit.simec_step_size,
        metavar="D",
        help="step length of both walks, in input units (default: %(default)s)",
    )
    walks.add_argument(
        "--simec-step-size",
        type=_POSITIVE,
        metavar="D",
        help="SiMEC step length (overrides --step-size)",
    )
    walks.add_argument(
        "--simexp-step-size",
        type=_POSITIVE,
        metavar="D",
        help="SiMExp step length (overrides --step-size)",
    )
    walks.add_argument(
        "--max-drift",
        type=_POSITIVE,
        metavar="TOL",
        help="stop a SiMEC walk once its output drift exceeds TOL",
    )
    walks.add_argument(
        "--corrector",
        action="store_true",
        help="Gauss-Newton correction back onto the class after SiMEC steps",
    )
    attacks = audit.add_argument_group("attacks")
    attacks.add_argument(
        "--attacks",
        nargs="+",
        default=list(RobustnessAudit.attacks),
        choices=["fgsm", "pgd", "deepfool"],
        help="attacks to compare with (default: fgsm pgd)",
    )
    attacks.add_argument("--no-attacks", action="store_true", help="skip the attacks")
    attacks.add_argument(
        "--pgd-steps",
        type=_POSITIVE_INT,
        default=RobustnessAudit.pgd_steps,
        metavar="K",
        help="PGD iterations per radius (default: %(default)s)",
    )
    run = audit.add_argument_group("run")
    run.add_argument(
        "--out", default="audit_output", metavar="DIR", help="output folder (default: %(default)s)"
    )
    run.add_argument(
        "--batch-size",
        type=_POSITIVE_INT,
        default=32,
        metavar="B",
        help="examples per batch (default: %(default)s)",
    )
    run.add_argument(
        "--limit", type=_POSITIVE_INT, metavar="N", help="audit only the first N examples"
    )
    run.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted audit in --out, skipping examples done",
    )
    run.add_argument(
        "--seed", type=_COUNT, default=0, metavar="N", help="seed of the walks (default: 0)"
    )
    run.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    audit.set_defaults(handler=_cmd_audit)

    explore = commands.add_parser(
        "explore",
        help="walk inside (SiMEC) or across (SiMExp) the classes of a data file's examples",
        description="Runs a SiMEC or SiMExp walk from the first --examples inputs of --data "
        "and writes walk.json, figures and report.md/report.html to --out.",
    )
    _add_model_data(explore)
    explore.add_argument(
        "--walk",
        choices=["simec", "simexp"],
        default="simec",
        help="which walk (default: %(default)s)",
    )
    explore.add_argument(
        "--mode",
        default="leave_class",
        choices=["random", "weighted", "directed", "leave_class"],
        help="SiMExp direction mode (default: %(default)s)",
    )
    explore.add_argument(
        "--examples",
        type=_POSITIVE_INT,
        default=2,
        metavar="N",
        help="walk from the first N inputs (default: %(default)s)",
    )
    explore.add_argument(
        "--steps",
        type=_POSITIVE_INT,
        default=200,
        metavar="K",
        help="most steps (default: %(default)s)",
    )
    explore.add_argument(
        "--step-size",
        type=_POSITIVE,
        default=0.05,
        metavar="D",
        help="step length in input units (default: %(default)s)",
    )
    explore.add_argument(
        "--corrector", action="store_true", help="Gauss-Newton correction after SiMEC steps"
    )
    explore.add_argument(
        "--seed", type=_COUNT, default=0, metavar="N", help="seed of the walk (default: 0)"
    )
    explore.add_argument(
        "--out",
        default="explore_output",
        metavar="DIR",
        help="output folder (default: %(default)s)",
    )
    explore.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    explore.set_defaults(handler=_cmd_explore)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``captum-simec``; returns the exit code (2 for usage errors)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print("captum-simec: interrupted (an audit continues with --resume)", file=sys.stderr)
        return 130
    except UsageError as error:  # anything else is a bug: its traceback helps
        if args.traceback:
            raise
        message = " ".join(str(error).split())
        print(f"captum-simec {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
