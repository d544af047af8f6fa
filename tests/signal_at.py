"""`python signal_at.py MODULE:NAME AT -- FIAGEN_ARGS...`: run `fiagen FIAGEN_ARGS` with MODULE.NAME wrapped so
that right after its AT-th call SIGTERM goes to the whole process group, the way SLURM and Kubernetes stop a
job (start this in a session of its own). The time of the signal is written to $SIGNALLED_AT. Used by the
preemption tests, so each knows where its signal lands."""

import importlib
import os
import signal
import sys
import time


def wrap(target: str, at: int) -> None:
    """Wrap MODULE:NAME in place: SIGTERM to this process group right after its `at`-th call."""
    module_name, name = target.split(":")
    module = importlib.import_module(module_name)
    real, calls = getattr(module, name), []

    def wrapped(*args, **kwargs):
        result = real(*args, **kwargs)
        calls.append(1)
        if len(calls) == at:
            with open(os.environ["SIGNALLED_AT"], "w") as fh:
                fh.write(f"{time.time()}\n")
            os.killpg(0, signal.SIGTERM)
        return result

    setattr(module, name, wrapped)


if __name__ == "__main__":  # not in the DataLoader workers that import this file again
    wrap(sys.argv[1], int(sys.argv[2]))
    from fiagen.cli.main import main

    sys.argv = ["fiagen", *sys.argv[sys.argv.index("--") + 1:]]
    main()
