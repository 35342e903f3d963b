"""Does a dataset's ``metric_waypoint_spacing`` fit its poses? Measured metres per frame and the share of
normalised training deltas that fall outside NoMaD's action range or use only a sliver of it.

Why it matters: NoMaD divides the local-frame waypoints by ``metric_waypoint_spacing * waypoint_spacing`` and
maps each per-step delta to [-1, 1] with ``action_stats`` (``min [-2.5, -4]``, ``max [5, 4]``). A configured
spacing far above the real motion squeezes every target into a small patch of that range (the published Go2
data: 0.3 m configured, ~0.04 m per frame recorded); one far below pushes targets past +-1, where the
sampler's clipping cannot reach them. Neither fails loudly in training.

Definitions (used by :func:`metres_per_frame`, :func:`normalized_deltas` and :func:`spacing_report`):

* measured metres per frame = total path length / number of steps, over all trajectories together
  (``sum_traj sum_i |p_{i+1} - p_i|  /  sum_traj (N_traj - 1)``), the value ``make-data`` writes.
* normalised deltas: for every current frame ``t`` of NoMaD's index (``context_size * waypoint_spacing <= t <
  N - end_slack - len_traj_pred * waypoint_spacing``), the ``len_traj_pred`` future positions
  ``p[t + k * waypoint_spacing]`` (k = 1..T) in the robot frame at ``t`` (x forward, y left), divided by
  ``metric_waypoint_spacing * waypoint_spacing``, their consecutive differences (the first from the origin),
  mapped per axis by ``n = (d - action_min) / (action_max - action_min) * 2 - 1``. One delta = one 2-vector.
* outside: a delta with ``|n_x| > 1`` or ``|n_y| > 1``.
* sliver ("inside a tenth of the range"): a delta within a window of a tenth of the range (0.2 of the 2 wide
  normalised range) centred on where standing still maps, on both axes: ``|n - n(0)| <= 0.1`` per axis, i.e.
  ``|d_x| <= 0.05 * (max_x - min_x)`` and ``|d_y| <= 0.05 * (max_y - min_y)`` in spacing units (with NoMaD's
  stats 0.375 and 0.4: the robot moved less than ~40% of the configured spacing in that step).

Warning thresholds (:data:`SPACING_RATIO_LIMIT`, :data:`OUTSIDE_LIMIT`, :data:`SLIVER_LIMIT`): configured and
measured spacing differ by more than a factor 1.5 either way; more than 5% of the deltas outside; more than
half of them in the sliver. A well-matched dataset moving steadily forward has every delta at
``d_x ~ 1`` (``n_x ~ -0.07``): none outside, none in the sliver; pauses add sliver deltas, so the sliver limit
is a majority. An unknown configured spacing is a warning too (it gives the measured value to use).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from navintent.config import NOMAD_ACTION_MAX, NOMAD_ACTION_MIN, read_yaml_mapping
from navintent.data.format import DataError, Trajectory

DEFAULT_DATA_CONFIG = Path(__file__).with_name("data_config.yaml")
SPACING_RATIO_LIMIT = 1.5
OUTSIDE_LIMIT = 0.05
SLIVER_LIMIT = 0.5
SLIVER_HALF_WIDTH = 0.1


def metres_per_frame(positions: Iterable[np.ndarray]) -> float:
    """Total path length / number of steps over all trajectories (metres per frame).

    ``positions``: one ``[N_i, 2]`` array (metres) per trajectory; a trajectory of one frame adds no step.
    Raises ``ValueError`` if there is no step at all (every trajectory has fewer than two frames).
    """
    distance, steps = 0.0, 0
    for p in positions:
        p = np.asarray(p, dtype=np.float64)
        if p.ndim != 2 or p.shape[1] != 2:
            raise ValueError(f"positions must be [N, 2] arrays, got shape {list(p.shape)}")
        distance += float(np.linalg.norm(np.diff(p, axis=0), axis=1).sum())
        steps += max(len(p) - 1, 0)
    if steps == 0:
        raise ValueError("metres per frame is undefined: no trajectory has two frames")
    return distance / steps


def _stats(action_min: Sequence[float], action_max: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = np.asarray(action_min, dtype=np.float64), np.asarray(action_max, dtype=np.float64)
    if lo.shape != (2,) or hi.shape != (2,) or not np.all(hi > lo):
        raise ValueError(f"action_min/action_max must be 2 numbers each with max > min, got {lo} / {hi}")
    return lo, hi


def normalized_deltas(
    trajectories: Sequence[Trajectory],
    metric_waypoint_spacing: float,
    *,
    waypoint_spacing: int = 1,
    len_traj_pred: int = 8,
    context_size: int = 3,
    end_slack: int = 0,
    action_min: Sequence[float] = NOMAD_ACTION_MIN,
    action_max: Sequence[float] = NOMAD_ACTION_MAX,
) -> np.ndarray:
    """NoMaD's normalised training deltas (module docstring) of every indexed frame: ``[M, len_traj_pred, 2]``.

    ``M`` = number of current frames in NoMaD's index over all trajectories (0 if every trajectory is too
    short). Raises ``ValueError`` for a non-positive spacing or bad action stats.
    """
    if not (math.isfinite(metric_waypoint_spacing) and metric_waypoint_spacing > 0):
        raise ValueError(
            f"metric_waypoint_spacing must be a positive number, got {metric_waypoint_spacing!r}"
        )
    if waypoint_spacing < 1 or len_traj_pred < 1 or context_size < 0 or end_slack < 0:
        raise ValueError(
            "need waypoint_spacing >= 1, len_traj_pred >= 1, context_size >= 0, end_slack >= 0, got "
            f"{waypoint_spacing}, {len_traj_pred}, {context_size}, {end_slack}"
        )
    lo, hi = _stats(action_min, action_max)
    scale = metric_waypoint_spacing * waypoint_spacing
    ahead = waypoint_spacing * np.arange(1, len_traj_pred + 1)
    parts = [np.zeros((0, len_traj_pred, 2))]
    for traj in trajectories:
        n = len(traj.position)
        t = np.arange(context_size * waypoint_spacing, n - end_slack - len_traj_pred * waypoint_spacing)
        if len(t) == 0:
            continue
        rel = traj.position[t[:, None] + ahead[None, :]] - traj.position[t][:, None, :]  # [M, T, 2] world
        c, s = np.cos(traj.yaw[t])[:, None], np.sin(traj.yaw[t])[:, None]
        # (p - o) @ R(yaw) with R = [[c, -s], [s, c]]: x = dx c + dy s, y = -dx s + dy c
        local = np.stack([rel[..., 0] * c + rel[..., 1] * s, -rel[..., 0] * s + rel[..., 1] * c], axis=-1)
        waypoints = local / scale
        deltas = np.diff(waypoints, axis=1, prepend=np.zeros((len(t), 1, 2)))
        parts.append((deltas - lo) / (hi - lo) * 2 - 1)
    return np.concatenate(parts, axis=0)


def _shares(ndeltas: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[float, float]:
    flat = ndeltas.reshape(-1, 2)
    if len(flat) == 0:
        return math.nan, math.nan
    outside = np.any(np.abs(flat) > 1, axis=1)
    still = (0 - lo) / (hi - lo) * 2 - 1  # where a zero delta maps
    sliver = np.all(np.abs(flat - still) <= SLIVER_HALF_WIDTH, axis=1)
    return float(outside.mean()), float(sliver.mean())


@dataclass(frozen=True)
class SpacingReport:
    """Result of :func:`spacing_report` for one dataset (definitions in the module docstring).

    ``measured``: metres per frame over all trajectories; ``per_trajectory_min/max``: the smallest and largest
    per-trajectory mean (m per frame; trajectories of one frame left out). ``configured``: the
    ``metric_waypoint_spacing`` in use (m per frame) or None if unknown; ``source``: where it came from (for
    messages). ``num_deltas``: normalised deltas counted (``M * len_traj_pred``). ``outside``/``sliver``:
    shares in [0, 1] of those deltas with the configured spacing (NaN if unknown or no delta);
    ``fit_outside``/``fit_sliver``: the same with the measured spacing.
    """

    dataset: str
    measured: float
    per_trajectory_min: float
    per_trajectory_max: float
    configured: float | None
    source: str | None
    waypoint_spacing: int
    len_traj_pred: int
    num_trajectories: int
    num_steps: int
    num_deltas: int
    outside: float
    sliver: float
    fit_outside: float
    fit_sliver: float

    @property
    def ratio(self) -> float | None:
        """configured / measured, or None if the configured spacing is unknown (inf if the poses never move)."""
        if self.configured is None:
            return None
        return self.configured / self.measured if self.measured > 0 else math.inf

    def summary(self) -> str:
        """One line: measured spacing, configured spacing and the shares (always, warning or not)."""
        line = (
            f"{self.dataset}: measured {self.measured:.4f} m per frame over {self.num_trajectories} "
            f"trajectories ({self.num_steps} steps; per trajectory {self.per_trajectory_min:.4f}.."
            f"{self.per_trajectory_max:.4f})"
        )
        if self.configured is None:
            return line + f"; metric_waypoint_spacing unknown ({self.source or 'no data config'})"
        return line + (
            f"; configured metric_waypoint_spacing {self.configured:g} ({self.source}), "
            f"ratio {self.ratio:.2f}; of {self.num_deltas} normalised deltas "
            f"(waypoint_spacing {self.waypoint_spacing}, len_traj_pred {self.len_traj_pred}) "
            f"{_pct(self.outside)} outside [-1, 1] and {_pct(self.sliver)} within a tenth of the range "
            f"around standing still (with the measured spacing: {_pct(self.fit_outside)} / "
            f"{_pct(self.fit_sliver)})"
        )

    def warning(self) -> str | None:
        """A message if the configured spacing looks wrong for these poses (thresholds in the module
        docstring), naming the numbers that show it and the spacing that would fit (the measured one); else
        None."""
        fit = f"the spacing that fits these poses is the measured {self.measured:.4f} m per frame"
        if self.measured <= 0:
            return f"{self.dataset}: the poses never move (0 m over {self.num_steps} steps): no spacing fits"
        if self.configured is None:
            return (
                f"{self.dataset}: metric_waypoint_spacing unknown ({self.source or 'no data config'}); {fit} "
                f"(per trajectory {self.per_trajectory_min:.4f}..{self.per_trajectory_max:.4f}); set it as "
                "metric_waypoint_spacing in the dataset's entry of a data_config.yaml or of a config's datasets: block"
            )
        reasons = []
        ratio = self.ratio
        assert ratio is not None
        if ratio > SPACING_RATIO_LIMIT or ratio < 1 / SPACING_RATIO_LIMIT:
            reasons.append(
                f"configured {self.configured:g} m is {ratio:.2f} times the measured {self.measured:.4f} m per frame "
                f"(limit: a factor {SPACING_RATIO_LIMIT:g})"
            )
        if self.outside > OUTSIDE_LIMIT:
            reasons.append(
                f"{_pct(self.outside)} of {self.num_deltas} normalised deltas fall outside [-1, 1] "
                f"(limit {_pct(OUTSIDE_LIMIT)})"
            )
        if self.sliver > SLIVER_LIMIT:
            reasons.append(
                f"{_pct(self.sliver)} of {self.num_deltas} normalised deltas lie within a tenth of the action "
                f"range around standing still (limit {_pct(SLIVER_LIMIT)})"
            )
        if not reasons:
            return None
        return (
            f"{self.dataset}: metric_waypoint_spacing {self.configured:g} ({self.source}) does not fit the "
            f"poses: {'; '.join(reasons)}; {fit} (with it: {_pct(self.fit_outside)} outside, "
            f"{_pct(self.fit_sliver)} within a tenth)"
        )


def _pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:.1f}%"


def spacing_report(
    trajectories: Sequence[Trajectory],
    metric_waypoint_spacing: float | None,
    *,
    dataset: str = "dataset",
    source: str | None = None,
    waypoint_spacing: int = 1,
    len_traj_pred: int = 8,
    context_size: int = 3,
    end_slack: int = 0,
    action_min: Sequence[float] = NOMAD_ACTION_MIN,
    action_max: Sequence[float] = NOMAD_ACTION_MAX,
) -> SpacingReport:
    """Measure one dataset's metres per frame and the normalised deltas at ``metric_waypoint_spacing``.

    ``trajectories``: the dataset's trajectories (world positions in metres, yaw in rad);
    ``metric_waypoint_spacing``: the configured spacing (m per frame), None if unknown; ``dataset``/``source``:
    the dataset name and where the spacing came from, for messages. The other arguments are NoMaD's (see
    :func:`normalized_deltas`). Call ``.warning()`` on the result. Raises ``ValueError`` if no trajectory has
    two frames, or for a non-positive configured spacing.
    """
    lo, hi = _stats(action_min, action_max)
    measured = metres_per_frame(t.position for t in trajectories)
    means = [metres_per_frame([t.position]) for t in trajectories if len(t.position) > 1]
    kwargs = dict(
        waypoint_spacing=waypoint_spacing,
        len_traj_pred=len_traj_pred,
        context_size=context_size,
        end_slack=end_slack,
        action_min=action_min,
        action_max=action_max,
    )
    outside = sliver = math.nan
    num_deltas = 0
    if metric_waypoint_spacing is not None:
        nd = normalized_deltas(trajectories, float(metric_waypoint_spacing), **kwargs)
        outside, sliver = _shares(nd, lo, hi)
        num_deltas = nd.shape[0] * nd.shape[1]
    fit_outside = fit_sliver = math.nan
    if measured > 0:
        nd_fit = normalized_deltas(trajectories, measured, **kwargs)
        fit_outside, fit_sliver = _shares(nd_fit, lo, hi)
        num_deltas = num_deltas or nd_fit.shape[0] * nd_fit.shape[1]
    return SpacingReport(
        dataset=dataset,
        measured=measured,
        per_trajectory_min=min(means),
        per_trajectory_max=max(means),
        configured=None if metric_waypoint_spacing is None else float(metric_waypoint_spacing),
        source=source,
        waypoint_spacing=waypoint_spacing,
        len_traj_pred=len_traj_pred,
        num_trajectories=len(trajectories),
        num_steps=sum(max(len(t.position) - 1, 0) for t in trajectories),
        num_deltas=num_deltas,
        outside=outside,
        sliver=sliver,
        fit_outside=fit_outside,
        fit_sliver=fit_sliver,
    )


def load_data_config(path: str | Path | None = None) -> dict[str, Any]:
    """Parse a data-config YAML of NoMaD's form (``{dataset_name: {metric_waypoint_spacing: ...}, ...}``)."""
    return read_yaml_mapping(path if path is not None else DEFAULT_DATA_CONFIG, what="data config")


def configured_spacing(name: str, data_config: Path | None = None) -> tuple[float | None, str]:
    """``(metric_waypoint_spacing or None, source)`` of dataset ``name`` in ``data_config`` (a YAML of NoMaD's
    ``data_config.yaml`` form; None = the shipped one). None when the name is not there (``source`` then says
    so). Raises ``FileNotFoundError``/``ValueError`` naming the file for a missing or invalid file, and
    :class:`DataError` naming file and key for an entry whose ``metric_waypoint_spacing`` is not a positive
    number."""
    path = Path(data_config) if data_config is not None else DEFAULT_DATA_CONFIG
    label = str(path) if data_config is not None else f"shipped {path}"
    config = load_data_config(path)
    entry = config.get(name)
    if not isinstance(entry, dict) or "metric_waypoint_spacing" not in entry:
        return None, f"dataset '{name}' is not in {label}"
    value = entry["metric_waypoint_spacing"]
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not (math.isfinite(value) and value > 0)
    ):
        raise DataError(f"{path}: '{name}.metric_waypoint_spacing' must be a positive number, got {value!r}")
    return float(value), label
