"""A stop passed from the driver to the Ray processes that train: Ray Train workers (`--train-workers N`) and
the parallel trainings of a variants run.

A signal reaches the driver (fiagen.core.stop), not the Ray workers, which run the training loop in
processes (and, under Ray Train, threads) of their own. The driver creates a `StopFlag` actor and hands it
to its workers; while they run it calls `relay()` every `POLL_S` (sets the flag once a signal asked to
stop); each worker listens to the flag in a thread (`listening`) and turns it into `stop.request`, which its
loop reads at its next safe point, as it would read a signal of its own.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import ray

from fiagen.core import stop

POLL_S = 0.2


@ray.remote(num_cpus=0)
class StopFlag:
    """The signal the driver was asked to stop by (0: none yet)."""

    def __init__(self) -> None:
        self.signum = 0

    def set(self, signum: int) -> None:
        self.signum = signum

    def get(self) -> int:
        return self.signum


def new_flag() -> Any:
    """A StopFlag actor on the running Ray (it ends with the driver)."""
    return StopFlag.remote()


def relay(flag: Any, relayed: list[int]) -> None:
    """In the driver's wait loop: pass a stop that a signal asked for on to `flag`, once (`relayed` holds it)."""
    signum = stop.requested()
    if signum is not None and not relayed:
        flag.set.remote(signum)
        relayed.append(signum)


@contextmanager
def listening(flag: Any, poll_s: float = POLL_S) -> Iterator[None]:
    """In a Ray worker: while the block runs, a stop set on `flag` becomes `stop.request` here; afterwards
    this process forgets it (Ray runs other tasks in it)."""
    done = threading.Event()

    def listen() -> None:
        while not done.wait(poll_s):
            try:
                signum = ray.get(flag.get.remote(), timeout=10)
            except ray.exceptions.GetTimeoutError:
                continue
            except ray.exceptions.RayError:  # the driver is gone: Ray ends this worker too
                return
            if signum:
                stop.request(signum)
                return

    thread = threading.Thread(target=listen, name="fiagen-stop-listener", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        stop.forget()
