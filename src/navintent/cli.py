"""``navintent <command>``: one entry point; each command's flags live in ``navintent.commands.<command>``.

A command module (:mod:`navintent.commands`) exposes ``register(subparsers)``, which adds its sub-parser and sets
``func=<callable(args) -> int>`` as the parser default; that callable turns the flags into one typed call of the
package that owns the job and prints what it returns. Modules are imported lazily, only for the
command being run, so ``navintent check-data`` imports neither MuJoCo nor the models, steering or evaluation (it
does import torch: the data pipeline yields tensors); ``navintent --help`` imports every command module to list
them. ``tests/test_cli_imports.py`` checks the first claim.

Errors (decision): one policy, written in :mod:`navintent.errors` and applied in one place, :func:`main`. Command
functions raise; :func:`main` reports an input error (:data:`navintent.errors.INPUT_ERRORS`: ``ValueError`` and its
subclasses, the ``OSError`` subclasses for a path that is missing, already exists or is of the wrong kind) as
``navintent <command>: error: <message>`` on stderr with exit status 2 (argparse's status for usage errors), and a
numerical stop (:class:`navintent.errors.NumericalStopError`: NaN/inf in a loss, objective, gradient or policy
output) the same way with status 3, never as a traceback. Every such message names the file, key, value or shape
(or the step and term). Anything else (a ``RuntimeError`` from torch, a bug) keeps its traceback.
``NAVINTENT_TRACEBACK=1`` re-raises reported errors too, for debugging; Python callers that pass ``argv`` to
:func:`main` get the exception itself (see ``report_errors``). A ``--device cuda[:N]`` that this machine does not
have is refused before the command runs (same form, status 2). Numeric arguments that no config validates use the
argparse types below (:func:`int_at_least`, :func:`float_at_least`, :func:`float_in`), so they fail at parse time
with status 2.

Logging (decision): library modules say what they have to say (notes, the metric scale used, warnings) through
``logging.getLogger(__name__)``; :func:`main` attaches one handler (:func:`configure_logging`) that prints those
records on stderr as the bare message at INFO and above, the lines the commands printed before. Progress bars are
the commands' choice (library functions take ``progress: bool``).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import warnings
from collections.abc import Callable

from navintent.errors import EXIT_INPUT, EXIT_OK, REPORTED_ERRORS, exit_code

# command name -> the navintent.commands module that registers it (one module may register several names).
COMMANDS: dict[str, str] = {
    "check-data": "navintent.commands.check_data",
    "split": "navintent.commands.split",
    "train": "navintent.commands.train",
    "make-data": "navintent.commands.make_data",
    "sample": "navintent.commands.sample",
    "optimize-z2": "navintent.commands.optimize_z2",
    "evaluate": "navintent.commands.evaluate",
    "experiment": "navintent.commands.evaluate",
    "demo": "navintent.commands.demo",
    "export": "navintent.commands.export",
}


def int_at_least(minimum: int) -> Callable[[str], int]:
    """argparse ``type=``: an integer ``>= minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text!r}")
        return value

    parse.__name__ = f"int>={minimum}"
    return parse


def float_in(
    low: float | None = None, high: float | None = None, *, low_open: bool = False
) -> Callable[[str], float]:
    """argparse ``type=``: a finite float in ``[low, high]`` (``(low, high]`` with ``low_open``); None = unbounded."""
    lo = "" if low is None else f"{'>' if low_open else '>='} {low}"
    hi = "" if high is None else f"<= {high}"
    wanted = " and ".join(x for x in (lo, hi) if x) or "finite"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number {wanted}, got {text!r}") from None
        bad = value != value or value in (float("inf"), float("-inf"))
        bad = bad or (low is not None and (value <= low if low_open else value < low))
        bad = bad or (high is not None and value > high)
        if bad:
            raise argparse.ArgumentTypeError(f"must be a number {wanted}, got {text!r}")
        return value

    parse.__name__ = f"float({wanted})"
    return parse


def float_at_least(minimum: float, *, strict: bool = False) -> Callable[[str], float]:
    """argparse ``type=``: a finite float ``>= minimum`` (``> minimum`` with ``strict``)."""
    return float_in(minimum, None, low_open=strict)


def check_device(device: str) -> str | None:
    """Why ``device`` (a ``--device`` value) cannot be used here, or None. Only CUDA requests are checked
    (``auto`` and ``cpu`` always work; other strings are left to the command)."""
    if not device.startswith("cuda"):
        return None
    import torch

    if not torch.cuda.is_available():
        return f"{device} requested but no CUDA GPU is available here (torch.cuda.is_available() is False)"
    index = device.partition(":")[2]
    if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
        return f"{device} requested but this machine has {torch.cuda.device_count()} CUDA device(s)"
    return None


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


class _StderrHandler(logging.StreamHandler):
    """Writes each record to ``sys.stderr`` as it is when the record comes (a caller may have replaced it, as
    pytest's ``capsys`` and ``contextlib.redirect_stderr`` do)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def configure_logging() -> None:
    """Print what the library logs (loggers under ``navintent``, INFO and above) on stderr as the bare message,
    the text the commands have always printed. Called by :func:`main`; scripts that call the typed functions and
    want the same lines call it too. Idempotent (one handler however often it is called)."""
    logger = logging.getLogger("navintent")
    logger.setLevel(logging.INFO)
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)


def _one_line_data_warnings(prog: str) -> None:
    """Show :class:`navintent.data.DataWarning` (data used anyway: trailing images, short trajectories) as one line
    ``navintent <command>: warning: ...`` instead of Python's file/line form; other warnings keep theirs."""
    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if category.__name__ == "DataWarning":
            print(f"{prog}: warning: {message}", file=sys.stderr)
        else:
            default(message, category, filename, lineno, file, line)

    warnings.showwarning = show


def main(argv: list[str] | None = None, *, report_errors: bool | None = None) -> int:
    """Run a command; returns its exit status (:mod:`navintent.errors`).

    ``report_errors``: print input errors and numerical stops (:data:`navintent.errors.REPORTED_ERRORS`) as
    ``navintent <command>: error: ...`` and return 2 or 3 (:func:`navintent.errors.exit_code`) instead of raising.
    Default: True when ``argv`` is None (the ``navintent`` program), False when Python code passes ``argv`` (it gets
    the exception, with its type and traceback).
    """
    if report_errors is None:
        report_errors = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(only=command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return EXIT_INPUT
    prog = f"{parser.prog} {args.command}"
    configure_logging()
    if report_errors:
        _one_line_data_warnings(prog)
    try:
        device = getattr(args, "device", None)
        if isinstance(device, str) and (problem := check_device(device)) is not None:
            raise ValueError(f"argument --device: {problem}")
        return int(args.func(args) or EXIT_OK)
    except REPORTED_ERRORS as err:
        if not report_errors or os.environ.get("NAVINTENT_TRACEBACK"):
            raise
        print(f"{prog}: error: {err}", file=sys.stderr)
        return exit_code(err)


if __name__ == "__main__":
    raise SystemExit(main())
