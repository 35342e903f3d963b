"""``navintent export``: the argparse definition and a thin call of :func:`navintent.export.export_nomad`
(``--format nomad``) or :func:`navintent.checkpoint.write_inference_checkpoint` (``--format inference``).

Owns the flags and the printed lines (the two files written, what the exported model does, then each warning on
stderr). What the export writes and why a latent must be fixed is :mod:`navintent.export`'s docstring.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from navintent.checkpoint import INFERENCE_DTYPES, write_inference_checkpoint
from navintent.export import FORMATS, WEIGHTS, export_nomad


def run_inference_export(args: argparse.Namespace) -> int:
    """``--format inference``: the deployable weights of a native training checkpoint in ``--dtype``."""
    given = [
        flag
        for flag, value in (
            ("--latent", args.latent), ("--config", args.config), ("--yaml", args.yaml),
            ("--trust-checkpoint", args.trust_checkpoint), ("--weights", args.weights),
        )
        if value not in (None, False)
    ]  # fmt: skip
    if given:
        raise ValueError(
            f"--format inference keeps the native format (EMA weights, config, z2 statistics) and takes no {given}"
        )
    result = write_inference_checkpoint(
        args.ckpt, args.out, dtype=args.dtype or "float16", overwrite=args.overwrite
    )
    print(
        f"wrote {result['path']}: navintent inference checkpoint, {result['tensors']} tensors, "
        f"{result['values']:,} values ({result['weights']} weights of {args.ckpt}) in {args.dtype or 'float16'}, "
        f"{result['bytes'] / 1e6:.1f} MB; no optimiser state (cannot resume training)"
    )
    return 0


def run_export(args: argparse.Namespace) -> int:
    """``navintent export``: :func:`export_nomad` with the parsed arguments; prints the files, note, warnings.
    ``--format inference``: :func:`run_inference_export`."""
    if args.format == "inference":
        return run_inference_export(args)
    if args.dtype is not None:
        raise ValueError(
            f"--dtype is for --format inference; NoMaD's format keeps float32, got --dtype {args.dtype}"
        )
    result = export_nomad(
        args.ckpt,
        args.out,
        latent=args.latent,
        weights=args.weights or "ema",
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
        "latent changes the policy needs --latent none (the unconditional branch); see navintent.export. "
        "--format inference instead writes OUT as a navintent checkpoint holding only what deployment and "
        "evaluation read (EMA weights in --dtype, config, z2 statistics, training scales).",
    )
    p.add_argument("out", type=Path, metavar="OUT", help="weights file to write, e.g. nomad.pth")
    p.add_argument(
        "--ckpt", type=Path, required=True, help="native checkpoint, nomad.pth (+ --config) or packaged file"
    )
    p.add_argument(
        "--format",
        required=True,
        choices=FORMATS,
        help="nomad: NoMaD's deployment (state dict + nomad.yaml); inference: a navintent checkpoint with only "
        "what deployment and evaluation need (EMA weights, config, z2 statistics), to ship or share",
    )
    p.add_argument(
        "--dtype",
        choices=tuple(INFERENCE_DTYPES),
        help="--format inference: storage precision of the weights (default float16; loaded back as float32)",
    )
    p.add_argument("--config", type=Path, help="nomad.yaml (or navintent config YAML) for a bare nomad.pth")
    p.add_argument(
        "--latent",
        help="fix the latent: 'none' exports the unconditional branch (latent_z=None); required when z_proj "
        "is non-zero. No other latent can be exported (it depends on the observation).",
    )
    p.add_argument(
        "--weights", choices=WEIGHTS, help="--format nomad, native checkpoints: EMA (default) or raw weights"
    )
    p.add_argument("--yaml", type=Path, help="where to write the YAML (default: OUT with the suffix .yaml)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="allow unpickling Python objects (packaged files); this can run code from the file",
    )
    p.set_defaults(func=run_export)
