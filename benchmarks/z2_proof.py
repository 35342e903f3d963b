"""Proof of effect for z2 optimisation: attack held-out sim scenes and compare methods at equal wall-clock, with
each method's realism checked against the range seen on data.

1. ``navintent optimize-z2 --realism-data DATA`` measures the realism range seen on data on the test split of the
   checkpoint's training data (:mod:`navintent.realism`: z2_nll of Encoder2's z2 on data, the dynamics term of the
   policy's own samples there) and flags each method's realism against it.
2. ``navintent optimize-z2 --method all`` on ``--num-scenarios`` built-in sim scenes with pedestrians (scene seeds
   from ``--seed``; the recorder hashes its seeds, so these are not training scenes), z1 from Encoder1 on each
   scene (``--z1 data``), baselines given Adam's wall-clock.
3. A Markdown table per method over the scenes, on 16 fresh noise draws never used while optimising: mean minimum
   distance to the nearest pedestrian (m), attack success rate (draws within 0.5 m), realism means, the fraction
   of scenes whose z2_nll and dynamics both lie inside the data range, and the "plausible" minimum distance:
   per scene the method's value when its realism is inside the range, else the plain policy's (an implausible
   attack counts as no attack).

Usage (writes ``OUT/optimize/`` and ``OUT/proof.md``, ``OUT/proof.json``)::

    python benchmarks/z2_proof.py --ckpt RUN/latest.pt --data_dir DATA --out-dir OUT [--num-scenarios 16]
        [--seed 0] [--steps 100] [--lr 0.2] [--objective ...]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from navintent.cli import main as cli_main

DEFAULT_OBJECTIVE = "softmin_dist:1.0,dynamics:10,z2_nll:0.03"


def proof_table(report: dict) -> tuple[str, dict]:
    """Markdown table and per-method numbers from an optimize-z2 ``report`` made with ``--realism-data``."""
    scenarios, data_range = report["scenarios"], report["realism_range"]
    rows, numbers = [], {}
    for method in report["summary"]:
        per = [s["methods"][method] for s in scenarios]
        inside = [all(p["realism_in_data_range"].values()) for p in per]
        plausible = [
            p["min_distance_eval_draws"] if ok else s["methods"]["plain"]["min_distance_eval_draws"]
            for p, ok, s in zip(per, inside, scenarios, strict=True)
        ]
        n = {
            "min_distance": statistics.mean(p["min_distance_eval_draws"] for p in per),
            "attack_success_rate": statistics.mean(p["attack_success_rate"] for p in per),
            "z2_nll": statistics.mean(p["realism_eval_draws"]["z2_nll"] for p in per),
            "z2_nll_max": max(p["realism_eval_draws"]["z2_nll"] for p in per),
            "dynamics": statistics.mean(p["realism_eval_draws"]["dynamics"] for p in per),
            "dynamics_max": max(p["realism_eval_draws"]["dynamics"] for p in per),
            "static_collision": statistics.mean(
                p["realism_eval_draws"].get("static_collision", 0.0) for p in per
            ),
            "in_data_range": sum(inside) / len(inside),
            "plausible_min_distance": statistics.mean(plausible),
            "seconds": statistics.mean(p["seconds"] for p in per),
        }
        numbers[method] = n
        rows.append(
            f"| {method} | {n['min_distance']:.3f} | {100 * n['attack_success_rate']:.0f}% | "
            f"{n['z2_nll']:.1f} (max {n['z2_nll_max']:.1f}) | {n['dynamics']:.3f} (max {n['dynamics_max']:.3f}) | "
            f"{n['static_collision']:.3f} | {100 * n['in_data_range']:.0f}% | {n['plausible_min_distance']:.3f} | "
            f"{n['seconds']:.1f} |"
        )
    header = [
        "| method | min distance (m) | attack success | z2_nll | dynamics | static collision | realism in data "
        "range | plausible min distance (m) | seconds |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    z, d, g = data_range["z2_nll"], data_range["dynamics"], data_range["dynamics_ground_truth"]
    note = (
        f"\nData range (test split): z2_nll {z['min']:.1f} .. {z['max']:.1f} (p95 {z['p95']:.1f}, n={z['n']}); "
        f"dynamics of the policy's samples {d['min']:.3f} .. {d['max']:.3f} (p95 {d['p95']:.3f}, n={d['n']}), "
        f"of the ground truth {g['min']:.3f} .. {g['max']:.3f}."
    )
    return "\n".join(header + rows) + "\n" + note + "\n", numbers


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", required=True)
    p.add_argument("--data_dir", required=True, help="the checkpoint's training data (for the realism range)")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--num-scenarios", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--lr", type=float, default=0.2)
    p.add_argument("--objective", default=DEFAULT_OBJECTIVE)
    args = p.parse_args()
    out = Path(args.out_dir)
    argv = [
        "optimize-z2", "--ckpt", args.ckpt, "--num-scenarios", str(args.num_scenarios), "--seed", str(args.seed),
        "--method", "all", "--steps", str(args.steps), "--lr", str(args.lr), "--z1", "data",
        "--objective", args.objective, "--out-dir", str(out / "optimize"), "--device", "cpu",
        "--realism-data", args.data_dir,
    ]  # fmt: skip
    if cli_main(argv) != 0:
        raise SystemExit("optimize-z2 failed")
    report = json.loads((out / "optimize" / "report.json").read_text())
    table, numbers = proof_table(report)
    (out / "proof.md").write_text(table)
    (out / "proof.json").write_text(
        json.dumps({"data_range": report["realism_range"], "methods": numbers}, indent=2)
    )
    print(table)


if __name__ == "__main__":
    main()
