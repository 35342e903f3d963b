"""Sample NoMaD trajectories for an observation and plot them: :func:`sample_trajectories` (``navintent sample``,
whose flags are in :mod:`navintent.commands.sample`).

Builds a policy from ``preset`` (random weights) or loads ``ckpt`` (native, nomad.pth + ``config``, or a
packaged file with ``trust_checkpoint``), encodes the observation context and goal ONCE, runs NoMaD's
deployment loop (``num_samples`` draws, diffusers ``DDPMScheduler``, no grad), converts the normalised deltas to
metric waypoints in the robot frame (x forward, y left) and writes:

- ``<out-dir>/sample.png`` — current frame with the waypoints projected through a nominal camera, the goal, and a
  top-down view of all samples;
- ``<out-dir>/trajectories.pt`` — ``{"waypoints_m" [N, T, 2], "normalized_deltas" [N, T, A], ...}`` (plain
  tensors and data, loadable with ``torch.load(weights_only=True)``).

Without ``obs`` a built-in, procedurally drawn corridor is used (its frames are written to ``<out-dir>/scene``).
Decisions: with fewer ``obs`` frames than the context needs, the oldest given frame is repeated (a robot that
stood still); without ``goal`` the goal is masked (NoMaD's exploration mode). The overlay camera is nominal
(height ``CAMERA_HEIGHT_M``, ``CAMERA_HFOV_DEG`` horizontal field of view, level): exact for the built-in scene,
indicative for other images.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image, ImageDraw
from torch import Tensor

from navintent.actions import normalized_deltas_to_waypoints
from navintent.checkpoint import load_inference_model
from navintent.config import check_non_negative_number, check_positive_int, preset_model_config
from navintent.data.cache import decode_image
from navintent.metric_scale import MetricScale, resolve_and_log_metric_scale
from navintent.models.nomad import NoMaDPolicy
from navintent.transforms import normalize_frames

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
# sampling
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SampleResult:
    """What :func:`sample_trajectories` drew and wrote.

    ``waypoints_m`` ``[N, T, 2]`` (metres, robot frame: x forward, y left) and ``normalized_deltas`` ``[N, T, A]``
    (the policy's output in [-1, 1]); ``metric_scale``: metres per unit and its source; ``source``: the policy
    (checkpoint or preset); ``scene``: the observation (the user's images or the built-in corridor);
    ``goal_masked``: no goal image (exploration); ``frames``: observation frames encoded; ``steps``: DDPM denoising
    steps; ``seconds``: sampling time; ``device``; ``png_path`` / ``pt_path``: the files written.
    """

    waypoints_m: Tensor
    normalized_deltas: Tensor
    metric_scale: MetricScale
    source: str
    scene: str
    goal_masked: bool
    frames: int
    steps: int
    seconds: float
    device: str
    png_path: Path
    pt_path: Path

    @property
    def num_samples(self) -> int:
        return int(self.waypoints_m.shape[0])


def _load_frames(paths: list[Path], image_size: tuple[int, int]) -> np.ndarray:
    return np.stack([decode_image(Path(p), image_size) for p in paths])


def _display_frame(path: Path) -> np.ndarray:
    return decode_image(Path(path), DISPLAY_SIZE)


def _build_policy(
    ckpt: str | Path | None, config: str | Path | None, trust_checkpoint: bool, preset: str
) -> tuple[NoMaDPolicy, str, tuple]:
    """``(policy, description, training scales)``: a checkpoint's EMA policy and recorded training scales, or a
    preset's random policy (no scales)."""
    if ckpt is not None:
        loaded = load_inference_model(ckpt, config=config, trust_checkpoint=trust_checkpoint)
        return loaded.model, f"checkpoint {ckpt}", loaded.training_scales
    if config is not None:
        raise ValueError("--config is only used with --ckpt (a nomad.pth needs it)")
    return NoMaDPolicy(preset_model_config(preset)).eval(), f"preset '{preset}' (random weights)", ()


def sample_trajectories(
    out_dir: str | Path = "runs/sample",
    *,
    ckpt: str | Path | None = None,
    config: str | Path | None = None,
    trust_checkpoint: bool = False,
    preset: str = "nomad",
    obs: Sequence[str | Path] = (),
    goal: str | Path | None = None,
    num_samples: int = 8,
    seed: int = 0,
    lambda_cfg: float = 0.0,
    latent_seed: int | None = None,
    metric_scale: float | None = None,
    robot: str | Path | None = None,
    scale_dataset: str | None = None,
    device: str = "cpu",
) -> SampleResult:
    """Sample ``num_samples`` trajectories, plot them and save them in ``out_dir`` (module docstring).

    The policy: ``ckpt`` (native, nomad.pth + ``config``, or a packaged file with ``trust_checkpoint``), else a
    ``preset`` with random weights. ``obs``: observation images, oldest first (none: the built-in corridor);
    ``goal``: the goal image (None: masked). ``seed`` seeds x_T, the DDPM step noise and the built-in scene;
    ``latent_seed`` draws ``latent_z ~ N(0, I)`` (None: no latent); ``lambda_cfg``: the guidance weight.
    ``metric_scale`` (m per unit), ``robot`` (a NoMaD ``robot.yaml``), ``scale_dataset``: the metric scale as
    :func:`navintent.metric_scale.resolve_metric_scale` resolves it (logged). Raises ``ValueError`` for settings
    that do not go together (``config`` without ``ckpt``, ``goal`` without ``obs``, more ``obs`` frames than the
    model takes; exit status 2 through :func:`navintent.cli.main`)."""
    check_positive_int("num_samples", num_samples)
    check_non_negative_number("lambda_cfg", lambda_cfg)
    torch.manual_seed(seed)
    policy, source, scales = _build_policy(ckpt, config, trust_checkpoint, preset)
    scale = resolve_and_log_metric_scale(
        explicit=metric_scale, robot_yaml=robot, pick=scale_dataset, checkpoint=scales
    )
    policy = policy.to(device)
    cfg = policy.config
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frames_needed = cfg.context_size + 1

    if obs:
        obs_paths = [Path(p) for p in obs]
        if len(obs_paths) > frames_needed:
            raise ValueError(
                f"got {len(obs_paths)} --obs images; this model takes at most {frames_needed} "
                f"(context_size {cfg.context_size} + current)"
            )
        obs_paths = [obs_paths[0]] * (frames_needed - len(obs_paths)) + obs_paths
        goal_path = Path(goal) if goal else None
        scene = "your images"
    else:
        if goal:
            raise ValueError("--goal needs --obs (the built-in scene draws its own goal)")
        obs_paths, goal_path = builtin_scene(out_dir, frames_needed, seed)
        scene = f"built-in corridor (frames in {out_dir / 'scene'})"

    obs_frames = normalize_frames(_load_frames(obs_paths, cfg.image_size))
    if goal_path is not None:
        goal_frame = normalize_frames(_load_frames([goal_path], cfg.image_size))
        goal_mask = 0
    else:
        goal_frame = np.zeros((3, cfg.image_size[1], cfg.image_size[0]), dtype=np.float32)
        goal_mask = 1
    obs_t = torch.from_numpy(obs_frames)[None].to(device)
    goal_t = torch.from_numpy(goal_frame)[None].to(device)
    mask_t = torch.tensor([goal_mask], device=device)
    latent = None
    if latent_seed is not None:
        gen = torch.Generator().manual_seed(latent_seed)
        latent = torch.randn(1, policy.z_dim, generator=gen).to(device)

    generator = torch.Generator(device=device).manual_seed(seed)
    start = time.perf_counter()
    ndeltas = policy.sample(
        obs_t,
        goal_t,
        mask_t,
        num_samples=num_samples,
        latent_z=latent,
        lambda_cfg=lambda_cfg,
        generator=generator,
    )[0].cpu()
    elapsed = time.perf_counter() - start
    waypoints = (
        normalized_deltas_to_waypoints(ndeltas, cfg.action_min, cfg.action_max)[..., :2]
        * scale.metres_per_unit
    )
    steps = policy.scheduler_config.num_train_timesteps  # sample() runs every training timestep, as NoMaD

    pt_path = out_dir / "trajectories.pt"
    torch.save(
        {
            "waypoints_m": waypoints.contiguous(),
            "normalized_deltas": ndeltas.contiguous(),
            "metric_scale": float(scale.metres_per_unit),
            "metric_scale_source": scale.source,
            "goal_mask": goal_mask,
            "lambda_cfg": float(lambda_cfg),
            "latent_z": None if latent is None else latent.cpu(),
            "seed": int(seed),
            "source": source,
            "obs": [str(p) for p in obs_paths],
            "goal": None if goal_path is None else str(goal_path),
            "model_config": cfg.to_dict(),
        },
        pt_path,
    )
    png_path = out_dir / "sample.png"
    _plot(png_path, waypoints.numpy(), obs_paths[-1], goal_path, title=f"{source} — {scene}")
    return SampleResult(
        waypoints_m=waypoints,
        normalized_deltas=ndeltas,
        metric_scale=scale,
        source=source,
        scene=scene,
        goal_masked=goal_mask == 1,
        frames=frames_needed,
        steps=steps,
        seconds=elapsed,
        device=str(device),
        png_path=png_path,
        pt_path=pt_path,
    )


def _plot(path: Path, waypoints: np.ndarray, current: Path, goal: Path | None, title: str) -> None:
    """Three panels: current frame + projected waypoints, goal, top-down (x forward up, y left to the left).
    Drawn on a :class:`matplotlib.figure.Figure`, so the caller's backend is left alone."""
    colours = matplotlib.colormaps["viridis"](np.linspace(0.05, 0.95, len(waypoints)))
    fig = Figure(figsize=(14, 4.6))
    axes = fig.subplots(1, 3, gridspec_kw={"width_ratios": [4, 4, 3]})
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
