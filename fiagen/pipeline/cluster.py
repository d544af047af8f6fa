"""Ray session handling shared by the stages: attach to a cluster, or start a local Ray."""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from typing import Iterator

import ray


@contextmanager
def ray_session(address: str | None, workers: int | None) -> Iterator[int]:
    """Yield how many tasks may run at once; start (and later stop) a local Ray unless one is running.

    `address` None starts a local Ray with `workers` CPUs (default: all cores), even on a machine where
    `ray start` ran or RAY_ADDRESS is set; "auto", "host:port" or "ray://host:port" attaches to a cluster,
    where `workers` defaults to the cluster's CPU count.
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
            ray.init(address="local", num_cpus=workers or os.cpu_count() or 1, **kwargs)
        started = True
    try:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        yield max(1, workers or cpus)
    finally:
        if started:
            ray.shutdown()
