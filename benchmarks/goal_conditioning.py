"""Does the trained policy see its goal? Train one recipe on sim data and report the goal-conditioning metrics.

    OMP_NUM_THREADS=1 python benchmarks/goal_conditioning.py --out DIR [--preset demo|nomad] [--steps N] \\
        [--start-yaw-spread DEG] [--via-points K] [--goals-per-start G] [--set train.alpha=1e-3 ...]

1. Records ``--episodes`` expert episodes in the built-in world (``navintent make-data`` semantics, seed
   ``--data-seed``; ``--start-yaw-spread``, ``--via-points`` and ``--near-obstacle-starts`` set
   :class:`navintent.sim.config.SceneConfig`'s fields, ``--steer-noise`` / ``--steer-noise-time`` :class:`navintent.sim.config.ExpertConfig`'s, in the world
   ``--world`` names (a SimConfig YAML or a make-data output; default the built-in one), ``--goals-per-start``
   the recorder's groups) into ``DIR/data`` unless it is already there (then it must
   have been recorded with the same arguments).
2. Trains ``--preset`` with the demo's recipe (:func:`navintent.demo.recipe_sections` plus ``--set section.key=value``) for ``--steps`` steps with
   :func:`navintent.training.train` (as ``navintent train``; evaluation at the last step), wall-clock measured
   around it.
3. With ``--export FILE``, writes the run's inference checkpoint there (float16 EMA weights, as ``navintent export
   --format inference``).
4. Prints the final evaluation's goal-conditioning metrics (:mod:`navintent.evaluation.goal_metrics`: distance-head
   Spearman (with its 95% bootstrap interval) and MAE, goal and goal-mask sensitivity with their displacements) and ADE with the reference / prior
   mean, as a Markdown row, and writes ``DIR/result.json``.

Defaults are the full ``navintent demo``'s plan (:data:`navintent.demo.PLANS`: episodes, start heading spread,
steps, batch, lr, and :func:`navintent.demo.recipe_sections`), so with no options this measures the model the demo trains. The README's
"Goal conditioning" table rows come from this recipe and its variants (each row's changes are named there).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import yaml

from navintent.checkpoint import write_inference_checkpoint
from navintent.cli import configure_logging
from navintent.demo import DATA_SEED, FULL, PLANS, recipe_sections
from navintent.sim.config import SimConfig, load_sim_config, sim_config_changes
from navintent.sim.recorder import record_dataset
from navintent.training import train, training_config

DEMO = PLANS[FULL]
METRICS = (
    "eval/dist_spearman",
    "eval/dist_mae",
    "eval/goal_sensitivity",
    "eval/goal_mask_sensitivity",
    "eval/goal_displacement_m",
    "eval/noise_displacement_m",
    "eval/ade_ref_gm",
    "eval/ade_prior_gm",
)


def _interval(final: dict[str, float], name: str) -> str:
    """``[lo, hi]`` of ``name``'s 95% interval in ``final`` (empty when it was not computed)."""
    lo, hi = final.get(name + "_ci95_lo"), final.get(name + "_ci95_hi")
    return "" if lo is None or hi is None else f"[{lo:.2f}, {hi:.2f}]"


