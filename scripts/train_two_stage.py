"""The seed's training entry point, kept for its users: forwards every flag to ``navintent train``.

    python scripts/train_two_stage.py --data_dir /path/to/data --ckpt /path/to/nomad.pth --batch_size 16 --epochs 10

Same flags as ``navintent train --help``; several processes: ``torchrun --nproc_per_node N scripts/train_two_stage.py ...``.
"""

from __future__ import annotations

import sys

from navintent.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["train", *sys.argv[1:]], report_errors=True))  # as the program: exit 2 / 3
