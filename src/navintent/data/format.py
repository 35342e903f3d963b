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
:func:`find_problems` collects all problems of one trajectory instead of stopping at the first, so
``navintent check-data`` can list every one.

``traj_data.pkl`` is read with a restricted unpickler that only builds plain containers and numpy arrays,
so a malicious pickle cannot run code (NoMaD uses ``pickle.load``). Files written by NoMaD's processing
scripts (dicts of numpy arrays, numpy 1.x or 2.x) load unchanged.
"""

from __future__ import annotations

import io
import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TRAJ_DATA_FILE = "traj_data.pkl"
TRAJ_NAMES_FILE = "traj_names.txt"
_FRAME_RE = re.compile(r"^(\d+)\.jpg$")


class DataError(ValueError):
    """A dataset file is missing, unreadable or inconsistent; the message names the file and the problem."""


class DataWarning(UserWarning):
    """Data was excluded on purpose (e.g. trajectories too short for context + horizon)."""


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


def _as_float_array(value, key: str, where: Path, problems: list[str]) -> np.ndarray | None:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        problems.append(f"{where}: '{key}' is not numeric: {err}")
        return None
    return arr


def _check_finite(arr: np.ndarray, key: str, where: Path, problems: list[str]) -> None:
    bad = ~np.isfinite(arr)
    if bad.any():
        rows = np.unique(np.nonzero(bad)[0])
        problems.append(
            f"{where}: '{key}' has {int(bad.sum())} non-finite (NaN/inf) values, first at frame(s) {rows[:5].tolist()}"
        )


def _frame_numbers(folder: Path) -> set[int]:
    return {int(m.group(1)) for p in folder.iterdir() if (m := _FRAME_RE.match(p.name))}


def find_problems(folder: Path) -> tuple[Trajectory | None, list[str]]:
    """Validate one trajectory folder (not decoding images). Returns (trajectory or None, problems).

    Checks: ``traj_data.pkl`` present, readable, has ``position [N, 2]`` and ``yaw [N] | [N, 1]``, all finite;
    optional ``ref_traj [N, 2|3]`` and ``agents [N, N_agents, 2]`` with the same N, finite; images ``0.jpg ..
    N-1.jpg`` all present and no extra numbered frames.
    """
    folder = Path(folder)
    problems: list[str] = []
    pkl = folder / TRAJ_DATA_FILE
    if not folder.is_dir():
        return None, [f"{folder}: trajectory folder does not exist"]
    try:
        data = read_traj_data(pkl)
    except DataError as err:
        return None, [str(err)]
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
            problems.append(f"{pkl}: 'yaw' must have shape [N] or [N, 1], got {list(np.shape(data['yaw']))}")
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
            problems.append(
                f"{folder}: length mismatch: {pkl.name} has {n} poses but there are images beyond frame {n - 1}, "
                f"e.g. {[f'{t}.jpg' for t in extra[:5]]}"
            )
    if problems or position is None or yaw is None:
        return None, problems
    traj = Trajectory(folder.name, folder, position, yaw, ref_traj, agents)
    return traj, problems


def load_trajectory(folder: Path) -> Trajectory:
    """Validated :class:`Trajectory`; raises :class:`DataError` listing every problem found."""
    traj, problems = find_problems(folder)
    if problems:
        raise DataError("\n".join(problems))
    assert traj is not None
    return traj


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
