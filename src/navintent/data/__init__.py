"""NoMaD-format navigation data: on-disk format, validation, splits, and :class:`NavDataset`.

``NavDataset`` serves dict samples (see its docstring); :func:`as_nomad_tuple` gives NoMaD's tuple order. Bad
data raises :class:`DataError` naming the file; data used anyway but looking wrong gives a :class:`DataWarning`
(:func:`check_trajectory` lists both). :func:`spacing_report` compares a dataset's ``metric_waypoint_spacing``
with its poses. Tiny datasets for tests: :func:`navintent.data.synthetic.write_synthetic_dataset`.
"""

from navintent.data.dataset import NavDataset, as_nomad_tuple, load_data_config
from navintent.data.format import (
    DataError,
    DataWarning,
    Trajectory,
    TrajectoryCheck,
    check_trajectory,
    find_problems,
    load_trajectory,
    read_traj_names,
    traj_value_to_array,
)
from navintent.data.spacing import SpacingReport, metres_per_frame, normalized_deltas, spacing_report
from navintent.data.split import split_dataset, write_traj_names

__all__ = [
    "DataError",
    "DataWarning",
    "NavDataset",
    "SpacingReport",
    "Trajectory",
    "TrajectoryCheck",
    "as_nomad_tuple",
    "check_trajectory",
    "find_problems",
    "load_data_config",
    "load_trajectory",
    "metres_per_frame",
    "normalized_deltas",
    "read_traj_names",
    "spacing_report",
    "split_dataset",
    "traj_value_to_array",
    "write_traj_names",
]
