"""Run the `fiagen` entry point inside the test process, for tests that check its exit code and stderr."""

from __future__ import annotations

import sys

import pytest

from fiagen.cli.main import main


def run_cli(argv: list[str], capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    """(exit code, stderr) of `fiagen ARGV` run in this process."""
    monkeypatch.setattr(sys, "argv", ["fiagen", *argv])
    with pytest.raises(SystemExit) as code:
        main()
    return code.value.code, capsys.readouterr().err

