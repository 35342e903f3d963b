"""``navintent check-data``: the argparse definition and a thin call of :func:`navintent.data.check.check_data`.

Owns the flags, the printed report (per dataset its errors, warnings and spacing, then one verdict line) and the
exit status the report gives (1 when the data has errors, else 0). What is checked, and where the configured
spacing comes from, is :mod:`navintent.data.check`'s docstring. A light command: this module imports only the data
pipeline, never MuJoCo, the models, steering or evaluation (tests/test_cli_imports.py).
"""

from __future__ import annotations

import argparse

from navintent.cli import float_at_least, int_at_least
from navintent.data.check import DatasetCheck, check_data


def _print_check(check: DatasetCheck, decode: bool) -> None:
    t = check.target
    splits = ", ".join(str(s) for s in t.split_folders) or "none"
    images = "images decoded" if decode else "images not decoded"
    print(
        f"== {t.name}: {t.data_folder} ({len(check.trajectories)} valid trajectories, {check.num_poses} poses; "
        f"{images}; splits: {splits})"
    )
    for line in check.errors:
        print(f"ERROR: {line}")
    for line in check.warnings:
        print(f"WARNING: {line}")
    if check.spacing is not None:
        print(f"spacing: {check.spacing.summary()}")
    print(f"{t.name}: {len(check.errors)} error(s), {len(check.warnings)} warning(s)")


def run_check_data(args: argparse.Namespace) -> int:
    """``navintent check-data``: :func:`check_data` with the parsed arguments; prints the report and returns its
    exit status."""
    report = check_data(
        args.path,
        config=args.config,
        splits=args.split,
        name=args.name,
        metric_waypoint_spacing=args.metric_waypoint_spacing,
        data_config=args.data_config,
        waypoint_spacing=args.waypoint_spacing,
        len_traj_pred=args.len_traj_pred,
        context_size=args.context_size,
        decode=not args.no_decode,
        progress=not args.quiet,
    )
    for line in report.errors:
        print(f"ERROR: {line}")
    for line in report.warnings:
        print(f"WARNING: {line}")
    for check in report.checks:
        _print_check(check, decode=report.decode)
    print(
        f"{report.what}: {len(report.checks)} dataset(s), {report.num_errors} error(s), "
        f"{report.num_warnings} warning(s): {report.verdict}"
    )
    if report.placeholders:
        print(
            f"hint: the datasets' paths still hold the placeholder(s) {report.placeholders}: edit them to your "
            "folders"
        )
    return report.exit_code


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "check-data",
        help="validate NoMaD-format data; list errors and warnings; exit 1 if any error",
        description="Validate every trajectory (traj_data.pkl keys, shapes, finiteness, images vs poses, "
        "optional ref_traj/agents), decode every image, check split files, and compare the measured metres per "
        "frame with the configured metric_waypoint_spacing. PATH is a dataset folder (PATH/<traj>/...) or a data "
        "root as make-data writes it (PATH/<name>/..., PATH/splits/<name>/{train,test}, PATH/data_config.yaml); "
        "or give --config NOMAD_YAML to check the datasets of a NoMaD training config. Errors make the data "
        "unusable (exit 1); warnings do not (exit 0).",
    )
    p.add_argument("path", nargs="?", metavar="PATH", help="a dataset folder or a data root")
    p.add_argument(
        "--config", metavar="NOMAD_YAML", help="check the datasets: block of a NoMaD training config"
    )
    p.add_argument(
        "--split",
        action="append",
        default=[],
        metavar="SPLIT_DIR",
        help="(dataset folder only) also check SPLIT_DIR/traj_names.txt; repeatable",
    )
    p.add_argument(
        "--name",
        help="(dataset folder only) dataset name for the data-config lookup (default: the folder name)",
    )
    p.add_argument(
        "--metric-waypoint-spacing",
        type=float_at_least(0.0, strict=True),
        metavar="M",
        help="configured metres per frame to check against (overrides any data config)",
    )
    p.add_argument(
        "--data-config",
        metavar="YAML",
        help="data_config.yaml of NoMaD's form to look the spacing up in by dataset name "
        "(default: PATH/data_config.yaml of a data root, else the shipped NoMaD file)",
    )
    p.add_argument(
        "--waypoint-spacing",
        type=int_at_least(1),
        help="frames between waypoints, for every dataset (default: 1, or each --config dataset's own)",
    )
    p.add_argument(
        "--len-traj-pred", type=int_at_least(1), help="waypoints per action (default 8 or --config's)"
    )
    p.add_argument("--context-size", type=int_at_least(0), help="past frames (default 3 or --config's)")
    p.add_argument("--no-decode", action="store_true", help="skip decoding images (only check they exist)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run_check_data)
