"""The error and exit-code policy of the ``navintent`` commands, in one place.

Exit codes:

- :data:`EXIT_OK` (0): the command did what it was asked.
- :data:`EXIT_CHECK_FAILED` (1): ``navintent check-data`` found errors in the data. This is the command's verdict
  (it lists every error it found), not an error of the command itself.
- :data:`EXIT_INPUT` (2): an input error: a bad file, key, shape or argument. argparse's usage errors exit 2 too.
- :data:`EXIT_NUMERICAL` (3): a numerical stop: a loss, objective, gradient or policy output became NaN/inf.
  Nothing is written then (a report of NaNs would mislead).

Which exception means what (:func:`exit_code`):

- Input errors, :data:`INPUT_ERRORS`: ``ValueError`` and its subclasses (config validation,
  :class:`navintent.data.DataError`, :class:`navintent.checkpoint.UntrustedCheckpointError`, corrupt checkpoints,
  shape checks) and the ``OSError`` subclasses for a path that is missing, already exists or is of the wrong kind
  (``FileNotFoundError``, ``FileExistsError``, ``NotADirectoryError``, ``IsADirectoryError``). Every such message
  names the file, key, value or shape.
- Numerical stops: :class:`NumericalStopError` and its subclasses
  (:class:`navintent.training.NonFiniteLossError`, :class:`navintent.steering.NonFiniteObjectiveError`, and the
  rollout's non-finite policy output). Every such message names the step and, where there is one, the scenario and
  the term.
- Anything else (a ``RuntimeError`` from torch, a bug) is not mapped: it keeps its traceback.

:func:`navintent.cli.main` is the one place that applies this policy: it prints
``navintent <command>: error: <message>`` on stderr and returns the code. Command functions raise; they neither
print errors nor return 2 or 3 themselves. This module imports nothing heavy (the light commands import it).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_INPUT = 2
EXIT_NUMERICAL = 3

# Exceptions that mean "the input is bad" (see the module docstring); reported without a traceback.
INPUT_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    FileNotFoundError,
    FileExistsError,
    NotADirectoryError,
    IsADirectoryError,
)


class NumericalStopError(RuntimeError):
    """A computation became NaN/inf and was stopped before its result reached weights, reports or disk; the
    message names the step (and the scenario and term where there are ones). Exit status :data:`EXIT_NUMERICAL`."""


# Every exception type the policy maps to an exit status; the rest keep their traceback.
REPORTED_ERRORS: tuple[type[BaseException], ...] = (*INPUT_ERRORS, NumericalStopError)


def exit_code(error: BaseException) -> int | None:
    """The exit status for ``error``: :data:`EXIT_NUMERICAL` for a :class:`NumericalStopError`, :data:`EXIT_INPUT`
    for one of :data:`INPUT_ERRORS`, None for anything else (not reported: it keeps its traceback)."""
    if isinstance(error, NumericalStopError):
        return EXIT_NUMERICAL
    if isinstance(error, INPUT_ERRORS):
        return EXIT_INPUT
    return None


__all__ = [
    "EXIT_CHECK_FAILED",
    "EXIT_INPUT",
    "EXIT_NUMERICAL",
    "EXIT_OK",
    "INPUT_ERRORS",
    "REPORTED_ERRORS",
    "NumericalStopError",
    "exit_code",
]
