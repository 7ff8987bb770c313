"""The ``captum-simec`` command: ``demo``, ``audit`` and ``explore``.

Examples::

    captum-simec demo --out demo_output
    captum-simec audit --model my_models.py:make_model --state-dict weights.pt \\
        --data test.pt --box 0 1 --out audit_output
    torchrun --nproc_per_node 4 -m captum_simec.cli audit --model pkg.models:Net --data test.pt
    captum-simec explore --model net.ts.pt --data test.npz --walk simexp --examples 2

Errors in the arguments (a model that cannot be imported, a factory that is not callable,
data without the expected keys or a batch dimension, inputs the model rejects) end the
command with exit code 2 and a one-line message that says what to fix.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from captum_simec.audit.robustness import RobustnessAudit
from captum_simec.cli_inputs import UsageError, fit_model_to_data, load_data, load_model

__all__ = ["build_parser", "main"]

_METRICS = ("euclidean", "fisher", "margin", "target", "topk")
_AUDIT_EXAMPLES = """examples:
  captum-simec audit --model my_models.py:make_model --state-dict weights.pt \\
      --data test.pt --box 0 1 --out audit_output
  torchrun --nproc_per_node 4 -m captum_simec.cli audit --model pkg.models:Net \\
      --data test.npz --box 0 1 --out audit_output
  an interrupted audit continues with the same command plus --resume
"""


def _box(args: argparse.Namespace, x: Tensor) -> tuple[float, float]:
    if args.box is None:
        low, high = float(x.min()), float(x.max())
        print(f"box: [{low:.4g}, {high:.4g}] (the data's range; set it with --box LO HI)")
        return low, high
    low, high = args.box
    if not low < high:
        raise UsageError(f"--box {low} {high}: LO must be smaller than HI.")
    return low, high


def _progress(args: argparse.Namespace) -> bool | None:
    return False if args.no_progress else None


# ----------------------------------------------------------------------------- commands


def _cmd_demo(args: argparse.Namespace) -> int:
    from captum_simec.demo import run_demo

    run_demo(args.out, quick=args.quick, seed=args.seed, progress=_progress(args))
    return 0


def _cmd_audit(args: argparse.Namespace) -> int:
    from captum_simec.audit.distributed import audit_distributed
    from captum_simec.report import write_audit_report

    model = load_model(args.model, args.state_dict)
    x, y = load_data(args.data)
    x = fit_model_to_data(model, x)
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
    result = audit_distributed(
        audit, loader, args.out, batch_size=args.batch_size, resume=args.resume
    )
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

    model = load_model(args.model, args.state_dict)
    x, _ = load_data(args.data)
    x = fit_model_to_data(model, x)[: args.examples]
    domain = _box(args, x)
    common = {
        "steps": args.steps,
        "step_size": args.step_size,
        "output_metric": args.metric,
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
            f"example: stopped after {record['stopped_at']} steps ({record['stop_reason']}), "
            f"path {record['path_length']:.4g}, max drift {record['max_drift']:.3g}"
        )
    print(f"report: {files.html.resolve()}")
    return 0


# ----------------------------------------------------------------------------- parser


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
        help="the input domain [LO, HI] (default: the data's min and max)",
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
        "--seed", type=int, default=0, metavar="N", help="seed of everything (default: 0)"
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
        type=int,
        default=RobustnessAudit.simec_steps,
        metavar="K",
        help="SiMEC (class extent) steps; 0 skips (default: %(default)s)",
    )
    walks.add_argument(
        "--simexp-steps",
        type=int,
        default=RobustnessAudit.simexp_steps,
        metavar="K",
        help="most SiMExp (flip) steps; 0 skips (default: %(default)s)",
    )
    walks.add_argument(
        "--step-size",
        type=float,
        default=RobustnessAudit.simec_step_size,
        metavar="D",
        help="step length of both walks, in input units (default: %(default)s)",
    )
    walks.add_argument(
        "--simec-step-size",
        type=float,
        metavar="D",
        help="SiMEC step length (overrides --step-size)",
    )
    walks.add_argument(
        "--simexp-step-size",
        type=float,
        metavar="D",
        help="SiMExp step length (overrides --step-size)",
    )
    walks.add_argument(
        "--max-drift",
        type=float,
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
        type=int,
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
        type=int,
        default=32,
        metavar="B",
        help="examples per batch (default: %(default)s)",
    )
    run.add_argument("--limit", type=int, metavar="N", help="audit only the first N examples")
    run.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted audit in --out, skipping examples done",
    )
    run.add_argument(
        "--seed", type=int, default=0, metavar="N", help="seed of the walks (default: 0)"
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
        type=int,
        default=2,
        metavar="N",
        help="walk from the first N inputs (default: %(default)s)",
    )
    explore.add_argument(
        "--steps", type=int, default=200, metavar="K", help="most steps (default: %(default)s)"
    )
    explore.add_argument(
        "--step-size",
        type=float,
        default=0.05,
        metavar="D",
        help="step length in input units (default: %(default)s)",
    )
    explore.add_argument(
        "--corrector", action="store_true", help="Gauss-Newton correction after SiMEC steps"
    )
    explore.add_argument(
        "--seed", type=int, default=0, metavar="N", help="seed of the walk (default: 0)"
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
    except (UsageError, ValueError, TypeError, FileExistsError, FileNotFoundError) as error:
        if args.traceback:
            raise
        message = " ".join(str(error).split())
        print(f"captum-simec {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
