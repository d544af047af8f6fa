"""Stopping at a safe point on SIGTERM or SIGINT: what a scheduler sends on preemption (SLURM, Kubernetes,
spot instances) and what Ctrl-C sends.

`handle_signals()` (around every command, in `fiagen.cli.main.main`) installs the handlers and restores the
previous ones afterwards. Outside a stage's loop a signal stops the command at once: `Stopped` is raised
where the program is, and since every file is written whole or not at all (fiagen.core.files) nothing is left
half written, and the folder lock is released on the way out. Inside `safe_points()` (the loops of
precompute, train, evaluate and bench) the first signal only sets a flag, `requested()`, which the loop
reads at its next safe point (train: the end of a step); the stage then saves what a resume needs, records
that it stopped, and raises `Stopped` itself. A second signal stops at once in either case.

`cli.main` prints a `Stopped` as one line naming the command that resumes (`resume_line`) and exits with
128 + the signal number: 143 for SIGTERM, 130 for SIGINT. Ray's `ray.init` installs its own SIGTERM handler
(it exits with status 15, after its C++ handler printed a stack), and `ray.shutdown` leaves SIGTERM at its
default action (exit) while `signal.getsignal` still names fiagen's; `reinstall()` puts fiagen's back after
both (fiagen.cluster.session.ray_session). `request()` is the same stop relayed by the driver to a Ray
process that runs a loop (fiagen.cluster.relay).
"""

from __future__ import annotations

import shlex
import signal
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

SIGNALS = (signal.SIGTERM, signal.SIGINT)
STATUS = "stopped (signal)"  # what a stage's run record says


class Stopped(BaseException):  # noqa: N818 - not an error: like KeyboardInterrupt, no `except Exception` takes it
    """A command that a signal stopped. `detail`: where (e.g. "after step 37"); `resume_args`: options the
    resume command adds when the command line runs `command` itself (e.g. ("--resume",) for `fiagen train`;
    `fiagen run` and `fiagen demo` resume by the same command line)."""

    def __init__(self, signum: int, detail: str = "", resume_args: Sequence[str] = (), command: str = "") -> None:
        super().__init__(signum, detail, tuple(resume_args), command)
        self.signum, self.detail, self.resume_args, self.command = signum, detail, tuple(resume_args), command

    @property
    def code(self) -> int:
        """The exit status: 128 + the signal number (143 for SIGTERM, 130 for SIGINT)."""
        return 128 + self.signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    def __str__(self) -> str:
        return f"stopped by {self.name}" + (f" {self.detail}" if self.detail else "")

    def resume_line(self, argv: Sequence[str]) -> str:
        """The one line for the user: what stopped, where, and the command that resumes (`argv`: the
        arguments of this command, without the program name)."""
        args = list(argv)
        # the command is the first argument that is not a global option (`fiagen -q train ...`: -q, -v, -qv)
        named = next((a for a in args if not a.startswith("-")), None)
        if self.command and named == self.command:
            args += [a for a in self.resume_args if a not in argv]
        return f"{self}; resume with: {shlex.join(['fiagen', *args])}"


_state: dict[str, Any] = {"installed": 0, "polled": 0, "signum": None}


def requested() -> int | None:
    """The signal that asked the command to stop at its next safe point, or None."""
    return _state["signum"]


def request(signum: int) -> None:
    """Ask the loop to stop at its next safe point, as a first signal inside `safe_points` does: a stop that the
    driver relays to the Ray process running the loop (fiagen.cluster.relay)."""
    if _state["signum"] is None:
        _state["signum"] = signum


def forget() -> None:
    """Forget a stop that `request` asked for (the Ray process goes on with other work)."""
    _state["signum"] = None


def _handler(signum: int, frame: Any) -> None:
    if _state["polled"] and _state["signum"] is None:
        _state["signum"] = signum  # the loop stops at its next safe point
        return
    raise Stopped(signum, "at once" if _state["signum"] is not None else "")


def reinstall() -> None:
    """Put fiagen's handlers back where other code (ray.init) replaced them, while `handle_signals` is active."""
    if _state["installed"] and threading.current_thread() is threading.main_thread():
        for sig in SIGNALS:
            signal.signal(sig, _handler)


@contextmanager
def handle_signals() -> Iterator[None]:
    """Install the handlers for the block (main thread only; nested blocks share them), then restore the
    previous handlers."""
    if _state["installed"] or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in SIGNALS}
    _state.update(installed=1, signum=None)
    for sig in SIGNALS:
        signal.signal(sig, _handler)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        _state.update(installed=0, signum=None)


@contextmanager
def safe_points() -> Iterator[None]:
    """Inside the block, a first signal sets `requested()` for the loop to read instead of stopping at once."""
    _state["polled"] += 1
    try:
        yield
    finally:
        _state["polled"] -= 1