def parse_sets(items: list[str]) -> dict[str, dict[str, Any]]:
    """``["train.alpha=1e-3", ...]`` -> ``{"train": {"alpha": 0.001}}`` (values parsed as YAML). Raises
    ``ValueError`` for an item without ``section.key=value``."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        section, dot, name = key.partition(".")
        if not sep or not dot or not section or not name:
            raise ValueError(f"--set expects section.key=value, got {item!r}")
        out.setdefault(section, {})[name] = yaml.safe_load(value)
    return out


def check_recorded(path: Path, episodes: int, seed: int, goals_per_start: int, sim: SimConfig) -> None:
    """Refuse to reuse ``DIR/data`` recorded with other settings than asked (``sim_episodes.yaml`` records the
    seed, the episodes, ``goals_per_start`` and the SimConfig; options added later than the data default to the
    value that draws the same scenes). Raises ``ValueError`` naming the file and the differing values."""
    recorded = yaml.safe_load(path.read_text())
    have = (len(recorded["episodes"]), int(recorded["seed"]), int(recorded.get("goals_per_start", 1)))
    want = (episodes, seed, goals_per_start)
    world = load_sim_config(path)[0]
    changes = sim_config_changes(sim, world)
    if have != want or changes:
        raise ValueError(
            f"{path}: recorded with (episodes, seed, goals_per_start) = {have}, asked {want}; world settings "
            f"recorded -> asked: {changes or 'the same'}; use another --out or matching arguments"
        )


def main(argv: list[str] | None = None) -> int:
    configure_logging()  # the library's notes (dataset scale, config overrides) on stderr, as the command prints them
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="work folder: data, run, result.json")
    p.add_argument("--preset", choices=("tiny", "demo", "nomad"), default="demo")
    p.add_argument("--steps", type=int, default=DEMO.train_steps, help="training steps (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=DEMO.batch_size, help="default %(default)s")
    p.add_argument(
        "--lr",
        type=float,
        default=DEMO.train_lr,
        help="default %(default)s (the vision part: x vision_lr_scale)",
    )
    p.add_argument("--episodes", type=int, default=DEMO.episodes, help="default %(default)s")
    p.add_argument("--data-seed", type=int, default=DATA_SEED, help="default %(default)s")
    p.add_argument(
        "--start-yaw-spread", type=float, default=DEMO.start_yaw_spread, help="degrees (default %(default)s)"
    )
    p.add_argument(
        "--via-points", type=int, default=0, help="random points the expert's path passes through (default 0)"
    )
    p.add_argument(
        "--near-obstacle-starts",
        type=float,
        default=0.0,
        help="share of episodes starting close to a surface and facing it (SceneConfig.near_obstacle_starts; "
        "default 0)",
    )
    p.add_argument(
        "--goals-per-start",
        type=int,
        default=1,
        help="episodes per start pose, each to another goal (default 1)",
    )
    p.add_argument(
        "--steer-noise",
        type=float,
        default=DEMO.steer_noise,
        help="rad/s of turn-rate noise the expert drives with (ExpertConfig.steer_noise; default %(default)s)",
    )
    p.add_argument(
        "--steer-noise-time",
        type=float,
        default=DEMO.steer_noise_time,
        help="its correlation time in s (default %(default)s)",
    )
    p.add_argument(
        "--world",
        type=Path,
        metavar="PATH",
        help="the world to record in: a SimConfig YAML or an earlier make-data output (navintent.sim.config."
        "load_sim_config); the scene and expert options above replace its values for their fields (default: the "
        "built-in world)",
    )
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="SECTION.KEY=VALUE")
    p.add_argument(
        "--export",
        type=Path,
        metavar="FILE",
        help="also write the run's inference checkpoint (float16 EMA weights, `navintent export --format "
        "inference`) to FILE; how the package's shipped navigator is made (README)",
    )
    args = p.parse_args(argv)
    if args.steps < 1 or args.episodes < 2:
        p.error(f"--steps must be >= 1 and --episodes >= 2, got {args.steps} and {args.episodes}")

    data = args.out / "data"
    world = load_sim_config(args.world)[0] if args.world is not None else SimConfig()
    sim = world.replace(
        scene=world.scene.replace(
            start_yaw_spread=args.start_yaw_spread,
            via_points=args.via_points,
            near_obstacle_starts=args.near_obstacle_starts,
        ),
        expert=world.expert.replace(steer_noise=args.steer_noise, steer_noise_time=args.steer_noise_time),
    )
    if (data / "sim_episodes.yaml").exists():
        check_recorded(data / "sim_episodes.yaml", args.episodes, args.data_seed, args.goals_per_start, sim)
    else:
        record_dataset(data, args.episodes, args.data_seed, config=sim, goals_per_start=args.goals_per_start)
    recipe = recipe_sections(DEMO, args.steps)  # the demo's model/intent/train changes, annealed at --steps
    for section, values in parse_sets(args.sets).items():
        recipe.setdefault(section, {}).update(values)
    config = args.out / "recipe.yaml"
    config.write_text(yaml.safe_dump(recipe, sort_keys=False))
    run = args.out / "run"
    overrides = {"batch_size": args.batch_size, "max_steps": args.steps, "epochs": 1000, "eval_every": args.steps,
                 "checkpoint_every": args.steps, "num_workers": 0, "seed": 0, "lr": args.lr}  # fmt: skip
    # the equivalent command, as the benchmark has always printed it
    print(
        f"$ navintent train --data-dir {data} --preset {args.preset} --config {config} --out {run} "
        f"--batch-size {args.batch_size} --max-steps {args.steps} --epochs 1000 --eval-every {args.steps} "
        f"--checkpoint-every {args.steps} --num-workers 0 --seed 0 --device cpu --lr {args.lr} --no-progress",
        flush=True,
    )
    notes: list[str] = []
    trained = train(
        training_config(args.preset, config, train=overrides, notes=notes, where="the benchmark's flags"),
        run,
        data_dir=data,
        device="cpu",
        progress=False,
        notes=notes,
    )
    print(trained.describe())
    seconds = trained.seconds
    final = trained.metrics
    missing = [k for k in METRICS if k not in final]
    if missing:
        raise RuntimeError(f"{run / 'metrics.csv'} has no {missing}: the last step was not evaluated")
    if args.export is not None:
        written = write_inference_checkpoint(run / "latest.pt", args.export, dtype="float16", overwrite=True)
        print(f"wrote {args.export}: inference checkpoint, {written['bytes'] / 1e6:.1f} MB")
    intervals = {k: final[k] for k in final if "_ci95_" in k}
    result = {"preset": args.preset, "steps": args.steps, "seconds": seconds, "recipe": recipe,
              "start_yaw_spread": args.start_yaw_spread, **{k: final[k] for k in METRICS}, **intervals}  # fmt: skip
    finite = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in result.items()}
    (args.out / "result.json").write_text(json.dumps(finite, indent=2, allow_nan=False))  # NaN -> null
    print(
        "\n| preset | steps | train s | distance Spearman | distance MAE (steps) | goal sensitivity "
        "| goal-mask sensitivity | ADE ref / prior (m) |\n|---|---:|---:|---:|---:|---:|---:|---:|"
    )
    print(
        f"| {args.preset} | {args.steps} | {seconds:.0f} | {final['eval/dist_spearman']:.2f} "
        f"{_interval(final, 'eval/dist_spearman')} | {final['eval/dist_mae']:.2f} | "
        f"{final['eval/goal_sensitivity']:.3f} {_interval(final, 'eval/goal_sensitivity')} "
        f"({final['eval/goal_displacement_m']:.3f} m / {final['eval/noise_displacement_m']:.3f} m) | "
        f"{final['eval/goal_mask_sensitivity']:.3f} | "
        f"{final['eval/ade_ref_gm']:.3f} / {final['eval/ade_prior_gm']:.3f} |"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
