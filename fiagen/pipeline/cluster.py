"""Ray plumbing shared by the stages: attach to a cluster or start a local Ray; stream results with\nray.wait, a bounded number in flight."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import ray

T = TypeVar("T")


@contextmanager
def ray_session(address: str | None, concurrency: int | None) -> Iterator[int]:
    """Yield how many tasks may run at once; start (and later stop) a local Ray unless one is running.

    `address` None starts a local Ray with `concurrency` CPUs (default: all cores), even on a machine where
    `ray start` ran or RAY_ADDRESS is set; "auto", "host:port" or "ray://host:port" attaches to a cluster,
    where `concurrency` defaults to the cluster's CPU count.
    """
    started = False
    if not ray.is_initialized():
        kwargs = dict(include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False,
                      configure_logging=True)
        if address:
            ray.init(address=address, **kwargs)
        else:
            # "local": plain ray.init() would attach to a cluster found via RAY_ADDRESS or `ray start`
            # and then refuse num_cpus
            ray.init(address="local", num_cpus=concurrency or os.cpu_count() or 1, **kwargs)
        started = True
    try:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        yield max(1, concurrency or cpus)
    finally:
        if started:
            ray.shutdown()


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
