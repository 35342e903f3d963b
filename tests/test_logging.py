"""What library code says goes through ``logging`` (loggers under ``navintent``); the command line's handler
(:func:`navintent.cli.configure_logging`) prints it on stderr as the bare message, as the commands always have."""

from __future__ import annotations

import argparse
import logging

from navintent.cli import _StderrHandler, configure_logging
from navintent.commands.common import add_metric_scale_arguments, metric_scale_for_command


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_metric_scale_arguments(parser)
    return parser.parse_args(list(argv))


def test_library_notes_are_log_records(caplog):
    with caplog.at_level(logging.INFO, logger="navintent"):
        scale = metric_scale_for_command(_args("--metric-scale", "0.25"))
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        ("navintent.metric_scale", logging.INFO, scale.describe())
    ]


def test_the_command_line_handler_prints_the_bare_message_once(capsys):
    configure_logging()
    configure_logging()
    handlers = [h for h in logging.getLogger("navintent").handlers if isinstance(h, _StderrHandler)]
    assert len(handlers) == 1
    scale = metric_scale_for_command(_args("--metric-scale", "0.25"))
    logging.getLogger("navintent.steering.api").warning("warning: z2 barely changes this policy")
    assert capsys.readouterr().err == f"{scale.describe()}\nwarning: z2 barely changes this policy\n"
