"""The import contract (pyproject.toml, [tool.importlinter]) is checked, not a habit: lint-imports passes on the
package as it is and fails once a lower layer imports a higher one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT), "--config", str(root / "pyproject.toml"), "--no-cache"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture()
def package_copy(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "fiagen", tmp_path / "fiagen", ignore=shutil.ignore_patterns("__pycache__", "*.pth",
                                                                                         "*.bin", "*.h5"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_layers_hold_as_the_package_is(package_copy: Path) -> None:
    result = _lint(package_copy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" in result.stdout and "0 broken" in result.stdout


@pytest.mark.parametrize(("module", "upward"), [
    ("core/files.py", "from fiagen.cli.main import main"),           # the bottom layer importing the top
    ("precompute/video.py", "from fiagen.train import checkpoint"),   # a stage importing a later one
    ("workflow/pipeline_file.py", "from fiagen.workflow import run"),  # inside fiagen run, upward
])
def test_an_upward_import_breaks_the_contract(package_copy: Path, module: str, upward: str) -> None:
    path = package_copy / "fiagen" / module
    path.write_text(path.read_text() + f"\n\ndef _upward() -> None:\n    {upward}  # noqa: F401\n")
    result = _lint(package_copy)
    assert result.returncode == 1, result.stdout
    assert "BROKEN" in result.stdout and upward.split()[1] in result.stdout
