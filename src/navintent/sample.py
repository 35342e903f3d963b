"""``navintent sample``: sample NoMaD trajectories for an observation and plot them.

Builds a policy from ``--preset`` (random weights) or loads ``--ckpt`` (native, nomad.pth + ``--config``, or a
packaged file with ``--trust-checkpoint``), encodes the observation context and goal ONCE, runs NoMaD's
deployment loop (``num_samples`` draws, diffusers ``DDPMScheduler``, no grad), converts the normalised deltas to
metric waypoints in the robot frame (x forward, y left) and writes:

- ``<out-dir>/sample.png`` — current frame with the waypoints projected through a nominal camera, the goal, and a
  top-down view of all samples;
- ``<out-dir>/trajectories.pt`` — ``{"waypoints_m" [N, T, 2], "normalized_deltas" [N, T, A], ...}`` (plain
  tensors and data, loadable with ``torch.load(weights_only=True)``).

Without ``--obs`` a built-in, procedurally drawn corridor is used (its frames are written to ``<out-dir>/scene``).
Decisions: with fewer ``--obs`` frames than the context needs, the oldest given frame is repeated (a robot that
stood still); without ``--goal`` the goal is masked (NoMaD's exploration mode). The overlay camera is nominal
(height ``CAMERA_HEIGHT_M``, ``CAMERA_HFOV_DEG`` horizontal field of view, level): exact for the built-in scene,
indicative for other images.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from navintent.cli import float_at_least, int_at_least
from navintent.commands.common import add_metric_scale_arguments, metric_scale_for_command

CAMERA_HEIGHT_M = 0.6
CAMERA_HFOV_DEG = 90.0
DISPLAY_SIZE = (320, 240)  # 4:3, NoMaD's crop aspect


# --------------------------------------------------------------------------------------------------
# nominal camera and the built-in corridor
# --------------------------------------------------------------------------------------------------
def _focal(width: int) -> float:
    return (width / 2) / math.tan(math.radians(CAMERA_HFOV_DEG) / 2)


def project(points: np.ndarray, size: tuple[int, int] = DISPLAY_SIZE) -> np.ndarray:
    """Camera-frame points ``[N, 3]`` (x forward, y left, z up, metres; x > 0) -> pixels ``[N, 2]`` (u right, v down)."""
    w, h = size
    f = _focal(w)
    x, y, z = points[:, 0], points[:, 1], points[:, 2]
    return np.stack([w / 2 - f * y / x, h / 2 - f * z / x], axis=1)


def ground_to_pixels(waypoints: np.ndarray, size: tuple[int, int] = DISPLAY_SIZE) -> np.ndarray:
    """Robot-frame ground points ``[N, 2]`` (metres) -> pixels ``[M, 2]`` for the points at least 0.1 m ahead."""
    ahead = waypoints[waypoints[:, 0] > 0.1]
    return project(np.column_stack([ahead, np.full(len(ahead), -CAMERA_HEIGHT_M)]), size)


def render_corridor(camera_x: float, seed: int = 0, size: tuple[int, int] = DISPLAY_SIZE) -> Image.Image:
    """Draw a corridor seen from ``camera_x`` metres along it (level camera, centred): floor tiles, walls with
    doors, ceiling lights and an end wall. ``seed`` varies door positions and colours. RGB image of ``size``."""
    rng = np.random.default_rng(seed)
    half_width, ceiling, floor = 1.2, 2.4 - CAMERA_HEIGHT_M, -CAMERA_HEIGHT_M
    near, end = 0.15, 30.0
    img = Image.new("RGB", size, (0, 0, 0))
    draw = ImageDraw.Draw(img)

    def poly(corners: list[tuple[float, float, float]], fill, outline=None) -> None:
        rel = np.array([(x - camera_x, y, z) for x, y, z in corners])
        if (rel[:, 0] < near).any():
            return
        draw.polygon([tuple(p) for p in project(rel, size)], fill=fill, outline=outline)

    def span(x0: float, x1: float) -> tuple[float, float] | None:
        x0, x1 = max(x0, camera_x + near), min(x1, end)
        return (x0, x1) if x1 > x0 else None

    far = end
    start = camera_x + near
    wall_tone = rng.integers(175, 215)
    poly([(start, half_width, ceiling), (far, half_width, ceiling), (far, -half_width, ceiling), (start, -half_width, ceiling)], (228, 228, 224))  # fmt: skip
    poly([(start, half_width, floor), (far, half_width, floor), (far, half_width, ceiling), (start, half_width, ceiling)], (wall_tone - 15,) * 2 + (wall_tone - 30,))  # fmt: skip
    poly([(start, -half_width, floor), (far, -half_width, floor), (far, -half_width, ceiling), (start, -half_width, ceiling)], (wall_tone,) * 2 + (wall_tone - 15,))  # fmt: skip
    poly([(start, half_width, floor), (far, half_width, floor), (far, -half_width, floor), (start, -half_width, floor)], (150, 138, 118))  # fmt: skip
    poly([(far, half_width, floor), (far, -half_width, floor), (far, -half_width, ceiling), (far, half_width, ceiling)], (96, 120, 150))  # fmt: skip
    # Floor tile seams: transverse every metre, three longitudinal lines.
    seam = (122, 112, 96)
    for x in np.arange(math.ceil(start), far, 1.0):
        poly([(x, half_width, floor), (x + 0.03, half_width, floor), (x + 0.03, -half_width, floor), (x, -half_width, floor)], seam)  # fmt: skip
    for y in (-0.6, 0.0, 0.6):
        poly([(start, y - 0.015, floor), (far, y - 0.015, floor), (far, y + 0.015, floor), (start, y + 0.015, floor)], seam)  # fmt: skip
    # Doors (far first so near ones paint over), then ceiling lights.
    doors = [(x, side) for x in np.arange(2.0, end - 2, 4.0) + rng.uniform(-0.8, 0.8, 7) for side in (-1, 1)]
    doors = [(x, side) for x, side in doors if rng.random() < 0.7]
    door_colour = tuple(int(c) for c in rng.integers((90, 50, 30), (150, 100, 70)))
    for x, side in sorted(doors, key=lambda d: -d[0]):
        if (s := span(x, x + 0.9)) is not None:
            y = side * (half_width - 0.01)
            poly([(s[0], y, floor), (s[1], y, floor), (s[1], y, floor + 2.05), (s[0], y, floor + 2.05)], door_colour, outline=(60, 40, 25))  # fmt: skip
    for x in sorted(np.arange(1.5, end, 3.0), reverse=True):
        if (s := span(x, x + 0.6)) is not None:
            poly([(s[0], 0.25, ceiling - 0.01), (s[1], 0.25, ceiling - 0.01), (s[1], -0.25, ceiling - 0.01), (s[0], -0.25, ceiling - 0.01)], (255, 250, 215))  # fmt: skip
    return img


def builtin_scene(out_dir: Path, num_frames: int, seed: int) -> tuple[list[Path], Path]:
    """Write the corridor frames (oldest first, 0.25 m apart, current at x = 0) and a goal 5 m ahead; return paths."""
    scene_dir = out_dir / "scene"
    scene_dir.mkdir(parents=True, exist_ok=True)
    obs_paths = []
    for i in range(num_frames):
        path = scene_dir / f"obs_{i}.png"
        render_corridor(-0.25 * (num_frames - 1 - i), seed=seed).save(path)
        obs_paths.append(path)
    goal_path = scene_dir / "goal.png"
    render_corridor(5.0, seed=seed).save(goal_path)
    return obs_paths, goal_path


# --------------------------------------------------------------------------------------------------
# the command
# --------------------------------------------------------------------------------------------------
def _load_frames(paths: list[Path], image_size: tuple[int, int]) -> np.ndarray:
    from navintent.data.cache import decode_image

    return np.stack([decode_image(Path(p), image_size) for p in paths])


def _display_frame(path: Path) -> np.ndarray:
    from navintent.data.cache import decode_image

    return decode_image(Path(path), DISPLAY_SIZE)


def _build_policy(args: argparse.Namespace):
    """``(policy, description, training scales)``: a checkpoint's EMA policy and recorded training scales, or a
    preset's random policy (no scales)."""
    from navintent.checkpoint import load_inference_model
    from navintent.config import preset_model_config
    from navintent.models.nomad import NoMaDPolicy

    if args.ckpt is not None:
        loaded = load_inference_model(args.ckpt, config=args.config, trust_checkpoint=args.trust_checkpoint)
        return loaded.model, f"checkpoint {args.ckpt}", loaded.training_scales
    if args.config is not None:
        raise ValueError("--config is only used with --ckpt (a nomad.pth needs it)")
    return (
        NoMaDPolicy(preset_model_config(args.preset)).eval(),
        f"preset '{args.preset}' (random weights)",
        (),
    )


