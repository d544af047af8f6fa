"""Command line: one thin command per stage; parsing only, the work lives in the stage packages."""

from __future__ import annotations

import errno
import os
import sys

import click

from fiagen.cli import data, export, model, predict, workflow
from fiagen.cli.group import cli
from fiagen.core import log, stop
from fiagen.core.errors import FiagenError
from fiagen.core.files import disk_full, is_disk_full

for _command in (*data.COMMANDS, *model.COMMANDS, *predict.COMMANDS, *export.COMMANDS, *workflow.COMMANDS):
    cli.add_command(_command)

UNWRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM)


def _write_error(err: OSError) -> str:
    """The line for a write the user can fix: a full disk, a read-only or forbidden folder."""
    if err.filename is None:
        return f"cannot write the output: {err.strerror}"
    return str(disk_full(err.filename)) if is_disk_full(err) else f"cannot write {err.filename}: {err.strerror}"


def main() -> None:
    """Console entry point: user errors are one line; anything else is one line plus how to see more."""
    log.setup()  # the one handler of every message; `fiagen -q/-v` sets its level
    try:
        with stop.handle_signals():  # SIGTERM/SIGINT: stop at a safe point (fiagen.core.stop)
            code = cli.main(standalone_mode=False)
    except stop.Stopped as err:  # one line naming the command that resumes; 143 (SIGTERM) or 130 (SIGINT)
        click.echo(f"fiagen: {err.resume_line(sys.argv[1:])}", err=True)
        sys.exit(err.code)
    except click.exceptions.Abort:
        log.get_logger().error("aborted")
        sys.exit(130)
    except click.BadParameter as err:  # a value of the wrong kind (a folder for a file, ...): one line
        hint = err.param.opts[0] if err.param is not None and err.param.opts else (err.param_hint or "a value")
        log.get_logger().error("%s: %s", hint, err.message)
        sys.exit(err.exit_code)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except FiagenError as err:
        log.get_logger().error("%s", err)
        sys.exit(2)
    except Exception as err:  # noqa: BLE001 - last line of defence against a traceback wall
        if os.environ.get("FIAGEN_DEBUG"):
            raise
        if isinstance(err, OSError) and (is_disk_full(err) or err.errno in UNWRITABLE):
            log.get_logger().error("%s", _write_error(err))
            sys.exit(2)
        log.get_logger().error("unexpected %s: %s (set FIAGEN_DEBUG=1 for the traceback)", type(err).__name__, err)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
