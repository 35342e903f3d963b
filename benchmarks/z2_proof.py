"""Proof of effect for z2 optimisation: attack held-out sim scenes and compare methods at equal wall-clock, with
each method's realism checked against the range seen on data, and the intent latent set against the diffusion
noise as the place to steer (``noise``: Diffusion Noise Optimization; ``z2+noise``: both together).

1. :func:`navintent.steering.optimize` with ``realism_data=DATA`` measures the realism range seen on data on the test
   split of the checkpoint's training data (:mod:`navintent.realism`: z2_nll of Encoder2's z2 on data, the dynamics term of the
   policy's own samples there) and flags each method's realism against it.
2. every method (``--method all``) on ``--num-scenarios`` built-in sim scenes with pedestrians (scene seeds from
   ``--seed``; the recorder hashes its seeds, so these are not training scenes), z1 from Encoder1 on each scene
   (``z1="data"``), every other method given Adam's wall-clock. The files ``navintent optimize-z2`` writes go to
   ``OUT/optimize/``; the tables below are built from the returned :class:`navintent.steering.OptimizeResult`.
3. Two Markdown tables per method over the scenes:

   - on the ``--draws`` OPTIMISATION draws per scene: the only draws a noise-optimised result exists for (a noise
     method optimises those draws' noise; it has nothing to carry to other draws), so the one table where every
     method can be compared: mean minimum distance to the nearest pedestrian (m), attack success rate (draws
     within 0.5 m), z2_nll, the noise's realism (``noise_nll``: chi negative log-likelihood of the noise norm,
     nats; ``noise norm z``: the standardised squared norm, about N(0, 1) per fresh draw; ``noise_step_nll``: the
     same likelihood for the norm of x_T and of each step noise separately, summed), dynamics, static
     collision, the fraction of scenes whose z2_nll and dynamics lie inside the data range, seconds;
   - on 16 FRESH noise draws never used while optimising: generalisation, which only a latent (or a guidance
     scale) can have. ``noise`` there is plain sampling by construction, ``z2+noise`` keeps only its z2; both are
     marked. Columns as before plus the "plausible" minimum distance: per scene the method's value when its
     realism is inside the range, else the plain policy's (an implausible attack counts as no attack).

Usage (writes ``OUT/optimize/`` and ``OUT/proof.md``, ``OUT/proof.json``)::

    python benchmarks/z2_proof.py --ckpt RUN/latest.pt --data_dir DATA --out-dir OUT [--num-scenarios 16]
        [--seed 0] [--steps 100] [--lr 0.2] [--noise-lr 0.05] [--noise-nll-weight 0.03] [--method all]
        [--objective ...]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from navintent.cli import configure_logging
from navintent.steering import OptimizeResult, SimScenes, Z2OptimConfig, optimize

DEFAULT_OBJECTIVE = "softmin_dist:1.0,dynamics:10,z2_nll:0.03"


def _numbers(per: list[dict], scenarios: list[dict], draws: str) -> dict:
    """Means over scenes of one method's rows ``per`` on ``draws`` = ``"opt"`` or ``"eval"``."""
    dist = "min_distance_opt_draws" if draws == "opt" else "min_distance_eval_draws"
    rate = "attack_success_rate_opt_draws" if draws == "opt" else "attack_success_rate"
    realism = "realism_opt_draws" if draws == "opt" else "realism_eval_draws"
    gate = "realism_in_data_range_opt_draws" if draws == "opt" else "realism_in_data_range"
    inside = [all(p[gate].values()) for p in per]
    plausible = [
        p[dist] if ok else s["methods"]["plain"][dist]
        for p, ok, s in zip(per, inside, scenarios, strict=True)
    ]
    return {
        "min_distance": statistics.mean(p[dist] for p in per),
        "attack_success_rate": statistics.mean(p[rate] for p in per),
        "z2_nll": statistics.mean(p[realism]["z2_nll"] for p in per),
        "z2_nll_max": max(p[realism]["z2_nll"] for p in per),
        "noise_nll": statistics.mean(p[realism]["noise_nll"] for p in per),
        "noise_nll_max": max(p[realism]["noise_nll"] for p in per),
        "noise_norm_z": statistics.mean(p[realism]["noise_norm_z"] for p in per),
        "noise_step_nll": statistics.mean(p[realism]["noise_step_nll"] for p in per),
        "noise_norm_z_absmax": max(abs(p[realism]["noise_norm_z"]) for p in per),
        "dynamics": statistics.mean(p[realism]["dynamics"] for p in per),
        "dynamics_max": max(p[realism]["dynamics"] for p in per),
        "static_collision": statistics.mean(p[realism].get("static_collision", 0.0) for p in per),
        "in_data_range": sum(inside) / len(inside),
        "plausible_min_distance": statistics.mean(plausible),
        "seconds": statistics.mean(p["seconds"] for p in per),
    }


