"""The seed's entry point: ``python scripts/optimize_z2.py --ckpt C --data_sample S --steps 100 --lr 1e-2``.

Forwards every flag to ``navintent optimize-z2`` (see ``navintent optimize-z2 --help``).
"""

import sys

from navintent.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["optimize-z2", *sys.argv[1:]], report_errors=True))  # as the program: exit 2 / 3
