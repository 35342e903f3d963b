"""On-disk format of visualnav-transformer (NoMaD) datasets: reading and validation.

Layout::

    DATASET_DIR/
        <traj_name>/0.jpg ... <N-1>.jpg    one image per frame
        <traj_name>/traj_data.pkl          dict: position [N, 2] (metres, world frame),
                                                 yaw [N] or [N, 1] (rad),
                                                 optional ref_traj [N, 2] or [N, 3] (world x, y[, yaw]),
                                                 optional agents [N, N_agents, 2] (world x, y of other agents)
    SPLIT_DIR/traj_names.txt               one trajectory name per line

Every problem raises :class:`DataError` (a ``ValueError``) whose message names the file and the problem.
:func:`check_trajectory` collects all problems of one trajectory instead of stopping at the first, so
``navintent check-data`` can list every one, and separately the warnings: data that is used anyway. The one
warning today: numbered images beyond the last pose (``N.jpg`` and later for N poses); as in NoMaD, frames
``0 .. N-1`` are used.

``position``/``yaw``/``ref_traj``/``agents`` are read in every encoding real files use (numpy arrays, plain
lists, object arrays of numpy scalars, items that are 1-element arrays): see :func:`traj_value_to_array`.

``traj_data.pkl`` is read with a restricted unpickler that only builds plain containers and numpy arrays,
so a malicious pickle cannot run code (NoMaD uses ``pickle.load``). Files written by NoMaD's processing
scripts (dicts of numpy arrays, numpy 1.x or 2.x) load unchanged.
"""

from __future__ import annotations

import io
import pickle
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

TRAJ_DATA_FILE = "traj_data.pkl"
TRAJ_NAMES_FILE = "traj_names.txt"
_FRAME_RE = re.compile(r"^(\d+)\.jpg$")


class DataError(ValueError):
    """A dataset file is missing, unreadable or inconsistent; the message names the file and the problem."""


class DataWarning(UserWarning):
    """Data is used but looks wrong, or was excluded on purpose (e.g. images beyond the last pose, trajectories
    too short for context + horizon, a ``metric_waypoint_spacing`` far from the poses); the message gives the
    count or number that shows it."""


# (module, name) pairs the restricted unpickler may build: numpy arrays, dtypes and scalars only.
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy.core.numeric", "_frombuffer"),
    ("collections", "OrderedDict"),
    ("_codecs", "encode"),  # protocol <= 2 pickles store bytes as _codecs.encode(str, "latin1")
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):  # noqa: D401 - pickle API
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(
                f"refusing to unpickle {module}.{name} (only plain containers and numpy arrays are allowed)"
            )
        if module.startswith("numpy.core."):  # numpy 1.x pickles; numpy 2 moved these to numpy._core
            module = "numpy._core." + module[len("numpy.core.") :]
        return super().find_class(module, name)