def proof_table(result: OptimizeResult) -> tuple[str, dict]:
    """Markdown tables (optimisation draws, fresh draws) and per-method numbers from an optimisation ``result``
    made with ``realism_data``. Returns ``(markdown, {"opt_draws": {method: numbers}, "fresh_draws": ...})``."""
    scenarios, data_range = result.scenarios, result.realism_range
    if data_range is None:
        raise ValueError("proof_table needs a result made with realism_data (the realism range seen on data)")
    numbers: dict[str, dict] = {"opt_draws": {}, "fresh_draws": {}}
    opt_rows, fresh_rows = [], []
    for method in result.summary:
        per = [s["methods"][method] for s in scenarios]
        o = numbers["opt_draws"][method] = _numbers(per, scenarios, "opt")
        f = numbers["fresh_draws"][method] = _numbers(per, scenarios, "eval")
        opt_rows.append(
            f"| {method} | {o['min_distance']:.3f} | {100 * o['attack_success_rate']:.0f}% | "
            f"{o['z2_nll']:.1f} (max {o['z2_nll_max']:.1f}) | {o['noise_nll']:.2f} (max {o['noise_nll_max']:.2f}) | "
            f"{o['noise_norm_z']:+.2f} (max {o['noise_norm_z_absmax']:.2f}) | {o['noise_step_nll']:.2f} | "
            f"{o['dynamics']:.3f} (max {o['dynamics_max']:.3f}) | {o['static_collision']:.3f} | "
            f"{100 * o['in_data_range']:.0f}% | {o['seconds']:.1f} |"
        )
        note = {"noise": " (= plain, by construction)", "z2+noise": " (its z2 only)"}.get(method, "")
        fresh_rows.append(
            f"| {method}{note} | {f['min_distance']:.3f} | {100 * f['attack_success_rate']:.0f}% | "
            f"{f['z2_nll']:.1f} (max {f['z2_nll_max']:.1f}) | {f['dynamics']:.3f} (max {f['dynamics_max']:.3f}) | "
            f"{f['static_collision']:.3f} | {100 * f['in_data_range']:.0f}% | {f['plausible_min_distance']:.3f} |"
        )
    draws = result.config.draws
    eval_draws = result.config.eval_draws
    opt_table = [
        f"On the {draws} optimisation draws per scene (the only draws a noise-optimised result exists for):",
        "",
        "| method | min distance (m) | attack success | z2_nll | noise_nll | noise norm z | noise_step_nll | "
        "dynamics | static collision | realism in data range | seconds |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *opt_rows,
    ]
    fresh_table = [
        f"On {eval_draws} fresh draws per scene (never used while optimising):",
        "",
        "| method | min distance (m) | attack success | z2_nll | dynamics | static collision | realism in data "
        "range | plausible min distance (m) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        *fresh_rows,
    ]
    z, d, g = data_range["z2_nll"], data_range["dynamics"], data_range["dynamics_ground_truth"]
    note = (
        f"Data range (test split): z2_nll {z['min']:.1f} .. {z['max']:.1f} (p95 {z['p95']:.1f}, n={z['n']}); "
        f"dynamics of the policy's samples {d['min']:.3f} .. {d['max']:.3f} (p95 {d['p95']:.3f}, n={d['n']}), "
        f"of the ground truth {g['min']:.3f} .. {g['max']:.3f}. The noise columns of unoptimised N(0, I) "
        f"draws: every row but noise and z2+noise."
    )
    text = "\n".join(opt_table) + "\n\n" + "\n".join(fresh_table) + "\n\n" + note + "\n"
    return text, numbers


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", required=True)
    p.add_argument("--data_dir", required=True, help="the checkpoint's training data (for the realism range)")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--num-scenarios", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--lr", type=float, default=0.2)
    p.add_argument("--noise-lr", type=float, default=0.05, help="Adam learning rate of noise / z2+noise")
    p.add_argument("--noise-nll-weight", type=float, default=0.03, help="weight of noise_nll (nats)")
    p.add_argument("--method", default="all", help="comma list of methods or 'all' (must include adam)")
    p.add_argument("--objective", default=DEFAULT_OBJECTIVE)
    args = p.parse_args()
    configure_logging()  # the library's notes on stderr, as navintent optimize-z2 prints them
    out = Path(args.out_dir)
    result = optimize(
        args.ckpt,
        SimScenes(args.num_scenarios),
        objective=args.objective,
        methods=args.method,
        config=Z2OptimConfig(
            steps=args.steps, lr=args.lr, noise_lr=args.noise_lr, noise_nll_weight=args.noise_nll_weight
        ),
        seed=args.seed,
        z1="data",
        realism_data=args.data_dir,
        device="cpu",
        out_dir=out / "optimize",
    )
    table, numbers = proof_table(result)
    (out / "proof.md").write_text(table)
    (out / "proof.json").write_text(
        json.dumps({"data_range": result.realism_range, "methods": numbers}, indent=2)
    )
    print(table)


if __name__ == "__main__":
    main()
