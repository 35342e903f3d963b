"""Re-plan latency of closed-loop steering: median and p95 ms per z2 re-plan, at the demo's size and NoMaD's size.

Sizes: ``demo-model`` is the model ``navintent demo`` trains (the ``demo`` preset with its plan's changes: convnet
trunks, 32 px, one past frame), ``demo`` the preset itself (EfficientNet-B0, 96 px), ``nomad`` NoMaD's.

One re-plan is what ``navintent evaluate`` does every ``replan_every`` control steps for the ``adam`` method: encode
the observation context and the goal (one vision pass, tokens kept), z1 from Encoder1 with the reference, build the
differentiable sampler's problem (:class:`navintent.optimize.DiffusionAdapter`, ``draws`` noise draws against the
target pedestrian's predicted track) and run ``opt_steps`` Adam steps through the full 10-step DDPM chain
(:func:`navintent.optimize.optimize_adam`), then sample the executed trajectory. Random weights (z_proj made
non-zero), one scenario, the closed-loop defaults (10 Adam steps, 4 draws) unless changed. The target is one control
period: 250 ms at NoMaD's 4 Hz. Also times NoMaD's localisation pass of the topological-map loop (context against
2 * radius + 1 nodes in one batch), which the ``navigate`` task adds per tick.

    python benchmarks/bench_replan.py [--presets demo-model demo nomad] [--reps 15] [--opt-steps 10] [--draws 4]
        [--threads 1] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from navintent.config import IntentConfig, SchedulerConfig, preset_model_config, preset_training_config
from navintent.demo import FULL, PLANS, recipe_sections
from navintent.diffusion import build_sampler
from navintent.models.intent import TwoStageIntentModel
from navintent.objectives import Objective
from navintent.steering import DiffusionAdapter, Scenarios, Z2OptimConfig, optimize_adam

OBJECTIVE = "softmin_dist:1.0,dynamics:10,z2_nll:0.03"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


DEMO_MODEL = "demo-model"  # the model `navintent demo` trains: its preset with the plan's model changes


def _model(preset: str, device: torch.device) -> TwoStageIntentModel:
    torch.manual_seed(0)
    if preset == DEMO_MODEL:
        plan = PLANS[FULL]
        intent = preset_training_config(plan.preset).intent
        model_config = preset_model_config(plan.preset).replace(**recipe_sections(plan, 1)["model"])
    else:
        intent = preset_training_config(preset).intent if preset != "nomad" else IntentConfig()
        model_config = preset_model_config(preset)
    model = TwoStageIntentModel(model_config, intent, SchedulerConfig()).to(device).eval()
    torch.nn.init.normal_(model.z_proj.weight, std=0.05)
    return model


def replan_ms(model, device, *, opt_steps: int, draws: int, reps: int) -> list[float]:
    """Milliseconds of ``reps`` re-plans (module docstring), after one warm-up."""
    cfg = model.config
    w, h = cfg.image_size
    gen = torch.Generator(device=device).manual_seed(0)
    obs = torch.randn(1, 3 * (cfg.context_size + 1), h, w, device=device, generator=gen)
    goal = torch.randn(1, 3, h, w, device=device, generator=gen)
    ref = torch.stack([torch.arange(1, 17, dtype=torch.float32), torch.zeros(16)], -1)[None].to(device)
    track = torch.stack(
        [torch.full((cfg.len_traj_pred,), 1.5), torch.linspace(-0.5, 0.5, cfg.len_traj_pred)], -1
    )
    agents = track.view(1, cfg.len_traj_pred, 1, 2).to(device)
    sampler = build_sampler(model.scheduler_config, kind="ddpm", clip="straight_through")
    config = Z2OptimConfig(steps=opt_steps, lr=0.2, draws=draws, dt=1.0, space="z2")
    mask = torch.zeros(1, dtype=torch.long, device=device)
    stats = (
        torch.zeros(model.z_dim, device=device),
        torch.eye(model.z_dim, device=device),
    )  # a unit Gaussian
    times = []
    for rep in range(reps + 1):
        _sync(device)
        start = time.perf_counter()
        with torch.no_grad():
            cond, tokens = model.encode(obs, goal, mask, return_tokens=True)
            z1, _ = model.posterior(tokens, mask.bool(), ref, None)
        sc = Scenarios(
            obs_img=obs, goal_img=goal, metric_scale=torch.tensor([0.18], device=device), goal_mask=mask,
            ref_traj=ref, ref_mask=torch.ones(1, device=device), agents=agents,
            agents_mask=torch.ones(1, 1, device=device), z1=z1,
        )  # fmt: skip
        adapter = DiffusionAdapter(
            model,
            sc,
            Objective(OBJECTIVE),
            sampler=sampler,
            draws=draws,
            dt=1.0,
            generator=gen,
            z2_stats=stats,
        )
        result = optimize_adam(adapter, config, progress=False)
        with torch.no_grad():
            model.sample_from_condition(cond, num_samples=1, latent_z=result.z2.detach(), generator=gen)
        _sync(device)
        if rep:  # the first is warm-up
            times.append(1000 * (time.perf_counter() - start))
    return times


def localisation_ms(model, device, *, nodes: int, reps: int) -> list[float]:
    """Milliseconds of one batched localisation pass: the context against ``nodes`` node images + distance head."""
    cfg = model.config
    w, h = cfg.image_size
    obs = torch.randn(1, 3 * (cfg.context_size + 1), h, w, device=device).expand(nodes, -1, -1, -1)
    goals = torch.randn(nodes, 3, h, w, device=device)
    mask = torch.zeros(nodes, dtype=torch.long, device=device)
    times = []
    for rep in range(reps + 1):
        _sync(device)
        start = time.perf_counter()
        with torch.no_grad():
            model.predict_distance(model.encode(obs, goals, mask))
        _sync(device)
        if rep:
            times.append(1000 * (time.perf_counter() - start))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--presets",
        nargs="+",
        default=[DEMO_MODEL, "demo", "nomad"],
        choices=["tiny", "demo", "nomad", DEMO_MODEL],
        help=f"{DEMO_MODEL}: the model navintent demo trains (convnet trunks, 32 px, one past frame)",
    )
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--opt-steps", type=int, default=10)
    parser.add_argument("--draws", type=int, default=4)
    parser.add_argument("--radius", type=int, default=4, help="localisation window: 2 * radius + 1 nodes")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(
        f"device {device}, {args.threads} thread(s), {args.opt_steps} Adam steps, {args.draws} draws, 1 scenario"
    )
    print("| preset | re-plan median (ms) | re-plan p95 (ms) | localisation median (ms) | target 250 ms |")
    print("|---|---:|---:|---:|---|")
    for preset in args.presets:
        model = _model(preset, device)
        t = replan_ms(model, device, opt_steps=args.opt_steps, draws=args.draws, reps=args.reps)
        loc = localisation_ms(model, device, nodes=2 * args.radius + 1, reps=args.reps)
        med, p95 = statistics.median(t), float(np.percentile(t, 95))
        verdict = "met" if med <= 250 else f"missed by {med / 250:.1f}x"
        print(f"| {preset} | {med:.0f} | {p95:.0f} | {statistics.median(loc):.0f} | {verdict} |")


if __name__ == "__main__":
    main()
