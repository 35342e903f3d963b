"""NoMaD's deployment loop as a library: topological-map navigation and goal-masked exploration.

ROS-free (torch + numpy): a robot stack feeds camera frames to :meth:`TopomapNavigator.step` or
:meth:`Explorer.step` at its control rate and sends the returned waypoint to :func:`navintent.control.pd_follower`
(``examples/deploy_ros2.py`` shows the wiring); the built-in world does the same in ``navintent evaluate --task``.
Semantics follow visualnav-transformer's ``deployment/src/navigate.py`` and ``explore.py`` (parameter names are
theirs):

- the last ``context_size + 1`` frames are kept (oldest first); before the queue is full nothing is planned and the
  waypoint is zero, as NoMaD publishes;
- **localisation**: the window of nodes ``start = max(closest - radius, 0)`` .. ``end = min(closest + radius + 1,
  goal_node)`` (both included) is compared with the context in ONE batched vision pass (goal mask 0), the distance
  head predicts a temporal distance to each node, and ``closest = start + argmin``;
- **subgoal**: the window index ``min(argmin + (d[argmin] < close_threshold), len(window) - 1)``: the next node once
  the closest one is within ``close_threshold``;
- **action**: ``num_samples`` trajectories are sampled towards the subgoal (its condition from the same pass, DDPM
  with every training timestep, as NoMaD); sample 0's waypoint ``waypoint_index`` (a cumulative position, normalised
  units) times ``metric_scale`` (metres per unit; :mod:`navintent.metric_scale`) is the waypoint to follow;
- **goal**: ``reached_goal`` when the goal node is the closest node AND its predicted distance is below
  ``close_threshold``. Decision: NoMaD's ``navigate.py`` stops as soon as the goal node is the closest one, which
  can be many steps before it; ``stop_when_closest=True`` restores that rule;
- **exploration** (``explore.py``): the goal token is masked (mask 1) and no map is used.

Frames are centre-cropped to 4:3 before resizing (``center_crop=True``), as navintent's training data is served;
NoMaD's deployment does not crop (``center_crop=False`` reproduces it; on non-4:3 cameras the two differ).

**Latent** (``latent=``): ``"none"`` (NoMaD's unconditional branch, latent_z = None), ``"prior"`` (z1 = 0, the
prior mean, through Encoder2), ``"reference"`` (z1 = Encoder1's mean with ``reference_fn()``'s path: ``[T_ref, D]``
in normalised units in the current robot frame), or a callable that receives a :class:`LatentRequest` each re-plan
and returns ``z2 [1, z_dim]`` (or None): the place a steering optimiser plugs in, so steering runs inside the loop.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from navintent.actions import normalized_deltas_to_waypoints
from navintent.config import check_non_negative_int, check_positive_int, check_positive_number
from navintent.transforms import prepare_frames

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
LATENT_MODES = ("none", "prior", "reference")


# ------------------------------------------------------------------------------------------------ topological map
@dataclass
class Topomap:
    """An ordered list of node images (uint8 ``[H, W, 3]`` each), node 0 first, the goal usually last.

    ``poses``: where each node was recorded (``(x, y, yaw)``, world frame), when known (the built-in world records
    them; a robot's map need not have them). They are for evaluation only; navigation uses the images."""

    images: list[np.ndarray]
    poses: list[np.ndarray] | None = None

    def __post_init__(self) -> None:
        if not self.images:
            raise ValueError("a topological map needs at least one node image, got none")
        for i, img in enumerate(self.images):
            if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
                shape = getattr(img, "shape", None)
                raise ValueError(
                    f"node {i} must be a uint8 [H, W, 3] image, got {type(img).__name__} {shape}"
                )
        if self.poses is not None and len(self.poses) != len(self.images):
            raise ValueError(
                f"poses must have one entry per node ({len(self.images)}), got {len(self.poses)}"
            )

    def __len__(self) -> int:
        return len(self.images)

    @classmethod
    def from_folder(cls, folder: str | Path) -> Topomap:
        """Read NoMaD's ``topomaps/images/<name>/`` layout: ``0.png, 1.png, ...`` (or .jpg), ordered by the integer
        file name as ``navigate.py`` orders them. Raises ``FileNotFoundError`` for a missing folder and
        ``ValueError`` naming the file for an image whose name is not an integer or that cannot be read."""
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"topological map folder not found: {folder}")
        files = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
        bad = [p.name for p in files if not re.fullmatch(r"\d+", p.stem)]
        if bad:
            raise ValueError(
                f"{folder}: node images must be named by their index (0.png, 1.png, ...), got {bad[:5]}"
            )
        if not files:
            raise ValueError(f"{folder}: no node images ({', '.join(IMAGE_SUFFIXES)})")
        images = []
        for path in sorted(files, key=lambda p: int(p.stem)):
            try:
                with Image.open(path) as img:
                    images.append(np.asarray(img.convert("RGB")))
            except OSError as err:
                raise ValueError(f"{path}: cannot read the node image: {err}") from err
        return cls(images)

    def save(self, folder: str | Path) -> Path:
        """Write ``folder/0.png ... N-1.png`` (NoMaD's layout); the folder must not hold node images already."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir()):
            raise FileExistsError(f"{folder} already holds images; write a topological map to a new folder")
        for i, img in enumerate(self.images):
            Image.fromarray(img).save(folder / f"{i}.png")
        return folder


class TopomapRecorder:
    """Builds a :class:`Topomap` from a traversal (NoMaD's ``create_topomap.py`` saves a frame every ``dt`` s):
    a node every ``every_frames`` frames, or every ``every_metres`` metres travelled (then each frame needs its
    pose). The first frame is always a node; :meth:`topomap` adds the last frame as the goal node when it is not
    one already."""

    def __init__(self, *, every_frames: int | None = None, every_metres: float | None = None) -> None:
        if (every_frames is None) == (every_metres is None):
            raise ValueError(
                f"give exactly one of every_frames and every_metres, got {every_frames!r} and {every_metres!r}"
            )
        if every_frames is not None:
            check_positive_int("every_frames", every_frames)
        if every_metres is not None:
            check_positive_number("every_metres", every_metres)
        self.every_frames, self.every_metres = every_frames, every_metres
        self.images: list[np.ndarray] = []
        self.poses: list[np.ndarray] = []
        self._frames = 0
        self._travelled = 0.0
        self._last: tuple[np.ndarray, np.ndarray | None] | None = None
        self._last_pose: np.ndarray | None = None
        self._last_was_node = False

    def add(self, frame: np.ndarray, pose: np.ndarray | None = None) -> bool:
        """Offer one frame (uint8 ``[H, W, 3]``) and its pose ``(x, y, yaw)``; returns whether it became a node."""
        if self.every_metres is not None and pose is None:
            raise ValueError("every_metres needs each frame's pose (x, y, yaw)")
        pose = None if pose is None else np.asarray(pose, dtype=np.float64)
        if pose is not None and self._last_pose is not None:
            self._travelled += float(np.linalg.norm(pose[:2] - self._last_pose[:2]))
        self._last_pose = pose
        if self.every_frames is not None:
            node = self._frames % self.every_frames == 0
        else:
            node = not self.images or self._travelled >= self.every_metres
        self._frames += 1
        self._last = (frame, pose)
        self._last_was_node = node
        if node:
            self._travelled = 0.0
            self.images.append(np.asarray(frame, dtype=np.uint8).copy())
            self.poses.append(pose)
        return node

    def topomap(self) -> Topomap:
        """The map so far, with the last frame added as the goal node if it is not one."""
        if self._last is None:
            raise ValueError("no frame was recorded")
        images, poses = list(self.images), list(self.poses)
        if not self._last_was_node:
            images.append(np.asarray(self._last[0], dtype=np.uint8).copy())
            poses.append(self._last[1])
        return Topomap(images, None if any(p is None for p in poses) else poses)


# ------------------------------------------------------------------------------------------------ latents
@dataclass
class LatentRequest:
    """What a latent source sees at one re-plan: the ``model``, the subgoal's condition ``cond [1, E]`` and tokens
    ``[1, C + 2, E]`` from the one vision pass, ``goal_mask [1]`` (1 = exploring), and the ``step`` count."""

    model: Any
    cond: Tensor
    tokens: Tensor
    goal_mask: Tensor
    step: int


LatentFn = Callable[[LatentRequest], "Tensor | None"]


def _latent_fn(latent: str | LatentFn | None, reference_fn: Callable[[], Any] | None) -> LatentFn:
    if callable(latent):
        return latent
    mode = latent or "none"
    if mode not in LATENT_MODES:
        raise ValueError(f"latent must be one of {LATENT_MODES} or a callable, got {latent!r}")
    if mode == "none":
        return lambda req: None
    if mode == "prior":
        return lambda req: req.model.z2_from_tokens(req.cond.new_zeros(1, req.model.z1_dim), req.tokens)
    if reference_fn is None:
        raise ValueError(
            "latent='reference' needs reference_fn (the path ahead, [T_ref, D] in normalised units)"
        )

    def from_reference(req: LatentRequest) -> Tensor:
        ref = torch.as_tensor(reference_fn(), dtype=req.cond.dtype, device=req.cond.device)[None]
        present = torch.ones(1, dtype=torch.bool, device=req.cond.device)
        z1, _ = req.model.posterior(req.tokens, req.goal_mask, ref, present)
        return req.model.z2_from_tokens(z1, req.tokens)

    return from_reference


# ------------------------------------------------------------------------------------------------ the loop
@dataclass
class DeployStep:
    """One tick of the loop. ``ready``: the context queue was full and a plan was made (else everything below is
    empty and ``waypoint`` is zero). ``waypoint`` ``[2]`` metres in the robot frame (x forward, y left);
    ``trajectories`` ``[num_samples, T, 2]`` metres (sample 0 is followed); ``z2`` the latent used (or None);
    ``latency_ms`` the planning time. Navigation only: ``closest_node``, ``subgoal_node``, ``window`` (first and
    last node compared), ``distances`` (predicted temporal distance to each window node), ``reached_goal``."""

    ready: bool
    waypoint: np.ndarray
    trajectories: np.ndarray | None = None
    z2: Tensor | None = None
    latency_ms: float = 0.0
    closest_node: int | None = None
    subgoal_node: int | None = None
    window: tuple[int, int] | None = None
    distances: np.ndarray | None = None
    reached_goal: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Localisation:
    """Where the context is on the map: ``closest_node``, ``subgoal_node``, ``window`` (first and last node
    compared), ``distances`` (predicted temporal distance to each window node), ``reached_goal``, and the window's
    conditions ``cond [n, E]`` and tokens ``[n, C + 2, E]`` from the one vision pass."""

    closest_node: int
    subgoal_node: int
    window: tuple[int, int]
    distances: np.ndarray
    reached_goal: bool
    cond: Tensor
    tokens: Tensor


class _Loop:
    """Shared machinery: the context queue, preprocessing, sampling towards a condition with a latent."""

    def __init__(
        self,
        policy: Any,
        *,
        num_samples: int = 8,
        waypoint_index: int = 2,
        metric_scale: float,
        latent: str | LatentFn | None = "none",
        reference_fn: Callable[[], Any] | None = None,
        lambda_cfg: float = 0.0,
        center_crop: bool = True,
        seed: int = 0,
    ) -> None:
        check_positive_int("num_samples", num_samples)
        check_non_negative_int("waypoint_index", waypoint_index)
        check_positive_number("metric_scale", metric_scale)
        cfg = policy.config
        if waypoint_index >= cfg.len_traj_pred:
            raise ValueError(
                f"waypoint_index must be < len_traj_pred = {cfg.len_traj_pred}, got {waypoint_index}"
            )
        if latent not in (None, "none") and not hasattr(policy, "z2_from_tokens"):
            raise ValueError(
                f"latent {latent!r} needs a two-stage intent policy; this is a plain NoMaD policy"
            )
        self.policy = policy.eval()
        self.num_samples, self.waypoint_index = num_samples, waypoint_index
        self.metric_scale, self.lambda_cfg, self.center_crop = (
            float(metric_scale),
            float(lambda_cfg),
            center_crop,
        )
        self.latent_fn = _latent_fn(latent, reference_fn)
        self.device = next(policy.parameters()).device
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.context: deque[np.ndarray] = deque(maxlen=cfg.context_size + 1)
        self.steps = 0

    def reset(self) -> None:
        """Forget the context (a new episode); the sampling generator keeps running."""
        self.context.clear()
        self.steps = 0

    def _push(self, frame: np.ndarray) -> bool:
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"a camera frame must be uint8 [H, W, 3], got {frame.dtype} {list(frame.shape)}")
        self.context.append(frame)
        return len(self.context) == self.context.maxlen

    def _images(self, frames: Sequence[np.ndarray]) -> Tensor:
        size = self.policy.config.image_size
        return torch.from_numpy(prepare_frames(np.stack(frames), size, center_crop=self.center_crop)).to(
            self.device
        )

    def _plan(
        self, cond: Tensor, tokens: Tensor, goal_mask: Tensor
    ) -> tuple[np.ndarray, np.ndarray, Tensor | None]:
        """Sample towards ``cond [1, E]``; returns (waypoint m [2], trajectories m [S, T, 2], z2)."""
        req = LatentRequest(self.policy, cond, tokens, goal_mask, self.steps)
        z2 = self.latent_fn(req)
        ndeltas = self.policy.sample_from_condition(
            cond,
            num_samples=self.num_samples,
            latent_z=z2,
            lambda_cfg=self.lambda_cfg,
            generator=self.generator,
        )[0]
        cfg = self.policy.config
        waypoints = normalized_deltas_to_waypoints(ndeltas, cfg.action_min, cfg.action_max)[..., :2]
        metres = (waypoints * self.metric_scale).cpu().numpy().astype(np.float64)
        return metres[0, self.waypoint_index].copy(), metres, z2


class TopomapNavigator(_Loop):
    """NoMaD's ``navigate.py`` loop over a :class:`Topomap` (semantics in the module docstring).

    ``radius`` (nodes each side of the closest one compared each tick; NoMaD's default 4), ``close_threshold``
    (predicted temporal distance, in waypoint steps, below which the next node becomes the subgoal; 3),
    ``goal_node`` (index, -1 = last), ``num_samples`` (8), ``waypoint_index`` (2), ``metric_scale`` (metres per
    normalised unit), ``latent`` / ``reference_fn`` (module docstring), ``lambda_cfg`` (guidance weight),
    ``center_crop``, ``stop_when_closest`` (NoMaD's goal rule), ``seed`` (the sampling noise)."""

    def __init__(
        self,
        policy: Any,
        topomap: Topomap,
        *,
        radius: int = 4,
        close_threshold: float = 3,
        goal_node: int = -1,
        num_samples: int = 8,
        waypoint_index: int = 2,
        metric_scale: float,
        latent: str | LatentFn | None = "none",
        reference_fn: Callable[[], Any] | None = None,
        lambda_cfg: float = 0.0,
        center_crop: bool = True,
        stop_when_closest: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(
            policy,
            num_samples=num_samples,
            waypoint_index=waypoint_index,
            metric_scale=metric_scale,
            latent=latent,
            reference_fn=reference_fn,
            lambda_cfg=lambda_cfg,
            center_crop=center_crop,
            seed=seed,
        )
        check_non_negative_int("radius", radius)
        check_positive_number("close_threshold", close_threshold)
        if not -1 <= goal_node < len(topomap):
            raise ValueError(f"goal_node must be -1 or a node index below {len(topomap)}, got {goal_node}")
        self.topomap = topomap
        self.radius, self.close_threshold = radius, float(close_threshold)
        self.goal_node = len(topomap) - 1 if goal_node == -1 else goal_node
        self.stop_when_closest = stop_when_closest
        self.closest_node = 0
        self._nodes = torch.stack(
            [self._images([img]) for img in topomap.images]
        )  # [N, 3, h, w], encoded once

    def reset(self) -> None:
        super().reset()
        self.closest_node = 0

    def window(self) -> tuple[int, int]:
        """First and last node (both included) compared at the next tick."""
        start = max(self.closest_node - self.radius, 0)
        end = min(self.closest_node + self.radius + 1, self.goal_node)
        return start, end

    @torch.no_grad()
    def localise(self, context: Sequence[np.ndarray]) -> Localisation:
        """Localise the observation ``context`` (``context_size + 1`` uint8 frames, oldest first) on the map: one
        batched vision pass over the window, the closest node (remembered for the next window), the subgoal and
        whether the goal is reached (module docstring). Also the conditions and tokens of the window's nodes."""
        start, end = self.window()
        goals = self._nodes[start : end + 1]
        n = goals.shape[0]
        obs = self._images(list(context))[None].expand(n, -1, -1, -1)
        mask = torch.zeros(n, dtype=torch.long, device=self.device)
        cond, tokens = self.policy.encode(obs, goals, mask, return_tokens=True)
        dists = self.policy.predict_distance(cond).flatten().cpu().numpy().astype(np.float64)
        best = int(np.argmin(dists))
        self.closest_node = start + best
        sub = min(best + int(dists[best] < self.close_threshold), n - 1)
        at_goal = self.closest_node == self.goal_node
        reached = at_goal and (self.stop_when_closest or dists[best] < self.close_threshold)
        return Localisation(self.closest_node, start + sub, (start, end), dists, bool(reached), cond, tokens)

    @torch.no_grad()
    def step(self, frame: np.ndarray) -> DeployStep:
        """Add the newest camera frame (uint8 ``[H, W, 3]``) and plan once (see the class docstring)."""
        if not self._push(frame):
            return DeployStep(False, np.zeros(2))
        t0 = time.perf_counter()
        loc = self.localise(self.context)
        sub = loc.subgoal_node - loc.window[0]
        mask = torch.zeros(1, dtype=torch.long, device=self.device)
        waypoint, trajectories, z2 = self._plan(loc.cond[sub : sub + 1], loc.tokens[sub : sub + 1], mask)
        self.steps += 1
        return DeployStep(
            True,
            waypoint,
            trajectories,
            z2,
            (time.perf_counter() - t0) * 1000.0,
            closest_node=loc.closest_node,
            subgoal_node=loc.subgoal_node,
            window=loc.window,
            distances=loc.distances,
            reached_goal=loc.reached_goal,
        )


class Explorer(_Loop):
    """NoMaD's ``explore.py`` loop: goal-masked sampling (no map), the same interface as :class:`TopomapNavigator`
    (``num_samples``, ``waypoint_index``, ``metric_scale``, ``latent``, ``lambda_cfg``, ``center_crop``,
    ``seed``). The masked goal image is zeros (its token is masked out; NoMaD feeds random noise)."""

    @torch.no_grad()
    def step(self, frame: np.ndarray) -> DeployStep:
        if not self._push(frame):
            return DeployStep(False, np.zeros(2))
        t0 = time.perf_counter()
        obs = self._images(list(self.context))[None]
        w, h = self.policy.config.image_size
        goal = torch.zeros(1, 3, h, w, device=self.device)
        mask = torch.ones(1, dtype=torch.long, device=self.device)
        cond, tokens = self.policy.encode(obs, goal, mask, return_tokens=True)
        waypoint, trajectories, z2 = self._plan(cond, tokens, mask)
        self.steps += 1
        return DeployStep(True, waypoint, trajectories, z2, (time.perf_counter() - t0) * 1000.0)
