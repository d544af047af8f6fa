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

from fiagen.cluster.reaper import start_watcher, stop_watcher
from fiagen.core import stop

T = TypeVar("T")


def init_kwargs(address: str | None, concurrency: int | None) -> dict[str, Any]:
    """The ray.init arguments of a stage: no dashboard (nobody asked for one; its agents outlive a killed
    driver), Ray's own logging quiet; `address` None: a local Ray of `concurrency` CPUs (default: all
    cores), even where `ray start` ran or RAY_ADDRESS is set ("local": plain ray.init() would attach to
    that cluster and then refuse num_cpus)."""
    kwargs: dict[str, Any] = dict(include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False,
                                  configure_logging=True)
    if address:
        return dict(address=address, **kwargs)
    return dict(address="local", num_cpus=concurrency or os.cpu_count() or 1, **kwargs)


@contextmanager
def ray_session(address: str | None, concurrency: int | None) -> Iterator[int]:
    """Yield how many tasks may run at once; start (and later stop) a local Ray unless one is running.

    `address` None starts a local Ray with `concurrency` CPUs (default: all cores), even on a machine where
    `ray start` ran or RAY_ADDRESS is set; "auto", "host:port" or "ray://host:port" attaches to a cluster,
    where `concurrency` defaults to the cluster's CPU count.
    """
    started, watcher = False, None
    if not ray.is_initialized():
        try:
            ray.init(**init_kwargs(address, concurrency))
        except SystemExit as err:  # a SIGTERM met ray.init's own handler (sys.exit(15)) before fiagen's was back
            if err.code != signal.SIGTERM:
                raise
            ray.shutdown()
            raise stop.Stopped(signal.SIGTERM) from None
        started = True
        if not address:  # this process's own Ray: ended with it even on a kill -9 (fiagen.cluster.reaper)
            watcher = start_watcher()
        stop.reinstall()  # ray.init put its own SIGTERM handler (exit 15) in place of fiagen's
    try:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        yield max(1, concurrency or cpus)
    finally:
        if started:
            try:
                ray.shutdown()
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