def run_sample(args: argparse.Namespace) -> int:
    """``navintent sample``: sample, plot and save the trajectories; returns 0. Raises ``ValueError`` for flags that
    do not go together (``--config`` without ``--ckpt``, ``--goal`` without ``--obs``, more ``--obs`` frames than the
    model takes; exit status 2 through :func:`navintent.cli.main`)."""
    import torch

    from navintent.actions import normalized_deltas_to_waypoints
    from navintent.transforms import normalize_frames

    torch.manual_seed(args.seed)
    policy, source, scales = _build_policy(args)
    metric_scale = metric_scale_for_command(args, checkpoint=scales)
    policy = policy.to(args.device)
    cfg = policy.config
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frames_needed = cfg.context_size + 1

    if args.obs:
        obs_paths = [Path(p) for p in args.obs]
        if len(obs_paths) > frames_needed:
            raise ValueError(
                f"got {len(obs_paths)} --obs images; this model takes at most {frames_needed} "
                f"(context_size {cfg.context_size} + current)"
            )
        obs_paths = [obs_paths[0]] * (frames_needed - len(obs_paths)) + obs_paths
        goal_path = Path(args.goal) if args.goal else None
        scene = "your images"
    else:
        if args.goal:
            raise ValueError("--goal needs --obs (the built-in scene draws its own goal)")
        obs_paths, goal_path = builtin_scene(out_dir, frames_needed, args.seed)
        scene = f"built-in corridor (frames in {out_dir / 'scene'})"

    obs = normalize_frames(_load_frames(obs_paths, cfg.image_size))
    if goal_path is not None:
        goal = normalize_frames(_load_frames([goal_path], cfg.image_size))
        goal_mask = 0
    else:
        goal = np.zeros((3, cfg.image_size[1], cfg.image_size[0]), dtype=np.float32)
        goal_mask = 1
    obs_t = torch.from_numpy(obs)[None].to(args.device)
    goal_t = torch.from_numpy(goal)[None].to(args.device)
    mask_t = torch.tensor([goal_mask], device=args.device)
    latent = None
    if args.latent_seed is not None:
        gen = torch.Generator().manual_seed(args.latent_seed)
        latent = torch.randn(1, policy.z_dim, generator=gen).to(args.device)

    generator = torch.Generator(device=args.device).manual_seed(args.seed)
    start = time.perf_counter()
    ndeltas = policy.sample(
        obs_t,
        goal_t,
        mask_t,
        num_samples=args.num_samples,
        latent_z=latent,
        lambda_cfg=args.lambda_cfg,
        generator=generator,
    )[0].cpu()
    elapsed = time.perf_counter() - start
    waypoints = (
        normalized_deltas_to_waypoints(ndeltas, cfg.action_min, cfg.action_max)[..., :2]
        * metric_scale.metres_per_unit
    )
    steps = policy.scheduler_config.num_train_timesteps  # sample() runs every training timestep, as NoMaD

    pt_path = out_dir / "trajectories.pt"
    torch.save(
        {
            "waypoints_m": waypoints.contiguous(),
            "normalized_deltas": ndeltas.contiguous(),
            "metric_scale": float(metric_scale.metres_per_unit),
            "metric_scale_source": metric_scale.source,
            "goal_mask": goal_mask,
            "lambda_cfg": float(args.lambda_cfg),
            "latent_z": None if latent is None else latent.cpu(),
            "seed": int(args.seed),
            "source": source,
            "obs": [str(p) for p in obs_paths],
            "goal": None if goal_path is None else str(goal_path),
            "model_config": cfg.to_dict(),
        },
        pt_path,
    )
    png_path = out_dir / "sample.png"
    _plot(png_path, waypoints.numpy(), obs_paths[-1], goal_path, title=f"{source} — {scene}")
    final = waypoints[:, -1].norm(dim=-1)
    mode = "goal visible" if goal_mask == 0 else "goal masked (exploration)"
    print(
        f"navintent sample: {source}; {scene}; {mode}.\n"
        f"  encoded {frames_needed} frames + goal once, ran {steps} DDPM denoising steps for {args.num_samples} "
        f"samples in {elapsed:.2f} s on {args.device}; {metric_scale.describe()}.\n"
        f"  final-waypoint distance: mean {final.mean():.2f} m (min {final.min():.2f}, max {final.max():.2f}).\n"
        f"  wrote {png_path} and {pt_path}"
    )
    return 0


