"""Proof of effect for z2 optimisation: attack held-out sim scenes and compare methods at equal wall-clock, with
each method's realism checked against the range seen on data.

1. Realism range seen on data, from the test split of ``--data_dir`` (the checkpoint's training data):
   ``z2_nll`` of Encoder2's z2 with z1 = Encoder1's mean (with and without the reference; goal visible), and the
   ``dynamics`` term (at the checkpoint's waypoint time step) on the ground-truth futures and on the policy's own
   samples there (z1 = Encoder1's mean with the reference, one DDPM draw each, NoMaD's hard clip). The range is
   ``[min, max]`` over those samples. Decision: the dynamics gate uses the policy's samples, because the expert's
   ground truth never exceeds the limits (its range is exactly 0) while the unsteered policy already does now and
   then; a steering method is judged against what the policy itself produces on data.
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

import numpy as np
import torch
from torch.utils.data import DataLoader

from navintent.checkpoint import load_inference_model
from navintent.cli import main as cli_main
from navintent.config import TrainConfig, TwoStageTrainingConfig
from navintent.diffusion import build_sampler, policy_eps_fn
from navintent.objectives import ObjectiveContext, deltas_to_metric, dynamics, gaussian_nll
from navintent.train import _set_goal_seed, build_split, discover_datasets

DEFAULT_OBJECTIVE = "softmin_dist:1.0,dynamics:10,z2_nll:0.03"
REALISM_GATED = ("z2_nll", "dynamics")


@torch.no_grad()
def data_realism_range(ckpt: str, data_dir: str) -> dict[str, dict[str, float]]:
    """``{"z2_nll": {...}, "dynamics": {...}}`` with min, p5, p50, p95, max over the test split of ``data_dir``."""
    loaded = load_inference_model(ckpt)
    if loaded.z2_stats is None or not loaded.is_intent:
        raise ValueError(f"{ckpt}: the proof needs a two-stage checkpoint with z2_stats")
    model, (mean, cov) = loaded.model, loaded.z2_stats
    train = TrainConfig(waypoint_spacing=loaded.waypoint_spacing, ref_horizon=loaded.ref_horizon)
    config = TwoStageTrainingConfig(model=model.config, train=train)
    dataset = build_split(discover_datasets(data_dir), "test", config, progress=False)
    if dataset is None:
        raise ValueError(f"{data_dir} has no test split")
    _set_goal_seed(dataset, 0)
    nll, dyn, dyn_policy = [], [], []
    context = ObjectiveContext(dt=loaded.waypoint_dt)
    sampler = build_sampler(model.scheduler_config, kind="ddpm", clip="hard")
    generator = torch.Generator().manual_seed(0)
    cfg = model.config
    for batch in DataLoader(dataset, batch_size=64):
        goal_mask = torch.zeros(batch["obs_img"].shape[0], dtype=torch.bool)
        cond, tokens = model.encode(batch["obs_img"], batch["goal_img"], goal_mask, return_tokens=True)
        for ref in (batch["ref_traj"], None):
            z1, _ = model.posterior(tokens, goal_mask, ref, None)
            nll.append(gaussian_nll(model.z2_from_tokens(z1, tokens), mean, cov))
        scale = batch["metric_scale"].float()
        waypoints = batch["actions"][..., :2].float() * scale.view(-1, 1, 1)
        dyn.append(dynamics(waypoints, context))
        z1, _ = model.posterior(tokens, goal_mask, batch["ref_traj"], None)
        noise = sampler.draw_noise((len(z1), cfg.len_traj_pred, cfg.action_dim), generator=generator)
        x = sampler.sample(policy_eps_fn(model, cond, model.z2_from_tokens(z1, tokens)), noise)
        sampled = deltas_to_metric(x, cfg.action_min, cfg.action_max, scale)
        dyn_policy.append(dynamics(sampled, context))

    def summary(values: list[torch.Tensor]) -> dict[str, float]:
        v = torch.cat(values).numpy()
        p5, p50, p95 = np.percentile(v, [5, 50, 95])
        return {"min": float(v.min()), "p5": p5, "p50": p50, "p95": p95, "max": float(v.max()), "n": len(v)}

    return {"z2_nll": summary(nll), "dynamics": summary(dyn_policy), "dynamics_ground_truth": summary(dyn)}


def proof_table(report: dict, data_range: dict) -> tuple[str, dict]:
    """Markdown table and per-method numbers from an optimize-z2 ``report`` and the data range."""
    scenarios = report["scenarios"]
    rows, numbers = [], {}
    for method in report["summary"]:
        per = [s["methods"][method] for s in scenarios]
        inside = [all(p["realism_eval_draws"][k] <= data_range[k]["max"] for k in REALISM_GATED) for p in per]
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
    data_range = data_realism_range(args.ckpt, args.data_dir)
    argv = [
        "optimize-z2", "--ckpt", args.ckpt, "--num-scenarios", str(args.num_scenarios), "--seed", str(args.seed),
        "--method", "all", "--steps", str(args.steps), "--lr", str(args.lr), "--z1", "data",
        "--objective", args.objective, "--out-dir", str(out / "optimize"), "--device", "cpu",
    ]  # fmt: skip
    if cli_main(argv) != 0:
        raise SystemExit("optimize-z2 failed")
    report = json.loads((out / "optimize" / "report.json").read_text())
    table, numbers = proof_table(report, data_range)
    (out / "proof.md").write_text(table)
    (out / "proof.json").write_text(json.dumps({"data_range": data_range, "methods": numbers}, indent=2))
    print(table)


if __name__ == "__main__":
    main()
