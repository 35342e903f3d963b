"""``navintent export``: the argparse definition and a thin call of :func:`navintent.export.export_nomad`.

Owns the flags and the printed lines (the two files written, what the exported model does, then each warning on
stderr). What the export writes and why a latent must be fixed is :mod:`navintent.export`'s docstring.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from navintent.export import FORMATS, WEIGHTS, export_nomad


def run_export(args: argparse.Namespace) -> int:
    """``navintent export``: :func:`export_nomad` with the parsed arguments; prints the files, note, warnings."""
    result = export_nomad(
        args.ckpt,
        args.out,
        latent=args.latent,
        weights=args.weights,
        config=args.config,
        trust_checkpoint=args.trust_checkpoint,
        yaml_path=args.yaml,
        overwrite=args.overwrite,
    )
    print(
        f"wrote {result.weights_path}: NoMaD state dict, {result.num_tensors} tensors, {result.num_values:,} values "
        f"({result.source_kind} {result.source}, {result.weights_used} weights; dropped {len(result.dropped_keys)} "
        "intent tensors)"
    )
    print(f"wrote {result.yaml_path}: nomad.yaml values (NoMaD's key names + navintent-only values)")
    print(f"model: {result.note}")
    for line in result.warnings:
        print(f"warning: {line}", file=sys.stderr)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="export a policy for NoMaD's deployment stack (plain nomad.pth state dict + nomad.yaml values)",
        description="Write OUT (NoMaD's plain state dict: vision_encoder.*, noise_pred_net.*, dist_pred_net.*, "
        "no intent modules) and OUT with the suffix .yaml (the matching nomad.yaml values). A checkpoint whose "
        "latent changes the policy needs --latent none (the unconditional branch); see navintent.export.",
    )
    p.add_argument("out", type=Path, metavar="OUT", help="weights file to write, e.g. nomad.pth")
    p.add_argument(
        "--ckpt", type=Path, required=True, help="native checkpoint, nomad.pth (+ --config) or packaged file"
    )
    p.add_argument("--format", required=True, choices=FORMATS, help="target format (NoMaD's deployment)")
    p.add_argument("--config", type=Path, help="nomad.yaml (or navintent config YAML) for a bare nomad.pth")
    p.add_argument(
        "--latent",
        help="fix the latent: 'none' exports the unconditional branch (latent_z=None); required when z_proj "
        "is non-zero. No other latent can be exported (it depends on the observation).",
    )
    p.add_argument(
        "--weights", choices=WEIGHTS, default="ema", help="native checkpoints: EMA (default) or raw weights"
    )
    p.add_argument("--yaml", type=Path, help="where to write the YAML (default: OUT with the suffix .yaml)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="allow unpickling Python objects (packaged files); this can run code from the file",
    )
    p.set_defaults(func=run_export)
