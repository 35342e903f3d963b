"""Two-stage training step vs a plain NoMaD training step: same batch, same sizes, same process.

Both steps are complete training steps: forward, loss, backward, AdamW update and EMA update. The plain step
follows NoMaD's ``train_nomad`` (goal mask, distance + diffusion loss on ``NoMaDPolicy``); the two-stage step is
:meth:`TwoStageIntentModel.compute_loss` (one vision pass feeding Encoder1, Encoder2 and the denoiser, KL).
Measurements alternate between the two (plain, two-stage, plain, ...) so machine load drifts hit both; the
medians and their ratio are printed. The issue's target: ratio <= 1.10.

    python benchmarks/bench_train_step.py --preset nomad --batch_size 8 --reps 7
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from navintent.actions import waypoints_to_normalized_deltas
from navintent.config import preset_training_config
from navintent.ema import EMA
from navintent.models.intent import TwoStageIntentModel, masked_mean
from navintent.models.nomad import NoMaDPolicy, build_noise_scheduler


def make_batch(cfg, batch_size: int, device: torch.device) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    mc = cfg.model
    w, h = mc.image_size
    actions = torch.cumsum(torch.rand(batch_size, mc.len_traj_pred, 2, generator=g) + 0.2, dim=1)
    batch = {
        "obs_img": torch.randn(batch_size, 3 * (mc.context_size + 1), h, w, generator=g),
        "goal_img": torch.randn(batch_size, 3, h, w, generator=g),
        "actions": actions,
        "distance": torch.randint(0, 20, (batch_size,), generator=g),
        "action_mask": torch.ones(batch_size),
        "ref_traj": torch.cat([actions, actions + actions[:, -1:]], dim=1),
        "ref_mask": torch.ones(batch_size),
    }
    return {k: v.to(device) for k, v in batch.items()}


def nomad_loss(model: NoMaDPolicy, batch, scheduler, goal_mask_prob: float, alpha: float) -> torch.Tensor:
    """NoMaD's training loss (train_nomad semantics, per-sample reduction before the masks)."""
    bsz, device = batch["obs_img"].shape[0], batch["obs_img"].device
    goal_mask = (torch.rand(bsz, device=device) < goal_mask_prob).long()
    cond = model.encode(batch["obs_img"], batch["goal_img"], goal_mask)
    naction = waypoints_to_normalized_deltas(
        batch["actions"], model.config.action_min, model.config.action_max
    )
    dist = masked_mean(
        (model.predict_distance(cond).squeeze(-1) - batch["distance"].float()).square(), 1 - goal_mask
    )
    noise = torch.randn_like(naction)
    t = torch.randint(0, scheduler.config.num_train_timesteps, (bsz,), device=device)
    eps = model.predict_noise(scheduler.add_noise(naction, noise, t), t, cond)
    diffusion = masked_mean((eps - noise).square().flatten(1).mean(1), batch["action_mask"])
    return alpha * dist + (1 - alpha) * diffusion


def make_step(model: nn.Module, loss_fn):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, foreach=True)
    ema = EMA(model)

    def step() -> float:
        start = time.perf_counter()
        loss = loss_fn()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema.update(model)
        if loss.is_cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - start

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="nomad", choices=("tiny", "demo", "nomad"))
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cfg = preset_training_config(args.preset)
    torch.manual_seed(0)
    plain = NoMaDPolicy(cfg.model, cfg.scheduler).to(device).train()
    two = TwoStageIntentModel(cfg.model, cfg.intent, cfg.scheduler).to(device).train()
    scheduler = build_noise_scheduler(cfg.scheduler)
    batch = make_batch(cfg, args.batch_size, device)
    tc = cfg.train
    steps = {
        "nomad": make_step(plain, lambda: nomad_loss(plain, batch, scheduler, tc.goal_mask_prob, tc.alpha)),
        "two_stage": make_step(
            two,
            lambda: two.compute_loss(
                batch, scheduler, kl_weight=cfg.intent.beta, goal_mask_prob=tc.goal_mask_prob, alpha=tc.alpha
            )["loss"],
        ),
    }
    n_plain = sum(p.numel() for p in plain.parameters())
    n_two = sum(p.numel() for p in two.parameters())
    print(
        f"preset {args.preset}, batch {args.batch_size}, {args.threads} threads, device {device}; params: "
        f"nomad {n_plain / 1e6:.2f} M, two-stage {n_two / 1e6:.2f} M (+{(n_two - n_plain) / 1e6:.3f} M)"
    )
    for _ in range(args.warmup):
        for step in steps.values():
            step()
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(args.reps):
        for name, step in steps.items():
            times[name].append(step())
    med = {k: statistics.median(v) for k, v in times.items()}
    for name, values in times.items():
        print(
            f"{name:>10}: median {med[name] * 1e3:8.1f} ms  (min {min(values) * 1e3:.1f}, max {max(values) * 1e3:.1f})"
        )
    ratio = med["two_stage"] / med["nomad"]
    print(f"ratio two_stage / nomad = {ratio:.3f}  (target <= 1.10: {'OK' if ratio <= 1.10 else 'ABOVE'})")


if __name__ == "__main__":
    main()
