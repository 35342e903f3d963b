"""The navigator shipped with the package: a checkpoint navintent's own training made, and its provenance.

A few CPU minutes of ``navintent demo`` train a model that sees its goal but does not navigate well in closed loop
(README "Goal conditioning"). So the package carries one model trained beforehand by the same code, on data whose
expert drives with steering noise and shows recoveries (``ExpertConfig.steer_noise``), and the demo evaluates it
in NoMaD's deployment loop beside the model it trains on the spot.

Files (package data, ``navintent/assets``):

- ``sim_navigator.pt``: a native inference checkpoint (``navintent export --format inference``: float16 EMA
  weights, config, z2 statistics, training scales and training config; loaded with ``weights_only=True`` like every
  native checkpoint).
- ``sim_navigator.yaml``: its record: ``command`` (the one command that reproduces it), ``data`` (episodes, data
  seed, steering noise, and ``scene_seeds``, the training scenes, so an evaluation can prove its scenes held out),
  ``recipe`` (the full training config, equal to the checkpoint's), ``machine``, ``train_seconds``, ``sha256`` of the
  checkpoint, ``deployment`` (the loop settings it was measured with), ``closed_loop`` (navigation measured in NoMaD's
  loop, with the command) and ``explore`` (goal-masked exploration, likewise).

Decision: retrained only when its recipe changes; :func:`check_shipped_navigator` (run by the tests) proves the file
and its record agree.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

ASSET_PACKAGE = "navintent.assets"
CHECKPOINT_NAME = "sim_navigator.pt"
RECORD_NAME = "sim_navigator.yaml"
RECORD_KEYS = ("command", "data", "recipe", "machine", "train_seconds", "sha256", "deployment", "closed_loop")


def shipped_navigator_path() -> Path:
    """Path of the shipped checkpoint (``navintent/assets/sim_navigator.pt``). Raises ``FileNotFoundError`` when
    the installation lacks it (a package built without its data files)."""
    path = Path(str(resources.files(ASSET_PACKAGE).joinpath(CHECKPOINT_NAME)))
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the shipped navigator is missing from this installation")
    return path


def shipped_navigator_record() -> dict[str, Any]:
    """The shipped checkpoint's record (``sim_navigator.yaml``, module docstring). Raises ``ValueError`` naming
    the missing keys of a malformed record."""
    text = resources.files(ASSET_PACKAGE).joinpath(RECORD_NAME).read_text(encoding="utf-8")
    record = yaml.safe_load(text)
    missing = [k for k in RECORD_KEYS if not isinstance(record, dict) or k not in record]
    if missing:
        raise ValueError(f"{RECORD_NAME} lacks {missing}")
    return record


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_shipped_navigator() -> dict[str, Any]:
    """Prove the shipped checkpoint is the one its record describes: same SHA-256, and the training config stored
    in the checkpoint equals the record's ``recipe`` key for key. Returns the record; raises ``ValueError`` naming
    what differs."""
    from navintent.checkpoint import read_checkpoint
    from navintent.training.checkpoints import config_diff

    record = shipped_navigator_record()
    path = shipped_navigator_path()
    digest = file_sha256(path)
    if digest != record["sha256"]:
        raise ValueError(f"{path}: SHA-256 {digest}, its record says {record['sha256']}")
    stored = read_checkpoint(path).get("train_state", {}).get("config")
    if stored is None:
        raise ValueError(
            f"{path} stores no training config (train_state.config) to compare with {RECORD_NAME}"
        )
    differ = config_diff(stored, record["recipe"])
    if differ:
        raise ValueError(
            f"{path}: the stored training config differs from {RECORD_NAME}'s recipe: {'; '.join(differ)}"
        )
    return record
