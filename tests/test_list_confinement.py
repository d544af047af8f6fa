"""Issue 29, defects 4 and 8: a list file's paths stay inside its suite, links and `..` resolved before the
check. Each test failed before its fix."""

from __future__ import annotations

import json
import os
from pathlib import Path

from fiagen.manifests.suites import resolve_suite


def _touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_a_link_inside_the_suite_that_leads_out_is_refused(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    _touch(suite / "real" / "a.png")
    _touch(tmp_path / "outside" / "x.png")
    _touch(tmp_path / "outside" / "sub" / "y.png")
    (suite / "fake").mkdir()
    (suite / "fake" / "x.png").symlink_to(tmp_path / "outside" / "x.png")  # a file link out
    (suite / "away").symlink_to(tmp_path / "outside" / "sub", target_is_directory=True)  # a folder link out
    (suite / "fake" / "inside.png").symlink_to(suite / "real" / "a.png")  # a link that stays inside
    csv = suite / "list.csv"
    csv.write_text("real/a.png,0\nfake/x.png,1\naway/y.png,1\nfake/inside.png,1\n"
                   f"{suite / 'away' / 'y.png'},1\n")
    listing = resolve_suite(f"folder:{csv}")
    assert listing.refused == ["fake/x.png", "away/y.png", str(suite / "away" / "y.png")]
    assert [it.path.name for it in listing.items] == ["a.png", "inside.png"] and not listing.missing
    assert all(Path(os.path.realpath(it.path)).is_relative_to(suite) for it in listing.items)
    assert any("3 listed paths lead outside" in n for n in listing.notes)
    (tmp_path / "alias").symlink_to(suite, target_is_directory=True)  # the suite reached through a link
    via = resolve_suite(f"folder:{tmp_path / 'alias' / 'list.csv'}")
    assert via.refused == ["fake/x.png", "away/y.png", str(suite / "away" / "y.png")] and len(via.items) == 2
    allowed = resolve_suite(f"folder:{csv}", allow_outside_root=True)
    assert not allowed.refused and [it.path.name for it in allowed.items] == [
        "a.png", "x.png", "y.png", "inside.png", "y.png"]


def _bench_layout(data: Path) -> tuple[Path, dict]:
    """data/rgb (the root) beside data/outside; a JSON naming two frames inside and four leading out."""
    root = data / "rgb"
    inside = ["FF/original/000/000.png", "FF/original/000/001.png"]
    for rel in inside:
        _touch(root / rel)
    for name in ("x.png", "y.png", "z.png", "w.png"):
        _touch(data / "outside" / name)
    (root / "FF" / "original" / "000" / "002.png").symlink_to(data / "outside" / "w.png")
    escapes = ["../outside/x.png", "FF/../../outside/y.png", "FF/original/000/002.png"]
    index = {"FF": {"FF-real": {"test": {"000": {"frames": inside}}},
                    "FF-DF": {"test": {"010": {"frames": escapes}, "011": {"frames": [str(data / "outside/z.png")]}}}}}
    return root, index


def _listing(json_file: Path, root: Path, index: dict):
    json_file.parent.mkdir(parents=True, exist_ok=True)
    json_file.write_text(json.dumps(index))
    return resolve_suite(f"deepfakebench:{json_file}", root)


def test_deepfakebench_json_beside_the_root_opens_nothing_outside_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    root, index = _bench_layout(data)
    beside = _listing(data / "FF.json", root, index)  # as users keep it: next to rgb/ (and outside/)
    opened = [Path(f) for it in beside.items for f in it.frames]
    assert opened == [root / "FF/original/000/000.png", root / "FF/original/000/001.png"]
    assert beside.refused == index["FF"]["FF-DF"]["test"]["010"]["frames"]
    assert [it.video_id for it in beside.items] == ["FF-real/000"]
    assert [it.video_id for it in beside.missing] == ["FF-DF/011"]  # the absolute path maps under the root
    assert not any(Path(f).exists() for it in beside.missing for f in it.frames)

    # The same list gives the same answer wherever its JSON lies.
    for elsewhere in (data / "json" / "FF.json", root / "FF.json"):
        other = _listing(elsewhere, root, index)
        assert other.refused == beside.refused
        assert [(it.video_id, it.frames) for it in other.items] == [(it.video_id, it.frames) for it in beside.items]
        assert [it.video_id for it in other.missing] == ["FF-DF/011"]
