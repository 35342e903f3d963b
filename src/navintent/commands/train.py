"""``navintent train``: the argparse definition and a thin call of :func:`navintent.training.train`.

Owns the flags (NoMaD's underscore spelling, each also hyphenated; names, defaults, help), their translation into
:func:`navintent.training.training_config` and the typed call, and the lines printed at the end (steps done and the
newest checkpoint, then the packaged file when exported). Errors are raised and reported by
:func:`navintent.cli.main` (:mod:`navintent.errors`): 2 for bad input, 3 when a loss or gradient becomes NaN/inf
(nothing of that step written).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from navintent.config import TrainConfig, TwoStageTrainingConfig
from navintent.training import LATEST, resume_checkpoint, train, training_config

DESCRIPTION = (
    "``navintent train``: end-to-end training of the two-stage intent model (one CPU, one GPU, or DDP)."
)
# CLI flag -> TrainConfig field (flags left at None keep the config's value).
_TRAIN_FLAGS = (
    "batch_size",
    "epochs",
    "max_steps",
    "schedule_steps",
    "lr",
    "num_workers",
    "seed",
    "checkpoint_every",
    "eval_every",
)


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """train's flags in NoMaD's underscore spelling (``--data_dir``), each also as the hyphenated spelling the
    other navintent commands use (``--data-dir``)."""
    parser.add_argument(
        "--data_dir",
        "--data-dir",
        default=None,
        help="data root with splits (DIR/<name>/, DIR/splits/<name>/{train,test}); without it, the --config's "
        "datasets: block (NoMaD's form) names the data",
    )
    parser.add_argument(
        "--ckpt", default=None, help="initialise from a nomad.pth state dict or a native checkpoint"
    )
    parser.add_argument(
        "--out", default="runs/two_stage", help="output folder (checkpoints, logs); default %(default)s"
    )
    parser.add_argument(
        "--config",
        default=None,
        help="YAML config: sectioned (model/scheduler/intent/train) or flat nomad.yaml",
    )
    parser.add_argument(
        "--preset", choices=("tiny", "demo", "nomad"), default=None, help="base sizes (default nomad)"
    )
    parser.add_argument(
        "--resume",
        nargs="?",
        const=LATEST,
        default=None,
        metavar="CKPT",
        help="continue exactly from CKPT (default: OUT/latest.pt)",
    )
    parser.add_argument(
        "--freeze", nargs="+", choices=TrainConfig.FREEZE_GROUPS, default=None, help="keep these fixed"
    )
    parser.add_argument("--batch_size", "--batch-size", type=int, default=None, help="per process")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument(
        "--max_steps",
        "--max-steps",
        type=int,
        default=None,
        help="stop after this many updates (0 = no limit)",
    )
    parser.add_argument(
        "--schedule_steps",
        "--schedule-steps",
        type=int,
        default=None,
        help="the cosine LR reaches 0 after this many updates (0 = after --epochs epochs)",
    )
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--num_workers", "--num-workers", type=int, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--checkpoint_every",
        "--checkpoint-every",
        type=int,
        default=None,
        help="steps between checkpoints (0 = epoch ends)",
    )
    parser.add_argument(
        "--eval_every",
        "--eval-every",
        type=int,
        default=None,
        help="steps between evaluations (0 = epoch ends)",
    )
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default %(default)s)")
    parser.add_argument(
        "--export_packaged",
        "--export-packaged",
        default=None,
        metavar="PATH",
        help="also write the original prototype's packaged format (EMA weights)",
    )
    parser.add_argument("--no_progress", "--no-progress", action="store_true", help="no progress bars")


def resolve_config(
    args: argparse.Namespace, resume_path: Path | None, notes: list[str] | None = None
) -> TwoStageTrainingConfig:
    """The flags' config (:func:`navintent.training.training_config`): base (the checkpoint's config on resume,
    else ``--preset``, default nomad) <- ``--config`` <- flags. ``notes`` collects the lines to print about the
    config file (NoMaD keys ignored and why, values derived, model sizes that override ``--preset``)."""
    changes = {name: getattr(args, name) for name in _TRAIN_FLAGS if getattr(args, name) is not None}
    if args.freeze is not None:
        changes["freeze"] = tuple(args.freeze)
    return training_config(
        args.preset, args.config, train=changes, resume=resume_path, notes=notes, where="command line"
    )


def run_train(args: argparse.Namespace) -> int:
    """``navintent train``: resolve the config, train, print the result; returns the exit status 0. Raises what
    :func:`navintent.training.train` raises (input errors, :class:`navintent.training.NonFiniteLossError`)."""
    out_dir = Path(args.out)
    resume_path = resume_checkpoint(out_dir, True if args.resume == LATEST else args.resume)
    notes: list[str] = []
    config = resolve_config(args, resume_path, notes)
    result = train(
        config,
        out_dir,
        data_dir=args.data_dir,
        init_checkpoint=args.ckpt,
        resume=resume_path,
        device=args.device,
        export_packaged=args.export_packaged,
        progress=not args.no_progress,
        notes=notes,
    )
    if result.rank == 0:  # under torchrun, rank 0 alone reports
        print(result.describe())
        if result.packaged is not None:
            print(f"packaged (EMA weights, pickled; loading needs trust): {result.packaged}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train the two-stage intent model (NoMaD + Encoder1/Encoder2); torchrun for several processes",
        description=DESCRIPTION,
    )
    add_train_arguments(parser)
    parser.set_defaults(func=run_train)
