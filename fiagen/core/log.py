"""One voice for messages: fiagen logs through `logging.getLogger("fiagen")` (modules through its children,
`fiagen.<module>`), and the command line shows every record as one line on stderr:

    fiagen: error: <message>      fiagen: warning: <message>      <info message>      fiagen: debug: <message>

`setup(verbosity)` installs that one handler (`fiagen.cli.main` calls it for every command): -1 (`--quiet`)
shows warnings and errors only, 0 adds info lines, 1 (`--verbose`) adds debug lines. It also routes
Python warnings (`warnings.warn`) into the same handler, each as one `fiagen: warning:` line without a
file name, line number or source line (a warning from another package names its category and origin).
`print`/`click.echo` to stdout are kept for a command's own result (tables, paths, --dry-run's YAML).
Used as a library without `setup`, fiagen adds no handler: records of level WARNING and above reach
Python's last-resort handler (stderr) unless the application configures logging.
"""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path
from typing import Any, TextIO

ROOT = "fiagen"
LEVELS = {-1: logging.WARNING, 0: logging.INFO, 1: logging.DEBUG}
_PACKAGE = str(Path(__file__).resolve().parents[1])  # fiagen/, not fiagen/core/


def get_logger(name: str = ROOT) -> logging.Logger:
    """The logger of a fiagen module (`fiagen.<module>`, from its `__name__`) or of the package."""
    return logging.getLogger(name if name == ROOT or name.startswith(ROOT + ".") else f"{ROOT}.{name}")


class LineFormatter(logging.Formatter):
    """A record as the command line's one line: `fiagen: error:` / `fiagen: warning:` / plain info /
    `fiagen: debug:`; an exception's traceback (logged with exc_info) follows only at debug level."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.levelno >= logging.ERROR:
            text = f"fiagen: error: {text}"
        elif record.levelno >= logging.WARNING:
            text = f"fiagen: warning: {text}"
        elif record.levelno < logging.INFO:
            text = f"fiagen: debug: {text}"
        if record.exc_info and logging.getLogger(ROOT).isEnabledFor(logging.DEBUG):
            text += "\n" + self.formatException(record.exc_info)
        return text


class StderrHandler(logging.StreamHandler):
    """A handler writing to the `sys.stderr` of the moment (a test runner may replace it after setup)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: TextIO | None = None, line: str | None = None) -> None:
    """`warnings.showwarning` of the command line: a warning as one record of the fiagen logger."""
    if str(Path(filename).resolve()).startswith(_PACKAGE):
        get_logger().warning("%s", message)
    else:
        get_logger().warning("%s: %s (%s:%d)", category.__name__, message, Path(filename).name, lineno)


def setup(verbosity: int = 0) -> logging.Logger:
    """Install the command line's one handler on the "fiagen" logger (propagation off), at the level of
    `verbosity` (-1 quiet, 0 normal, 1 verbose), and route Python warnings into it. Calling it again
    changes the level and keeps the one handler."""
    logger = logging.getLogger(ROOT)
    if not any(isinstance(h, StderrHandler) for h in logger.handlers):
        handler = StderrHandler()
        handler.setFormatter(LineFormatter())
        logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(LEVELS[max(-1, min(1, verbosity))])
    warnings.showwarning = _show_warning
    return logger


def quiet() -> None:
    """Warnings and errors only from now on (a command's `--quiet`); a `--verbose` given too wins."""
    logger = logging.getLogger(ROOT)
    if logger.getEffectiveLevel() == logging.INFO:
        logger.setLevel(logging.WARNING)


def is_quiet() -> bool:
    """Whether `setup` or `quiet` turned info lines off (`fiagen -q` or a command's `--quiet`)."""
    return logging.getLogger(ROOT).level >= logging.WARNING


def follow(cfg: Any) -> None:
    """Make the log quiet when a command's resolved config says `quiet` (from its option or its file)."""
    if getattr(cfg, "quiet", False) is True:
        quiet()