def read_traj_data(path: Path) -> dict:
    """Load a ``traj_data.pkl`` safely; raise :class:`DataError` naming ``path`` if it is missing or unreadable."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError as err:
        raise DataError(f"{path}: missing {TRAJ_DATA_FILE}") from err
    except OSError as err:
        raise DataError(f"{path}: cannot read: {err}") from err
    try:
        data = _NumpyOnlyUnpickler(io.BytesIO(raw)).load()
    except (
        pickle.UnpicklingError,
        EOFError,
        AttributeError,
        ImportError,
        IndexError,
        KeyError,
        TypeError,
        ValueError,
    ) as err:
        raise DataError(f"{path}: not a readable pickle: {err}") from err
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a dict with keys 'position' and 'yaw', got {type(data).__name__}")
    return data


@dataclass(frozen=True)
class Trajectory:
    """One validated trajectory. Arrays are float64, world frame, one row per frame.

    position [N, 2] metres; yaw [N] rad; ref_traj [N, 2|3] or None; agents [N, N_agents, 2] or None.
    """

    name: str
    folder: Path
    position: np.ndarray
    yaw: np.ndarray
    ref_traj: np.ndarray | None
    agents: np.ndarray | None

    def __len__(self) -> int:
        return len(self.position)

    def image_path(self, t: int) -> Path:
        return self.folder / f"{t}.jpg"


class _Unusable(Exception):
    """Internal: one item of a ``traj_data.pkl`` value cannot be read as a number (message says which)."""


def _label(key: str, index: tuple[int, ...]) -> str:
    return f"'{key}'" + "".join(f"[{i}]" for i in index)


def _float_tree(value: Any, key: str, index: tuple[int, ...]) -> np.ndarray:
    """``value`` -> float64 array; nested lists, tuples and object arrays are stacked row by row, and an item
    holding exactly one number (``np.array([y])``, ``[y]``) counts as that number. Raises :class:`_Unusable`."""
    if isinstance(value, np.ndarray):
        kind = value.dtype.kind
        if kind in "iuf":
            return value.astype(np.float64)
        if kind != "O":
            raise _Unusable(f"{_label(key, index)} has dtype {value.dtype}, not a number type")
        if value.ndim == 0:
            return _float_tree(value[()], key, index)
        items: Sequence[Any] = list(value)
    elif isinstance(value, (list, tuple)):
        items = value
    elif isinstance(value, (bool, np.bool_)):
        raise _Unusable(f"{_label(key, index)} is a boolean ({value!r}), not a number")
    elif isinstance(value, (int, float, np.integer, np.floating)):
        try:
            return np.array(float(value))
        except OverflowError as err:
            raise _Unusable(f"{_label(key, index)} is too large for a float: {err}") from err
    elif value is None:
        raise _Unusable(f"{_label(key, index)} is None, not a number")
    else:
        raise _Unusable(f"{_label(key, index)} is a {type(value).__name__} ({value!r:.40}), not a number")
    if not items:
        return np.zeros((0,))
    rows = [_float_tree(item, key, (*index, i)) for i, item in enumerate(items)]
    rows = [r.reshape(()) if r.size == 1 else r for r in rows]
    shape = rows[0].shape
    for i, r in enumerate(rows):
        if r.shape != shape:
            raise _Unusable(
                f"{_label(key, index)} has rows of different shapes (ragged): {_label(key, (*index, 0))} "
                f"has shape {list(shape)} but {_label(key, (*index, i))} has shape {list(r.shape)}"
            )
    return np.stack(rows)


def traj_value_to_array(value: Any, key: str, where: Path) -> np.ndarray:
    """One value of a ``traj_data.pkl`` (e.g. ``data["yaw"]``) as a float64 array, in every encoding seen in
    real files: numpy arrays of any int/float dtype, plain Python lists, object arrays of numpy scalars,
    lists or object arrays whose items are 1-element arrays (``[np.array([y]), ...]`` -> shape ``[N]``).

    Rows are stacked; an item holding exactly one number counts as that number. The shape is NOT checked
    here (callers check it per key). Raises :class:`DataError` naming ``where`` and the key (and item index)
    for content that is not numbers: strings, None, booleans, other objects, ragged rows.
    """
    try:
        return _float_tree(value, key, ())
    except _Unusable as err:
        raise DataError(f"{where}: {err}") from None


def _as_float_array(value: Any, key: str, where: Path, problems: list[str]) -> np.ndarray | None:
    try:
        return traj_value_to_array(value, key, where)
    except DataError as err:
        problems.append(str(err))
        return None


def _check_finite(arr: np.ndarray, key: str, where: Path, problems: list[str]) -> None:
    bad = ~np.isfinite(arr)
    if bad.any():
        rows = np.unique(np.nonzero(bad)[0])
        problems.append(
            f"{where}: '{key}' has {int(bad.sum())} non-finite (NaN/inf) values, first at frame(s) {rows[:5].tolist()}"
        )


def _frame_numbers(folder: Path) -> set[int]:
    return {int(m.group(1)) for p in folder.iterdir() if (m := _FRAME_RE.match(p.name))}


@dataclass(frozen=True)
class TrajectoryCheck:
    """What :func:`check_trajectory` found in one trajectory folder.

    ``trajectory``: the validated :class:`Trajectory`, or None when there is any problem. ``problems``: lines
    that make the trajectory unusable (each names the file). ``warnings``: lines about data that is used
    anyway (each names the folder and the count). ``extra_frames``: numbers of the ``<k>.jpg`` images with
    ``k >= N`` (beyond the last pose), sorted.
    """

    trajectory: Trajectory | None
    problems: tuple[str, ...]
    warnings: tuple[str, ...]
    extra_frames: tuple[int, ...] = ()


def check_trajectory(folder: Path) -> TrajectoryCheck:
    """Validate one trajectory folder (not decoding images); every problem and warning is collected.

    Problems: ``traj_data.pkl`` missing or unreadable; ``position`` not ``[N, 2]``, ``yaw`` not ``[N]`` or
    ``[N, 1]`` (any encoding :func:`traj_value_to_array` reads); lengths differ; N = 0; non-finite values;
    optional ``ref_traj`` not ``[N, 2|3]`` or ``agents`` not ``[N, N_agents, 2]`` or non-finite; any of the
    images ``0.jpg .. N-1.jpg`` missing.

    Warning (the trajectory is still used): numbered images beyond the last pose (``N.jpg`` and later). As in
    NoMaD, frames ``0 .. N-1`` are used and the extra images are ignored; the warning gives their count.
    """
    folder = Path(folder)
    problems: list[str] = []
    pkl = folder / TRAJ_DATA_FILE
    if not folder.is_dir():
        return TrajectoryCheck(None, (f"{folder}: trajectory folder does not exist",), ())
    try:
        data = read_traj_data(pkl)
    except DataError as err:
        return TrajectoryCheck(None, (str(err),), ())
    arrays: dict[str, np.ndarray | None] = {}
    for key in ("position", "yaw"):
        if key not in data:
            problems.append(f"{pkl}: missing key '{key}' (keys present: {sorted(map(str, data))})")
            arrays[key] = None
        else:
            arrays[key] = _as_float_array(data[key], key, pkl, problems)
    position, yaw = arrays["position"], arrays["yaw"]
    if position is not None and (position.ndim != 2 or position.shape[1] != 2):
        problems.append(f"{pkl}: 'position' must have shape [N, 2], got {list(position.shape)}")
        position = None
    if yaw is not None:
        if yaw.ndim == 2 and yaw.shape[1] == 1:
            yaw = yaw[:, 0]
        if yaw.ndim != 1:
            problems.append(f"{pkl}: 'yaw' must have shape [N] or [N, 1], got {list(yaw.shape)}")
            yaw = None
    n = len(position) if position is not None else None
    if position is not None and yaw is not None and len(yaw) != n:
        problems.append(f"{pkl}: length mismatch: 'position' has {n} rows but 'yaw' has {len(yaw)}")
    if n == 0:
        problems.append(f"{pkl}: trajectory has 0 frames")
    for key, arr in (("position", position), ("yaw", yaw)):
        if arr is not None:
            _check_finite(arr, key, pkl, problems)

    ref_traj = None
    if data.get("ref_traj") is not None:
        ref_traj = _as_float_array(data["ref_traj"], "ref_traj", pkl, problems)
        if ref_traj is not None:
            if (
                ref_traj.ndim != 2
                or ref_traj.shape[1] not in (2, 3)
                or (n is not None and len(ref_traj) != n)
            ):
                problems.append(
                    f"{pkl}: 'ref_traj' must have shape [N, 2] or [N, 3] with N = {n} frames, "
                    f"got {list(ref_traj.shape)}"
                )
                ref_traj = None
            else:
                _check_finite(ref_traj, "ref_traj", pkl, problems)
    agents = None
    if data.get("agents") is not None:
        agents = _as_float_array(data["agents"], "agents", pkl, problems)
        if agents is not None:
            if agents.ndim != 3 or agents.shape[2] != 2 or (n is not None and len(agents) != n):
                problems.append(
                    f"{pkl}: 'agents' must have shape [N, N_agents, 2] with N = {n} frames, got {list(agents.shape)}"
                )
                agents = None
            else:
                _check_finite(agents, "agents", pkl, problems)

    notes: list[str] = []
    extra: list[int] = []
    if n is not None:
        frames = _frame_numbers(folder)
        missing = [t for t in range(n) if t not in frames]
        extra = sorted(t for t in frames if t >= n)
        if missing:
            problems.append(
                f"{folder}: length mismatch: {pkl.name} has {n} poses but {len(missing)} image(s) are missing, "
                f"e.g. {[f'{t}.jpg' for t in missing[:5]]}"
            )
        if extra:
            notes.append(
                f"{folder}: {pkl.name} has {n} poses but {len(extra)} image(s) lie beyond the last pose, "
                f"e.g. {[f'{t}.jpg' for t in extra[:5]]}: frames 0..{n - 1} are used, the extra images ignored"
            )
    if problems or position is None or yaw is None:
        return TrajectoryCheck(None, tuple(problems), tuple(notes), tuple(extra))
    traj = Trajectory(folder.name, folder, position, yaw, ref_traj, agents)
    return TrajectoryCheck(traj, (), tuple(notes), tuple(extra))


def find_problems(folder: Path) -> tuple[Trajectory | None, list[str]]:
    """``(trajectory or None, problems)`` of one trajectory folder: :func:`check_trajectory` without its
    warnings (images beyond the last pose are not a problem; read them from :func:`check_trajectory`)."""
    check = check_trajectory(folder)
    return check.trajectory, list(check.problems)


def load_trajectory(folder: Path) -> Trajectory:
    """Validated :class:`Trajectory` of one folder (arrays float64, see :class:`Trajectory`).

    Raises :class:`DataError` listing every problem found; each warning of :func:`check_trajectory` (e.g.
    images beyond the last pose) is issued as a :class:`DataWarning` and the trajectory is returned.
    """
    check = check_trajectory(folder)
    if check.problems:
        raise DataError("\n".join(check.problems))
    for message in check.warnings:
        warnings.warn(message, DataWarning, stacklevel=2)
    assert check.trajectory is not None
    return check.trajectory


def read_traj_names(split_folder: Path) -> list[str]:
    """Names listed in ``split_folder/traj_names.txt`` (blank lines ignored, order kept)."""
    path = Path(split_folder) / TRAJ_NAMES_FILE
    try:
        text = path.read_text()
    except FileNotFoundError as err:
        raise DataError(f"{path}: split file not found") from err
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise DataError(f"{path}: split lists no trajectories")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DataError(f"{path}: trajectories listed more than once: {dupes[:5]}")
    return names


def list_trajectory_folders(data_folder: Path) -> list[Path]:
    """Sub-folders of a dataset folder, sorted by name (every sub-folder is expected to be a trajectory)."""
    data_folder = Path(data_folder)
    if not data_folder.is_dir():
        raise DataError(f"{data_folder}: dataset folder does not exist")
    return sorted(p for p in data_folder.iterdir() if p.is_dir())