def _plot(path: Path, waypoints: np.ndarray, current: Path, goal: Path | None, title: str) -> None:
    """Three panels: current frame + projected waypoints, goal, top-down (x forward up, y left to the left)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = plt.cm.viridis(np.linspace(0.05, 0.95, len(waypoints)))
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.6), gridspec_kw={"width_ratios": [4, 4, 3]})
    ax = axes[0]
    ax.imshow(_display_frame(current))
    for wp, c in zip(waypoints, colours, strict=True):
        pix = ground_to_pixels(np.vstack([[0.0, 0.0], wp]))
        ax.plot(pix[:, 0], pix[:, 1], "-o", color=c, ms=3, lw=1.5)
    ax.set_xlim(0, DISPLAY_SIZE[0])
    ax.set_ylim(DISPLAY_SIZE[1], 0)
    ax.set_title("current frame + waypoints (nominal camera)")
    ax.axis("off")
    ax = axes[1]
    if goal is not None:
        ax.imshow(_display_frame(goal))
        ax.set_title("goal image")
    else:
        ax.text(0.5, 0.5, "goal masked\n(exploration mode)", ha="center", va="center", fontsize=12)
        ax.set_title("goal")
    ax.axis("off")
    ax = axes[2]
    for i, (wp, c) in enumerate(zip(waypoints, colours, strict=True)):
        path_xy = np.vstack([[0.0, 0.0], wp])
        ax.plot(-path_xy[:, 1], path_xy[:, 0], "-o", color=c, ms=3, label=f"sample {i}")
    ax.plot([0], [0], marker="^", color="k", ms=10)
    ax.set_xlabel("lateral (m, right +)")
    ax.set_ylabel("forward (m)")
    ax.set_aspect("equal", adjustable="datalim")
    ax.grid(True, alpha=0.3)
    ax.set_title("top-down, robot frame")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "sample",
        help="sample NoMaD trajectories for an observation (built-in corridor by default) and plot them",
        description="Load a policy (a checkpoint, or a preset with random weights), encode the observation context and "
        "goal once, draw --num-samples trajectories with NoMaD's DDPM loop and write OUT-DIR/sample.png (the "
        "waypoints on the current frame and top-down) and OUT-DIR/trajectories.pt (metres, robot frame). Without "
        "--obs a built-in corridor is drawn; with fewer --obs frames than the context needs, the oldest is repeated "
        "(a robot that stood still); without --goal the goal is masked (exploration). The metric scale is printed "
        "with its source (navintent.metric_scale).",
    )
    src = p.add_argument_group("policy")
    src.add_argument(
        "--preset", choices=("tiny", "demo", "nomad"), default="nomad", help="random-weight model size"
    )
    src.add_argument("--ckpt", type=Path, help="native checkpoint, nomad.pth (+ --config) or packaged file")
    src.add_argument("--config", type=Path, help="nomad.yaml (or navintent config YAML) for a bare nomad.pth")
    src.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="allow unpickling Python objects (packaged files); this can run code from the file",
    )
    inp = p.add_argument_group("input")
    inp.add_argument("--obs", nargs="+", type=Path, help="observation images, oldest first, current last")
    inp.add_argument("--goal", type=Path, help="goal image (omit: goal masked, exploration mode)")
    smp = p.add_argument_group("sampling")
    smp.add_argument("--num-samples", type=int_at_least(1), default=8)
    smp.add_argument(
        "--seed", type=int, default=0, help="seeds x_T, the DDPM step noise and the built-in scene"
    )
    smp.add_argument(
        "--lambda-cfg", type=float_at_least(0.0), default=0.0, help="guidance weight w (needs --latent-seed)"
    )
    smp.add_argument(
        "--latent-seed", type=int, help="draw latent_z ~ N(0, I) with this seed (default: no latent)"
    )
    add_metric_scale_arguments(smp)
    smp.add_argument("--device", default="cpu")
    p.add_argument("--out-dir", type=Path, default=Path("runs/sample"))
    p.set_defaults(func=run_sample)
