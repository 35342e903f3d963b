"""NoMaD-format navigation data: on-disk format, validation, splits, and :class:`NavDataset`.

``NavDataset`` serves dict samples (see its docstring and CONTRACTS.md); :func:`as_nomad_tuple` gives NoMaD's
tuple order. Bad data raises :class:`DataError` naming the file. Tiny datasets for tests:
:func:`navintent.data.synthetic.write_synthetic_dataset`.
"""

from navintent.data.dataset import NavDataset, as_nomad_tuple, load_data_config
from navintent.data.format import (
    DataError,
    DataWarning,
    Trajectory,
    find_problems,
    load_trajectory,
    read_traj_names,
)
from navintent.data.split import split_dataset, write_traj_names

__all__ = [
    "DataError",
    "DataWarning",
    "NavDataset",
    "Trajectory",
    "as_nomad_tuple",
    "find_problems",
    "load_data_config",
    "load_trajectory",
    "read_traj_names",
    "split_dataset",
    "write_traj_names",
]
