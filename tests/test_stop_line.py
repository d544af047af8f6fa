"""The line a stopped command prints: the command that resumes it, global options before the command included."""

from __future__ import annotations

import shlex
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from fiagen.core import stop


@pytest.mark.parametrize("globals_", [[], ["-q"], ["--quiet"], ["-v"], ["--verbose"], ["-q", "-v"], ["-qv"]])
def test_the_resume_line_adds_resume_after_global_options(globals_: list[str]) -> None:
    stopped = stop.Stopped(signal.SIGTERM, "after step 3", ("--resume",), "train")
    resumes = "stopped by SIGTERM after step 3; resume with: "
    assert stopped.resume_line([*globals_, "train", "--run", "x"]) == resumes + shlex.join(
        ["fiagen", *globals_, "train", "--run", "x", "--resume"])
    assert stopped.resume_line([*globals_, "run", "p.yaml"]) == resumes + shlex.join(  # `fiagen run` resumes itself
        ["fiagen", *globals_, "run", "p.yaml"])


def test_a_stopped_quiet_train_prints_a_line_that_resumes(fiagen_main: Callable, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    def stopped_after_step_3(cfg: object) -> None:
        raise stop.Stopped(signal.SIGTERM, "after step 3", ("--resume",), "train")

    monkeypatch.setattr("fiagen.train.config.check_shards", lambda cfg: None)
    monkeypatch.setattr("fiagen.train.entry.train", stopped_after_step_3)
    code, out, err = fiagen_main(["-q", "train", "--run", str(tmp_path / "x"), "--shards", str(tmp_path)])
    assert code == 143 and out == ""
    assert err == (f"fiagen: stopped by SIGTERM after step 3; resume with: fiagen -q train --run {tmp_path / 'x'} "
                   f"--shards {tmp_path} --resume\n")
