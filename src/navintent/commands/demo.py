"""``navintent demo``: the argparse definition and a thin call of :func:`navintent.demo.run_demo`.

Owns the flags and the lines printed at the end (the run's minutes, where the report and the metrics went). The
stages and the plans' sizes are :mod:`navintent.demo`'s docstring.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from navintent import demo


def run_demo_cli(args: argparse.Namespace) -> int:
    """``navintent demo``: run :func:`navintent.demo.run_demo` and print where its report went; returns 0. Raises
    ``ValueError`` for ``--threads`` < 1 and ``FileExistsError`` when the output folder already holds results."""
    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    out = Path(args.out_dir) if args.out_dir else Path("runs/demo_quick" if args.quick else "runs/demo")
    metrics = demo.run_demo(out, quick=args.quick, train_vision=args.train_vision, threads=args.threads)
    print(f"\ndemo finished in {metrics['seconds'] / 60:.1f} min")
    print(f"report:  {metrics['files']['report']}")
    print(f"metrics: {metrics['files']['metrics']}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo",
        help="end to end: record sim data, train, optimise z2, evaluate closed loop, write report.md",
        description=demo.__doc__.split("\n\n")[0],
    )
    p.add_argument(
        "--quick", action="store_true", help="smallest real run (tiny preset; CI smoke test, under a minute)"
    )
    p.add_argument("--out-dir", default=None, help="output folder (default runs/demo or runs/demo_quick)")
    p.add_argument(
        "--train-vision",
        action="store_true",
        help="train the vision encoder where the plan freezes it (both plans train it already)",
    )
    p.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (default 1; see the module docstring)"
    )
    p.set_defaults(func=run_demo_cli)
