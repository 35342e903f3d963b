"""Speed of one z2 optimisation step, batched, against the seed's structure and the bare U-Net chain.

All three are measured in this process on the same model (NoMaD-size two-stage intent model by default, random
weights, z_proj made non-zero) and the same B scenarios x M noise draws, with the same DDPM chain (10 steps),
CFG weight and straight-through clipping:

- ours: :func:`navintent.optimize` structure — vision condition cached once, B*M rows in one graph, CFG cond and
  uncond rows in ONE U-Net call per denoising step, objective averaged over draws, Adam step.
- seed: the seed's structure — for each scenario separately, re-encode its images every step, then run the chain
  with two separate U-Net calls per denoising step (cond, uncond), backward, Adam step.
- seed, unfrozen (``--seed-unfrozen``): the same, with the model's parameters left requiring grad (as code that
  never freezes the model runs it: backward then also computes weight gradients of the U-Net and the vision
  encoder). Reported separately; the headline ratio uses the frozen variant.
- bare: only the U-Net chain at the same batch (the same CFG rows in one call per step), forward + backward
  to z2, no vision, no objective, no optimiser — the floor ours is compared with.

Prints the median ms per step of each and the ratios seed/ours (target >= 5) and ours/bare (target <= 1.5),
plus seconds per scenario for 100 steps. Usage::

    python benchmarks/bench_optimize.py [--scenarios 8 --draws 8 --steps 5 --preset nomad --device auto]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from navintent.config import IntentConfig, SchedulerConfig, preset_model_config
from navintent.diffusion import SamplerNoise, build_sampler, policy_eps_fn
from navintent.models.intent import TwoStageIntentModel
from navintent.objectives import Objective
from navintent.steering import DiffusionAdapter, Scenarios, frozen


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _interleaved_median_ms(
    variants: dict[str, object], rounds: int, warmup: int, device: torch.device
) -> dict[str, float]:
    """Median ms of each variant over ``rounds``, timed round-robin (one call of each per round) so that slow
    drifts of a shared machine's load hit every variant alike instead of whichever ran during the drift."""
    for fn in variants.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(1000 * (time.perf_counter() - start))
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", type=int, default=8)
    parser.add_argument("--draws", type=int, default=8)
    parser.add_argument(
        "--steps", type=int, default=5, help="measured rounds (one step of each variant per round; median)"
    )
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--preset", default="nomad", choices=("tiny", "demo", "nomad"))
    parser.add_argument("--lambda-cfg", type=float, default=1.0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    parser.add_argument("--skip-seed", action="store_true", help="skip the (slow) seed-structure variants")
    parser.add_argument(
        "--seed-unfrozen",
        action="store_true",
        help="also time the seed structure with parameters requiring grad",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    )
    torch.manual_seed(0)
    mc = preset_model_config(args.preset)
    model = TwoStageIntentModel(mc, IntentConfig(), SchedulerConfig()).to(device).eval()
    torch.nn.init.normal_(model.z_proj.weight, std=0.1)
    b, m = args.scenarios, args.draws
    w, h = mc.image_size
    t_len = mc.len_traj_pred
    agents = torch.stack([torch.linspace(0.5, 1.5, t_len), torch.linspace(0.8, -0.8, t_len)], -1)
    scenarios = Scenarios(
        obs_img=torch.randn(b, 3 * mc.num_obs_frames, h, w),
        goal_img=torch.randn(b, 3, h, w),
        metric_scale=torch.full((b,), 0.25),
        agents=agents.view(1, t_len, 1, 2).repeat(b, 1, 1, 1),
        agents_mask=torch.ones(b, 1),
    )
    objective = Objective("softmin_dist:1.0,dynamics:0.1,z2_encoder:0.01")
    sampler = build_sampler(model.scheduler_config, clip="straight_through")
    adapter = DiffusionAdapter(
        model,
        scenarios,
        objective,
        sampler=sampler,
        draws=m,
        lambda_cfg=args.lambda_cfg,
        generator=torch.Generator(device=device).manual_seed(0),
    )
    z2 = adapter.z2_init.clone().requires_grad_(True)
    opt = torch.optim.Adam([z2], lr=1e-2)
    print(
        f"device {device}, threads {torch.get_num_threads()}, preset {args.preset}, {b} scenarios x {m} draws, "
        f"{sampler.num_steps} denoising steps, lambda_cfg {args.lambda_cfg}"
    )

    def ours() -> None:
        opt.zero_grad(set_to_none=True)
        adapter.loss_given_z2(z2).loss.sum().backward()
        opt.step()

    # bare chain: the same U-Net rows and sampler math, nothing else
    cond_rows = adapter.cond.repeat_interleave(m, 0)
    noise = adapter.noise

    def bare() -> None:
        z_rows = z2.repeat_interleave(m, 0)
        x = sampler.sample(policy_eps_fn(model, cond_rows, z_rows, lambda_cfg=args.lambda_cfg), noise)
        (g,) = torch.autograd.grad(x.sum(), z2)
        del g

    # the seed's structure: one scenario at a time, images re-encoded every step, separate CFG calls
    sc = adapter.scenarios

    def seed_structure() -> None:
        opt.zero_grad(set_to_none=True)
        for i in range(b):
            cond = model.encode(sc.obs_img[i : i + 1], sc.goal_img[i : i + 1]).repeat_interleave(m, 0)
            z_rows = z2[i : i + 1].repeat_interleave(m, 0)
            rows = slice(i * m, (i + 1) * m)

            def eps_fn(x, t, cond=cond, z_rows=z_rows):
                eps_c = model.predict_noise(x, t, cond, latent_z=z_rows)
                if args.lambda_cfg == 0:
                    return eps_c
                eps_u = model.predict_noise(x, t, cond, latent_z=None)
                return eps_c + args.lambda_cfg * (eps_c - eps_u)

            x = sampler.sample(eps_fn, SamplerNoise(noise.x_T[rows], noise.steps[:, rows]))
            wp = adapter.to_metric(x, torch.full((m,), i, device=device))
            ctx = adapter.context.select(torch.full((m,), i, device=device)).replace(z2=z_rows)
            objective(wp, ctx).mean().backward()
        opt.step()

    variants = {"ours": ours, "bare": bare}
    if not args.skip_seed:
        variants["seed"] = seed_structure
    with frozen(model):
        ms = _interleaved_median_ms(variants, args.steps, args.warmup, device)
    ms_ours, ms_bare, ms_seed = ms["ours"], ms["bare"], ms.get("seed")
    ms_unfrozen = None
    if args.seed_unfrozen and not args.skip_seed:
        ms_unfrozen = _interleaved_median_ms({"seed": seed_structure}, args.steps, 0, device)["seed"]
    print(
        f"ours : {ms_ours:9.1f} ms/step  -> {ms_ours * 100 / 1000 / b:6.2f} s per scenario for 100 steps (batched)"
    )
    print(f"bare : {ms_bare:9.1f} ms/step  (U-Net chain forward+backward at batch {b * m})")
    if ms_seed is not None:
        print(
            f"seed : {ms_seed:9.1f} ms/step  -> {ms_seed * 100 / 1000 / b:6.2f} s per scenario for 100 steps"
        )
        print(f"speed-up seed/ours: {ms_seed / ms_ours:.2f}x (target >= 5)")
    if ms_unfrozen is not None:
        print(f"seed, parameters not frozen: {ms_unfrozen:9.1f} ms/step -> {ms_unfrozen / ms_ours:.2f}x ours")
    print(f"overhead ours/bare: {ms_ours / ms_bare:.2f}x (target <= 1.5)")


if __name__ == "__main__":
    main()
