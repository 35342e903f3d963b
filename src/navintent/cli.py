"""``navintent <command>``: one entry point; each command lives in the module that owns its concern.

A command module exposes ``register(subparsers)``, which adds its sub-parser and sets
``func=<callable(args) -> int>`` as the parser default. Modules are imported lazily, only for the
command being run, so ``navintent check-data`` never imports MuJoCo or the models.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# command name -> module that registers it (a command module may register several names).
COMMANDS: dict[str, str] = {
    "check-data": "navintent.data.cli",
    "split": "navintent.data.cli",
    "train": "navintent.train",
    "make-data": "navintent.sim.cli",
    "sample": "navintent.sample",
    "optimize-z2": "navintent.optimize",
    "evaluate": "navintent.evaluate",
    "experiment": "navintent.evaluate",
    "demo": "navintent.demo",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="navintent",
        description="Steer and stress-test NoMaD diffusion navigation policies with a two-stage latent intent.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    target = COMMANDS.get(only) if only is not None else None
    registered: set[str] = set()
    for name, module_name in COMMANDS.items():
        if target is not None and module_name != target:
            sub.add_parser(name, help=f"see `navintent {name} --help`", add_help=False)
        elif module_name not in registered:
            importlib.import_module(module_name).register(sub)
            registered.add(module_name)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(only=command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
