"""A run's scalar log: ``metrics.csv`` (columns ``step``, ``epoch``, ``name``, ``value``) and TensorBoard (``tb/``).

Named ``metrics_log`` so it does not shadow the standard library's ``logging``. Only rank 0 writes; a resumed run
first drops the rows logged after its checkpoint's step (they are logged again) and TensorBoard purges them too.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter

METRICS_CSV = "metrics.csv"


class MetricsLog:
    """Scalars of one run in ``out_dir/metrics.csv`` (always) and ``out_dir/tb`` (between :meth:`start` and
    :meth:`close`). ``enabled=False`` (ranks other than 0) makes every call a no-op.

    :meth:`latest` is the newest value of every name logged in the run folder, as :func:`final_metrics` reads it
    back from the file (values rounded to the 8 significant digits the file holds).
    """

    def __init__(self, out_dir: str | Path, *, enabled: bool = True) -> None:
        self.out_dir = Path(out_dir)
        self.csv_path = self.out_dir / METRICS_CSV
        self.enabled = enabled
        self._writer: SummaryWriter | None = None
        self._latest: dict[str, float] = {}

    def start(self, step: int) -> None:
        """Start (or continue, at ``step``) the run's log: keep the CSV rows up to ``step``, open TensorBoard."""
        if not self.enabled:
            return
        self._truncate(step)
        self._writer = SummaryWriter(str(self.out_dir / "tb"), purge_step=step)

    def write(self, scalars: dict[str, float], step: int, epoch: int) -> None:
        """Append ``scalars`` (name -> value) at ``step`` of ``epoch``."""
        if not self.enabled or not scalars:
            return
        if self._writer is not None:
            for name, value in scalars.items():
                self._writer.add_scalar(name, value, step)
        new = not self.csv_path.exists()
        with self.csv_path.open("a", newline="") as fh:
            w = csv.writer(fh)
            if new:
                w.writerow(["step", "epoch", "name", "value"])
            for name, value in scalars.items():
                text = f"{value:.8g}"
                w.writerow([step, epoch, name, text])
                self._latest[name] = float(text)

    def close(self) -> None:
        """Flush and close TensorBoard (the CSV is closed after every write)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def latest(self) -> dict[str, float]:
        """The newest value of every metric name, sorted by name (empty when disabled)."""
        return dict(sorted(self._latest.items()))

    def _truncate(self, step: int) -> None:
        """Drop rows logged after ``step`` (a resumed run logs them again); remember the kept values."""
        if not self.csv_path.exists():
            return
        with self.csv_path.open(newline="") as fh:
            rows = list(csv.reader(fh))
        keep = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= step]
        tmp = self.csv_path.with_suffix(".csv.tmp")
        with tmp.open("w", newline="") as fh:
            csv.writer(fh).writerows(keep)
        os.replace(tmp, self.csv_path)
        self._latest = final_metrics(self.csv_path)


def final_metrics(csv_path: str | Path) -> dict[str, float]:
    """The newest value of every metric name in a run's ``metrics.csv`` (columns ``step``, ``epoch``, ``name``,
    ``value``, as :class:`MetricsLog` writes it), sorted by name. ``FileNotFoundError`` without the file."""
    last: dict[str, tuple[int, float]] = {}
    with Path(csv_path).open() as f:
        for row in csv.DictReader(f):
            step = int(row["step"])
            if row["name"] not in last or step >= last[row["name"]][0]:
                last[row["name"]] = (step, float(row["value"]))
    return {k: v for k, (_, v) in sorted(last.items())}
