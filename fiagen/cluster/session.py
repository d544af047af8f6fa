"""Ray plumbing shared by the stages: attach to a cluster or start a local Ray; stream results with
ray.wait, a bounded number in flight."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import ray

from fiagen.cluster.head import start_head, stop_head
from fiagen.cluster.reaper import start_watcher, stop_watcher
from fiagen.core import stop

T = TypeVar("T")


def init_kwargs(address: str) -> dict[str, Any]:
    """The ray.init arguments of a stage attaching to the cluster at `address` (its own local head, or one
    the user named): no dashboard (nobody asked for one; its agents outlive a killed driver), Ray's own
    logging quiet."""
    return dict(address=address, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False,
                configure_logging=True)


@contextmanager
def ray_session(address: str | None, concurrency: int | None) -> Iterator[int]:
    """Yield how many tasks may run at once; start (and later stop) a local Ray unless one is running.

    `address` None starts a local Ray with `concurrency` CPUs (default: all cores) in a session of its own
    (fiagen.cluster.head: a signal to fiagen's process group leaves it running until fiagen's safe point),
    even on a machine where `ray start` ran or RAY_ADDRESS is set; "auto", "host:port" or "ray://host:port"
    attaches to a cluster, where `concurrency` defaults to the cluster's CPU count.
    """
    if ray.is_initialized():
        yield max(1, concurrency or int(ray.cluster_resources().get("CPU", 1)))
        return
    head, watcher = None, None
    try:
        if not address:  # this process's own Ray: in a session of its own (fiagen.cluster.head), ended with
            watcher = start_watcher()  # this process even on a kill -9 (fiagen.cluster.reaper)
            head = start_head(concurrency or os.cpu_count() or 1)
        try:
            ray.init(**init_kwargs(head.address if head else address))
        except SystemExit as err:  # a SIGTERM met ray.init's own handler (sys.exit(15)) before fiagen's was back
            if err.code != signal.SIGTERM:
                raise
            ray.shutdown()
            raise stop.Stopped(signal.SIGTERM) from None
        stop.reinstall()  # ray.init put its own SIGTERM handler (exit 15) in place of fiagen's
        try:
            yield max(1, concurrency or int(ray.cluster_resources().get("CPU", 1)))
        finally:
            ray.shutdown()
    finally:
        try:
            if head is not None:
                stop_head(head)
        finally:
            stop_watcher(watcher)
            stop.reinstall()  # ray.shutdown left SIGTERM at its default action (exit), fiagen's handler shown


def as_finished(jobs: Iterable[tuple[ray.ObjectRef, T]], limit: int, ordered: bool = False
                ) -> Iterator[tuple[ray.ObjectRef, T]]:
    """Submit `jobs` lazily (each a ref and what it stands for), at most `limit` in flight, and yield each
    (ref, tag) as it finishes (ray.wait), or with `ordered` oldest first (the caller's ray.get waits)."""
    pending: dict[ray.ObjectRef, T] = {}

    def next_done() -> tuple[ray.ObjectRef, T]:
        ref = next(iter(pending)) if ordered else ray.wait(list(pending), num_returns=1)[0][0]
        return ref, pending.pop(ref)

    for ref, tag in jobs:
        pending[ref] = tag
        if len(pending) >= limit:
            yield next_done()
    while pending:
        yield next_done()
