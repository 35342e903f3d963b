"""``NavDataset``: NoMaD's ``ViNT_Dataset`` semantics, served as dicts, plus ``ref_traj`` and other agents.

Units: "spacing units" = metres / (``metric_waypoint_spacing * waypoint_spacing``) when ``normalize`` (NoMaD's
default), else metres. Local frame = the robot's pose at the current frame, x forward, y left
(:func:`navintent.actions.to_local`).

Differences from NoMaD's loader, on purpose:

* ``waypoint_spacing > 1`` works. NoMaD caps the goal offset at ``min(max_dist_cat * waypoint_spacing,
  len - t - 1)`` *waypoint steps* and then multiplies by ``waypoint_spacing`` again, so goals land past the
  trajectory end and an assertion fires. Here the offset is ``k`` waypoint steps with
  ``k <= min(max_dist_cat, (len - 1 - t) // waypoint_spacing)``, goal frame ``t + k * waypoint_spacing``,
  ``distance = k``. ``min_dist_cat``/``max_dist_cat`` are distance labels in waypoint steps (identical to NoMaD
  at ``waypoint_spacing = 1``).
* Goal draw: ``k`` uniform over the allowed positive offsets ``[max(min_dist_cat, 1), k_max]`` plus, with
  ``negative_mining``, one extra slot for a negative (a random frame of any trajectory of the split,
  ``distance = max_dist_cat``) -- exactly NoMaD's draw for its configs (``min_dist_cat = 0``). With
  ``negative_mining=False`` no negatives are drawn (NoMaD still draws them) and positives start at
  ``min_dist_cat`` (0 allowed: the goal is the current frame).
* For a negative, ``goal_pos`` is zeros (NoMaD reads the current trajectory at the negative's frame number,
  a meaningless value; it is unused because ``action_mask`` is 0).
* ``goals_per_obs`` (stored but unused by NoMaD) repeats each observation ``goals_per_obs`` times per epoch,
  each with its own goal draw.
* Only ``context_type="temporal"`` exists (NoMaD accepts the others at construction and fails per sample);
  anything else raises at construction.
* Images between 1:1 and 4:3 are cropped in height instead of zero-padded (see :mod:`navintent.data.cache`).
* Randomness: goals come from torch's global RNG (seeded per DataLoader worker by torch), or, with
  ``goal_seed=int``, from a generator seeded by ``(goal_seed, index)`` so a split gives the same goals every
  epoch (for evaluation).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from navintent.actions import to_local
from navintent.data.cache import ImageStore
from navintent.data.format import (
    TRAJ_NAMES_FILE,
    DataError,
    DataWarning,
    Trajectory,
    check_trajectory,
    read_traj_names,
)
from navintent.data.spacing import DEFAULT_DATA_CONFIG, configured_spacing, load_data_config
from navintent.transforms import normalize_frames

REF_MODES = ("future", "file", "none", "planner")
# ``ref_mode="planner"``: one anchor every this many reference waypoints (see :func:`planner_route`).
PLANNER_ANCHOR_EVERY = 4
NOMAD_TUPLE_KEYS = ("obs_img", "goal_img", "actions", "distance", "goal_pos", "dataset_idx", "action_mask")


def as_nomad_tuple(batch: Mapping[str, Any]) -> tuple:
    """A batch (or sample) dict -> NoMaD's ``ViNT_Dataset`` tuple order, for code written against NoMaD:

    ``(obs_image, goal_image, action_label, dist_label, goal_pos, dataset_index, action_mask)``.
    Note: NoMaD's images are NOT ImageNet-normalised by the dataset (its training loop does it); these are.
    """
    return tuple(batch[k] for k in NOMAD_TUPLE_KEYS)


def planner_route(points: np.ndarray, anchor_every: int, step: float) -> np.ndarray:
    """A planner's path made from a robot's own future: coarse anchors, linear in between, timing removed.

    ``points [H + 1, 2]`` (metres, any frame): the current position (row 0) and the future waypoints 1..H.
    Anchors: rows ``0, k, 2k, ...`` and row ``H`` (``k = anchor_every``); the route is the polyline through them
    (what the robot did between anchors is dropped, as a coarse route from a map or a global planner would).
    Timing: row ``i`` of the result (i = 1..H) is the point at arc length ``i * step`` metres along the route
    (traversed at the nominal ``step`` per waypoint; ``NavDataset`` uses ``metric_waypoint_spacing *
    waypoint_spacing``, the dataset's mean speed when the spacing is the measured one), and the route's end past
    its length: where the robot paused or sped up the reference does not. Returns ``[H, 2]`` float64 in the frame
    of ``points``. Segments of zero length are skipped; a route of zero length gives ``H`` copies of row 0.

    Raises ``ValueError`` for ``points`` not ``[H + 1, 2]`` with ``H >= 1``, ``anchor_every < 1`` or ``step <= 0``.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2 or len(points) < 2:
        raise ValueError(f"points must be [H + 1, 2] with H >= 1, got shape {list(points.shape)}")
    if isinstance(anchor_every, bool) or int(anchor_every) != anchor_every or anchor_every < 1:
        raise ValueError(f"anchor_every must be an integer >= 1, got {anchor_every!r}")
    if not (math.isfinite(step) and step > 0):
        raise ValueError(f"step must be a positive number of metres, got {step!r}")
    h = len(points) - 1
    anchors = points[sorted(set(range(0, h + 1, int(anchor_every))) | {h})]
    length = np.linalg.norm(np.diff(anchors, axis=0), axis=1)
    keep = np.concatenate([[True], length > 0])  # drop anchors that repeat the previous one
    anchors, arc = anchors[keep], np.concatenate([[0.0], np.cumsum(length[length > 0])])
    s = step * np.arange(1, h + 1)
    if len(anchors) == 1:
        return np.repeat(anchors, h, axis=0)
    # arc is strictly increasing here, so np.interp is the point at arc length s (clamped to the route's end)
    return np.stack([np.interp(s, arc, anchors[:, 0]), np.interp(s, arc, anchors[:, 1])], axis=-1)


def _int_arg(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or int(value) != value or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class NavDataset(Dataset):
    """NoMaD-format dataset (see :mod:`navintent.data.format`) serving dict samples.

    Constructor: NoMaD's ``ViNT_Dataset`` arguments (same names, order and meaning; ``obs_type``/``goal_type``
    accept only ``"image"``, the only kind NoMaD implements), plus

    - ``metric_waypoint_spacing``: metres between frames; None -> looked up by ``dataset_name`` in ``data_config``
      (a YAML of NoMaD's form; default: the shipped ``data_config.yaml`` with NoMaD's known datasets).
    - ``ref_mode``: ``"future"`` (robot's own future waypoints), ``"file"`` (``ref_traj`` rows of
      ``traj_data.pkl``, world frame, one per frame; every trajectory must have one), ``"planner"`` (a degraded
      reference standing for a planner's path: the ``future`` waypoints kept only at anchors every
      ``ref_anchor_every`` waypoints, default :data:`PLANNER_ANCHOR_EVERY`, joined by straight lines and
      traversed at the nominal ``metric_waypoint_spacing * waypoint_spacing`` metres per waypoint, see
      :func:`planner_route`; data without ``ref_traj`` can use it) or ``"none"`` (zeros, ``ref_mask = 0``).
      ``ref_horizon`` (default ``2 * len_traj_pred``) waypoints at ``waypoint_spacing``, starting at the first
      future waypoint. ``ref_yaw`` (default ``learn_angle``) appends cos/sin of the yaw relative to the current
      yaw (``"file"`` then needs a ``[N, 3]`` ``ref_traj``; ``"planner"`` has no yaw and refuses it).
    - ``max_agents``: pad other agents to this count; ``with_agents``: None = emit ``agents``/``agents_mask`` iff
      any trajectory of the split has ``agents``, True = always (zeros + mask 0 where absent), False = never.
    - ``use_cache``, ``cache_dir``, ``progress``, ``cache_build_threads``: see :class:`navintent.data.cache.ImageStore`.
    - ``goal_seed``: None (torch RNG) or int (deterministic goal per index).

    Sample (a dict; default collation stacks it into the batch that
    :meth:`navintent.models.intent.TwoStageIntentModel.compute_loss` reads):
      obs_img [3(C+1), H, W] float32 (oldest frame first, current LAST), goal_img [3, H, W] float32,
      actions [T, 2|4] float32 (waypoints, spacing units, local frame; +cos/sin relative yaw if learn_angle),
      distance long (waypoint steps), goal_pos [2] float32, dataset_idx long, action_mask float32 (0/1),
      goal_is_negative float32 (1: a negative-mining goal, ``distance = max_dist_cat``; navintent's addition),
      ref_traj [T_ref, 2|4] float32, ref_mask float32, metric_scale float32 (metres per spacing unit),
      [agents [T, max_agents, 2] float32, agents_mask [max_agents] float32].
    Past the trajectory end the last pose repeats (actions, ref_traj, agents).
    Trajectories too short for ``context + len_traj_pred + end_slack`` are excluded with one counted
    :class:`DataWarning`; every bad file raises :class:`DataError` (all problems listed) at construction.
    """

    def __init__(
        self,
        data_folder: str | Path,
        data_split_folder: str | Path,
        dataset_name: str,
        image_size: Sequence[int],
        waypoint_spacing: int,
        min_dist_cat: int,
        max_dist_cat: int,
        min_action_distance: int,
        max_action_distance: int,
        negative_mining: bool,
        len_traj_pred: int,
        learn_angle: bool,
        context_size: int,
        context_type: str = "temporal",
        end_slack: int = 0,
        goals_per_obs: int = 1,
        normalize: bool = True,
        obs_type: str = "image",
        goal_type: str = "image",
        *,
        metric_waypoint_spacing: float | None = None,
        data_config: str | Path | None = None,
        ref_mode: str = "future",
        ref_horizon: int | None = None,
        ref_yaw: bool | None = None,
        ref_anchor_every: int = PLANNER_ANCHOR_EVERY,
        max_agents: int = 8,
        with_agents: bool | None = None,
        use_cache: bool = True,
        cache_dir: str | Path | None = None,
        progress: bool = True,
        cache_build_threads: int | None = None,
        goal_seed: int | None = None,
    ) -> None:
        self.data_folder = Path(data_folder)
        self.data_split_folder = Path(data_split_folder)
        self.dataset_name = str(dataset_name)
        if len(image_size) != 2:
            raise ValueError(f"image_size must be [width, height], got {image_size!r}")
        self.image_size = (
            _int_arg("image_size[0]", image_size[0], 1),
            _int_arg("image_size[1]", image_size[1], 1),
        )
        self.waypoint_spacing = _int_arg("waypoint_spacing", waypoint_spacing, 1)
        self.min_dist_cat = _int_arg("min_dist_cat", min_dist_cat, 0)
        self.max_dist_cat = _int_arg("max_dist_cat", max_dist_cat, 0)
        if self.max_dist_cat < self.min_dist_cat:
            raise ValueError(f"max_dist_cat must be >= min_dist_cat={min_dist_cat}, got {max_dist_cat}")
        self.min_action_distance = int(min_action_distance)
        self.max_action_distance = int(max_action_distance)
        self.negative_mining = bool(negative_mining)
        self.len_traj_pred = _int_arg("len_traj_pred", len_traj_pred, 1)
        self.learn_angle = bool(learn_angle)
        self.context_size = _int_arg("context_size", context_size, 0)
        if context_type != "temporal":
            raise ValueError(
                f"context_type must be 'temporal' (the only one NoMaD implements), got {context_type!r}"
            )
        self.context_type = context_type
        if obs_type != "image" or goal_type != "image":
            raise ValueError(
                f"obs_type and goal_type must be 'image' (as in NoMaD), got {obs_type!r} / {goal_type!r}"
            )
        self.obs_type, self.goal_type = obs_type, goal_type
        self.end_slack = _int_arg("end_slack", end_slack, 0)
        self.goals_per_obs = _int_arg("goals_per_obs", goals_per_obs, 1)
        self.normalize = bool(normalize)
        if ref_mode not in REF_MODES:
            raise ValueError(f"ref_mode must be one of {REF_MODES}, got {ref_mode!r}")
        self.ref_mode = ref_mode
        self.ref_horizon = _int_arg(
            "ref_horizon", 2 * self.len_traj_pred if ref_horizon is None else ref_horizon, 1
        )
        self.ref_yaw = self.learn_angle if ref_yaw is None else bool(ref_yaw)
        if self.ref_mode == "planner" and self.ref_yaw:
            raise ValueError(
                "ref_mode 'planner' gives positions only (a route has no yaw), but ref_yaw is on (it follows "
                f"learn_angle unless given), got ref_yaw={self.ref_yaw}; use ref_mode 'future' or 'file' with yaw"
            )
        self.ref_anchor_every = _int_arg("ref_anchor_every", ref_anchor_every, 1)
        self.max_agents = _int_arg("max_agents", max_agents, 1)
        self.goal_seed = goal_seed

        # per-dataset constants, NoMaD's data_config.yaml form
        config_path = Path(data_config) if data_config is not None else DEFAULT_DATA_CONFIG
        config = load_data_config(config_path)
        names = sorted(config)
        if metric_waypoint_spacing is None:
            metric_waypoint_spacing, source = configured_spacing(self.dataset_name, data_config)
            if metric_waypoint_spacing is None:
                raise ValueError(
                    f"dataset {self.dataset_name!r} has no metric_waypoint_spacing ({source}): add "
                    f"`metric_waypoint_spacing: M` (metres per frame) to its entry in the config's datasets: block, "
                    f"or `{self.dataset_name}: {{metric_waypoint_spacing: M}}` to a data_config.yaml beside the data; "
                    f"`navintent check-data {self.data_folder}` measures M (Python: NavDataset("
                    f"metric_waypoint_spacing=M)). Datasets the data config knows: "
                    f"{[n for n in names if n != 'action_stats']}"
                )
        else:
            source = "given with the dataset"
        self.metric_waypoint_spacing_source = source
        self.metric_waypoint_spacing = float(metric_waypoint_spacing)
        if not (math.isfinite(self.metric_waypoint_spacing) and self.metric_waypoint_spacing > 0):
            raise ValueError(
                f"metric_waypoint_spacing must be a positive number, got {metric_waypoint_spacing!r}"
            )
        # NoMaD: index of the name among the sorted config keys; an unknown name is placed among them.
        self.dataset_index = sorted(set(names) | {self.dataset_name}).index(self.dataset_name)
        self.scale = self.metric_waypoint_spacing * self.waypoint_spacing if self.normalize else 1.0

        self.trajectories = self._load_trajectories()
        if with_agents is None:
            with_agents = any(t.agents is not None for t in self.trajectories)
        self.with_agents = bool(with_agents)
        self._check_options()
        self._build_index()
        paths = [t.image_path(i) for t in self.trajectories for i in range(len(t))]
        self.images = ImageStore(
            paths,
            self.image_size,
            root=self.data_folder,
            name=f"{self.dataset_name}-{self.data_split_folder.name}",
            use_cache=use_cache,
            cache_dir=cache_dir,
            progress=progress,
            build_threads=cache_build_threads,
        )

    # ----------------------------------------------------------------------------------------- loading
    def _load_trajectories(self) -> list[Trajectory]:
        names = read_traj_names(self.data_split_folder)
        split_file = self.data_split_folder / TRAJ_NAMES_FILE
        problems: list[str] = []
        trailing: list[str] = []
        trajectories: list[Trajectory] = []
        for name in names:
            folder = self.data_folder / name
            if not folder.is_dir():
                problems.append(f"{split_file}: lists trajectory '{name}' but {folder} does not exist")
                continue
            check = check_trajectory(folder)
            problems.extend(check.problems)
            if check.trajectory is not None:
                trajectories.append(check.trajectory)
                if check.extra_frames:
                    n, k = len(check.trajectory), len(check.extra_frames)
                    trailing.append(f"{folder}: {n} poses, {k} image(s) beyond frame {n - 1}")
        if trailing and not problems:
            has = "has" if len(trailing) == 1 else "have"
            warnings.warn(
                f"dataset {self.dataset_name!r}: {len(trailing)} of {len(names)} trajectories {has} images "
                f"beyond the last pose (e.g. {trailing[0]}): frames 0..N-1 are used, the extra images ignored",
                DataWarning,
                stacklevel=3,
            )
        if problems:
            more = f"\n... and {len(problems) - 30} more" if len(problems) > 30 else ""
            raise DataError(
                f"{len(problems)} problem(s) in dataset {self.dataset_name!r}:\n"
                + "\n".join(problems[:30])
                + more
            )
        return trajectories

    def _check_options(self) -> None:
        for t in self.trajectories:
            pkl = t.folder / "traj_data.pkl"
            if self.ref_mode == "file":
                if t.ref_traj is None:
                    raise DataError(f"{pkl}: ref_mode='file' but the trajectory has no 'ref_traj'")
                if self.ref_yaw and t.ref_traj.shape[1] != 3:
                    raise DataError(
                        f"{pkl}: ref_yaw needs 'ref_traj' of shape [N, 3] (x, y, yaw), got {list(t.ref_traj.shape)}"
                    )
            if self.with_agents and t.agents is not None and t.agents.shape[1] > self.max_agents:
                raise DataError(
                    f"{pkl}: 'agents' holds {t.agents.shape[1]} agents, more than max_agents={self.max_agents}"
                )

    def _build_index(self) -> None:
        ws, c = self.waypoint_spacing, self.context_size
        lo = max(self.min_dist_cat, 1) if self.negative_mining else self.min_dist_cat
        traj_ids, times, kmaxes = [], [], []
        offsets = np.zeros(len(self.trajectories) + 1, dtype=np.int64)
        short = 0
        for j, t in enumerate(self.trajectories):
            n = len(t)
            offsets[j + 1] = offsets[j] + n
            begin, end = c * ws, n - self.end_slack - self.len_traj_pred * ws
            if end <= begin:
                short += 1
                continue
            cur = np.arange(begin, end)
            kmax = np.minimum(self.max_dist_cat, (n - 1 - cur) // ws)
            keep = kmax >= lo if not self.negative_mining else np.ones_like(cur, dtype=bool)
            traj_ids.append(np.full(int(keep.sum()), j))
            times.append(cur[keep])
            kmaxes.append(kmax[keep])
        if short:
            need = c * self.waypoint_spacing + self.len_traj_pred * self.waypoint_spacing + self.end_slack + 1
            warnings.warn(
                f"dataset {self.dataset_name!r} ({self.data_split_folder / TRAJ_NAMES_FILE}): excluded {short} of "
                f"{len(self.trajectories)} trajectories too short for context + horizon (need >= {need} frames)",
                DataWarning,
                stacklevel=3,
            )
        cat = (
            (lambda xs: np.concatenate(xs).astype(np.int64))
            if traj_ids
            else (lambda xs: np.zeros(0, np.int64))
        )
        self.index_traj, self.index_time, self.index_kmax = cat(traj_ids), cat(times), cat(kmaxes)
        self.image_offsets = offsets
        self._min_positive = lo
        if len(self.index_time) == 0:
            raise DataError(
                f"dataset {self.dataset_name!r} ({self.data_split_folder / TRAJ_NAMES_FILE}) has no usable sample: "
                f"every trajectory is too short for context_size={c}, len_traj_pred={self.len_traj_pred}, "
                f"waypoint_spacing={ws}, end_slack={self.end_slack}"
            )

    # ----------------------------------------------------------------------------------------- sampling
    def __len__(self) -> int:
        return len(self.index_time) * self.goals_per_obs

    @property
    def num_observations(self) -> int:
        return len(self.index_time)

    def _randint(self, high: int, rng: np.random.Generator | None) -> int:
        """Uniform integer in ``[0, high)``."""
        if rng is not None:
            return int(rng.integers(high))
        return int(torch.randint(high, ()).item())

    def sample_goal(self, i: int, rng: np.random.Generator | None = None) -> tuple[int, int, bool]:
        """Goal for observation ``i``: ``(trajectory id, frame, is_negative)`` (see module docstring)."""
        j, t, kmax = int(self.index_traj[i]), int(self.index_time[i]), int(self.index_kmax[i])
        lo = self._min_positive
        n_pos = max(kmax - lo + 1, 0)
        if self.negative_mining:
            u = self._randint(n_pos + 1, rng)
            if u == 0:
                g = self._randint(int(self.image_offsets[-1]), rng)
                gj = int(np.searchsorted(self.image_offsets, g, side="right") - 1)
                return gj, g - int(self.image_offsets[gj]), True
            return j, t + (lo + u - 1) * self.waypoint_spacing, False
        return j, t + (lo + self._randint(n_pos, rng)) * self.waypoint_spacing, False

    def _future_times(self, t: int, n: int, steps: int) -> np.ndarray:
        """Frames ``t + s * waypoint_spacing`` for s = 1..steps, clamped to the last frame ``n - 1``."""
        return np.minimum(t + self.waypoint_spacing * np.arange(1, steps + 1), n - 1)

    def _local(self, points: np.ndarray, traj: Trajectory, t: int) -> Tensor:
        """World ``[..., 2]`` (float64) -> local frame at frame ``t``, divided by the scale, float64."""
        origin = torch.from_numpy(traj.position[t])
        yaw = torch.tensor(float(traj.yaw[t]), dtype=torch.float64)
        pts = torch.from_numpy(np.ascontiguousarray(points))
        flat = pts.reshape(-1, 2)
        return to_local(flat, origin, yaw).reshape(pts.shape) / self.scale

    def _with_yaw(self, xy: Tensor, yaw: np.ndarray, yaw0: float) -> Tensor:
        rel = torch.from_numpy(yaw - yaw0)
        return torch.cat([xy, torch.cos(rel)[:, None], torch.sin(rel)[:, None]], dim=-1)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for NavDataset of length {len(self)}")
        i = index % self.num_observations
        rng = np.random.default_rng((self.goal_seed, index)) if self.goal_seed is not None else None
        j, t = int(self.index_traj[i]), int(self.index_time[i])
        traj = self.trajectories[j]
        n, ws = len(traj), self.waypoint_spacing
        gj, gt, negative = self.sample_goal(i, rng)

        context = t - ws * np.arange(self.context_size, -1, -1)
        frames = self.images.take(
            np.concatenate([context + self.image_offsets[j], [self.image_offsets[gj] + gt]])
        )
        imgs = normalize_frames(frames)
        obs_img = torch.from_numpy(imgs[:-3])
        goal_img = torch.from_numpy(np.ascontiguousarray(imgs[-3:]))

        times = self._future_times(t, n, self.len_traj_pred)
        actions = self._local(traj.position[times], traj, t)
        if self.learn_angle:
            actions = self._with_yaw(actions, traj.yaw[times], float(traj.yaw[t]))
        if negative:
            distance = self.max_dist_cat
            goal_pos = torch.zeros(2, dtype=torch.float64)
        else:
            distance = (gt - t) // ws
            goal_pos = self._local(traj.position[gt], traj, t)
        action_mask = (self.min_action_distance < distance < self.max_action_distance) and not negative

        d_ref = 4 if self.ref_yaw else 2
        ref_mask = 1.0
        if self.ref_mode == "none":
            ref = torch.zeros(self.ref_horizon, d_ref, dtype=torch.float64)
            ref_mask = 0.0
        else:
            rtimes = self._future_times(t, n, self.ref_horizon)
            source = traj.position if self.ref_mode in ("future", "planner") else traj.ref_traj
            assert source is not None
            points = source[rtimes, :2]
            if self.ref_mode == "planner":
                step = self.metric_waypoint_spacing * self.waypoint_spacing  # metres per waypoint, nominal
                route = np.concatenate([traj.position[t : t + 1], points])
                points = planner_route(route, self.ref_anchor_every, step)
            ref = self._local(points, traj, t)
            if self.ref_yaw:
                ryaw = traj.yaw[rtimes] if self.ref_mode == "future" else source[rtimes, 2]
                ref = self._with_yaw(ref, ryaw, float(traj.yaw[t]))

        sample = {
            "obs_img": obs_img,
            "goal_img": goal_img,
            "actions": actions.float(),
            "distance": torch.tensor(distance, dtype=torch.long),
            "goal_pos": goal_pos.float(),
            "dataset_idx": torch.tensor(self.dataset_index, dtype=torch.long),
            "action_mask": torch.tensor(float(action_mask), dtype=torch.float32),
            "goal_is_negative": torch.tensor(float(negative), dtype=torch.float32),
            "ref_traj": ref.float(),
            "ref_mask": torch.tensor(ref_mask, dtype=torch.float32),
            "metric_scale": torch.tensor(self.scale, dtype=torch.float32),
        }
        if self.with_agents:
            agents = torch.zeros(self.len_traj_pred, self.max_agents, 2)
            mask = torch.zeros(self.max_agents)
            if traj.agents is not None:
                count = traj.agents.shape[1]
                agents[:, :count] = self._local(traj.agents[times], traj, t).float()
                mask[:count] = 1.0
            sample["agents"] = agents
            sample["agents_mask"] = mask
        return sample
