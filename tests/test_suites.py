"""Evaluation suite parsers on temporary trees laid out as each dataset ships (no real media needed,
except the Celeb-DF v2 test list and DFDC metadata examples from the shared index)."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from fiagen.manifests.roots import SourceError
from fiagen.manifests.suites import parse_suites, resolve_suite, suite_dirname
from fiagen.manifests.suites.celebdf import celebdf
from fiagen.manifests.suites.df40 import DF40_FAMILIES, df40
from fiagen.manifests.suites.dfdc import dfdc, dfdcp
from fiagen.manifests.suites.diff import diff
from fiagen.manifests.suites.ffpp import FFPP_FAKE_METHODS, dfd, ffpp, ffpp_test_pairs
from fiagen.manifests.suites.folder import folder


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def ffpp_tree(root: Path, skip: int = 0) -> list[str]:
    """FF++ c23 test originals and the five methods' fakes; the first `skip` fakes of Deepfakes left out."""
    pairs = ffpp_test_pairs()
    ids = sorted({v for p in pairs for v in p})
    for vid in ids:
        touch(root / "original_sequences/youtube/c23/videos" / f"{vid}.mp4")
    skipped = []
    for method in FFPP_FAKE_METHODS:
        for _n, (a, b) in enumerate(pairs):
            for name in (f"{a}_{b}", f"{b}_{a}"):
                if method == "Deepfakes" and len(skipped) < skip:
                    skipped.append(name)
                    continue
                touch(root / "manipulated_sequences" / method / "c23/videos" / f"{name}.mp4")
    return skipped


def test_ffpp_test_split(tmp_path: Path) -> None:
    skipped = ffpp_tree(tmp_path, skip=3)
    listing = ffpp(tmp_path)
    counts = listing.counts()
    assert counts == {"real": 140, "Deepfakes": 137, "Face2Face": 140, "FaceSwap": 140, "NeuralTextures": 140,
                      "FaceShifter": 140}
    assert sorted(m.video_id for m in listing.missing) == sorted(f"Deepfakes/{n}" for n in skipped)
    by_id = {it.video_id: it for it in listing.items}
    a, b = ffpp_test_pairs()[0]
    assert by_id[f"FaceSwap/{a}_{b}"].label == 1 and by_id[f"FaceSwap/{b}_{a}"].label == 1
    assert by_id[f"real/{a}"].label == 0 and by_id[f"real/{a}"].method == "real"
    assert {it.pool for it in listing.items} == {"ff"}
    assert not any(it.video_id == "real/519" for it in listing.items)  # a train video


def test_cdf_v2_shipped_list_inverts_labels(test_data: Path, tmp_path: Path) -> None:
    lines = (test_data / "index/celebdf_v2/List_of_testing_videos.txt").read_text().splitlines()
    (tmp_path / "List_of_testing_videos.txt").write_text("\n".join(lines) + "\n")
    for line in lines[:-5]:
        touch(tmp_path / line.split()[1])
    listing = resolve_suite("cdf_v2", tmp_path)
    assert len(listing.items) + len(listing.missing) == 518
    assert len(listing.missing) == 5
    listed = {line.split()[1]: int(line.split()[0]) for line in lines}
    for it in listing.items:
        assert it.label == 1 - listed[f"{it.video_id}.mp4"]  # label 1 = REAL in the list
    everything = listing.items + listing.missing
    assert Counter(it.label for it in everything) == {1: 340, 0: 178}
    assert {it.method for it in everything if it.label == 1} == {"Celeb-synthesis"}
    assert {it.path.parent.name for it in everything if it.label == 0} == {"Celeb-real", "YouTube-real"}


def test_cdf_v1_and_malformed_list(tmp_path: Path) -> None:
    base = tmp_path / "Celeb-DF-v1"
    touch(base / "Celeb-real/id0_0001.mp4")
    touch(base / "Celeb-synthesis/id0_id1_0001.mp4")
    (base / "List_of_testing_videos.txt").write_text("1 Celeb-real/id0_0001.mp4\n0 Celeb-synthesis/id0_id1_0001.mp4\n")
    listing = resolve_suite("cdf_v1", tmp_path)
    assert listing.root == base
    assert [(i.video_id, i.label, i.method) for i in listing.items] == [
        ("Celeb-real/id0_0001", 0, "real"), ("Celeb-synthesis/id0_id1_0001", 1, "Celeb-synthesis")]
    (base / "List_of_testing_videos.txt").write_text("real Celeb-real/id0_0001.mp4\n")
    with pytest.raises(SourceError, match="line 1"):
        celebdf(base, "cdf_v1")


def test_missing_index_is_one_line_with_origin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FIAGEN_DATA", raising=False)
    for suite, index, origin in (("cdf_v2", "List_of_testing_videos.txt", "Celeb-DF"), ("dfdc", "labels.csv", "DFDC"),
                                 ("dfdcp", "dataset.json", "DFDC preview"), ("ff++", "original_sequences", "download"),
                                 ("df40", "fsgan", "DF40"), ("diff", "real/", "DiFF")):
        with pytest.raises(SourceError) as err:
            resolve_suite(suite, tmp_path)
        message = str(err.value)
        assert index in message and origin in message and "\n" not in message, message
    for suite in ("cdf_v2", "df40", "diff"):  # neither --root nor FIAGEN_DATA: the line says to set one
        with pytest.raises(SourceError, match="pass --root DIR .*or set FIAGEN_DATA"):
            resolve_suite(suite, None)
    monkeypatch.setenv("FIAGEN_DATA", str(tmp_path))
    with pytest.raises(SourceError, match=re.escape(f"{tmp_path / 'DF40'} (from $FIAGEN_DATA) holds none")):
        resolve_suite("df40", None)
    with pytest.raises(SourceError, match="unknown suite 'cdf'"):
        resolve_suite("cdf", tmp_path)


def test_dfd(tmp_path: Path) -> None:
    for name in ("01__exit_phone_room", "02__talking_against_wall"):
        touch(tmp_path / "original_sequences/actors/c23/videos" / f"{name}.mp4")
    for name in ("01_02__exit_phone_room__YVGY8LOK", "02_01__walking__KNOE2YOQ", "03_01__hugging__1ZHJK1TA"):
        touch(tmp_path / "manipulated_sequences/DeepFakeDetection/c23/videos" / f"{name}.mp4")
    listing = dfd(tmp_path)
    assert listing.counts() == {"real": 2, "DeepFakeDetection": 3}
    assert {it.label for it in listing.items if it.method == "DeepFakeDetection"} == {1}


def test_dfdc_labels_csv(test_data: Path, tmp_path: Path) -> None:
    meta = json.loads((test_data / "index/dfdc/train_sample_videos_metadata_excerpt.json").read_text())
    rows = [f"{name},{1 if rec['label'] == 'FAKE' else 0}" for name, rec in meta.items()]
    (tmp_path / "labels.csv").write_text("filename,label\n" + "\n".join(rows) + "\n")
    names = list(meta)
    for name in names[:-1]:
        touch(tmp_path / "videos" / name)
    listing = dfdc(tmp_path)
    assert [m.video_id for m in listing.missing] == [Path(names[-1]).stem]
    assert {it.video_id: it.label for it in listing.items} == {
        Path(n).stem: int(meta[n]["label"] == "FAKE") for n in names[:-1]}
    assert Counter(it.method for it in listing.items + listing.missing) == {"DFDC": 4, "real": 1}


def test_dfdcp_test_set_both_layouts(tmp_path: Path) -> None:
    index = {
        "method_A/1/1_A/a.mp4": {"label": "fake", "set": "test"},
        "method_B/2/2_B/b.mp4": {"label": "fake", "set": "test"},
        "original_videos/1/o.mp4": {"label": "real", "set": "test"},
        "original_videos/3/t.mp4": {"label": "real", "set": "train"},
        "method_A/9/9_A/gone.mp4": {"label": "fake", "set": "test"},
    }
    (tmp_path / "dataset.json").write_text(json.dumps(index))
    touch(tmp_path / "method_A/1/1_A/a.mp4")
    touch(tmp_path / "method_B/videos/2/2_B/b.mp4")  # a re-laid-out copy: <first>/videos/<rest>
    touch(tmp_path / "original_videos/1/o.mp4")
    touch(tmp_path / "original_videos/3/t.mp4")
    listing = dfdcp(tmp_path)
    assert {(it.video_id, it.label, it.method) for it in listing.items} == {
        ("method_A/1/1_A/a", 1, "method_A"), ("method_B/2/2_B/b", 1, "method_B"), ("original_videos/1/o", 0, "real")}
    assert [m.video_id for m in listing.missing] == ["method_A/9/9_A/gone"]


def test_df40_methods_domains_and_reals(tmp_path: Path) -> None:
    data = tmp_path / "datasets"
    ffpp_tree(data / "FaceForensics++")
    gone = sorted((data / "FaceForensics++/original_sequences/youtube/c23/videos").iterdir())[0]
    gone.unlink()
    cdf = data / "Celeb-DF-v2"
    cdf.mkdir(parents=True)
    (cdf / "List_of_testing_videos.txt").write_text("1 Celeb-real/id0_0000.mp4\n1 YouTube-real/00001.mp4\n"
                                                   "0 Celeb-synthesis/id0_id1_0000.mp4\n")
    for rel in ("Celeb-real/id0_0000.mp4", "YouTube-real/00001.mp4"):
        touch(cdf / rel)
    d40 = data / "DF40"
    for vid in ("000_003", "003_000"):  # FS method: one folder of frames per video
        for k in range(3):
            touch(d40 / "simswap/ff/frames" / vid / f"{k:03d}.png")
    touch(d40 / "simswap/cdf/frames/id0_id1_0000/000.png")
    for k in range(4):  # EFS method with its own reals: every image is a unit
        touch(d40 / "MidJourney/fake" / f"{k}.jpg")
    touch(d40 / "MidJourney/real/r0.png")
    touch(d40 / "heygen/fake/clip1/000.png")
    touch(d40 / "heygen/real/clip9/000.png")
    touch(d40 / "StyleGAN2/ff/a.png")
    listing = df40(d40)
    counts = listing.counts()
    assert counts == {"simswap_ff": 2, "simswap_cdf": 1, "MidJourney": 4, "heygen": 1, "StyleGAN2_ff": 1,
                      "real": 139 + 2 + 1 + 1}
    by_id = {it.video_id: it for it in listing.items}
    unit = by_id["simswap/ff/frames/000_003"]
    assert unit.path.is_dir() and unit.family == "FS" and unit.pool == "ff" and unit.label == 1
    assert by_id["MidJourney/fake/0"].family == "EFS" and by_id["MidJourney/real/r0"].pool == "MidJourney"
    assert by_id["heygen/real/clip9"].label == 0 and by_id["heygen/real/clip9"].pool == "heygen"
    assert Counter(it.pool for it in listing.items if it.label == 0) == {"ff": 139, "cdf": 2, "MidJourney": 1,
                                                                       "heygen": 1}
    assert [m.video_id for m in listing.missing] == [f"real/{gone.stem}"]
    assert listing.level == "frame"
    total = sum(len(m) for m in DF40_FAMILIES.values())
    assert any(f"{total - 4} method folders not found" in n for n in listing.notes)
    # Without FF++ next to DF40 the FF++-domain fakes have no reals: said in a note.
    alone = tmp_path / "alone" / "DF40"
    touch(alone / "fsgan/ff/v/000.png")
    notes = df40(alone).notes
    assert any("FF++ c23 test reals" in n for n in notes)


def test_diff_subsets(tmp_path: Path) -> None:
    base = tmp_path / "DiFF" / "test"
    for rel in ("real/0001.png", "real/0002.png", "T2I/Midjourney/a.png", "T2I/SDXL/b.png", "T2I/SDXL/c.png",
                "I2I/LoRA/d.png", "FS/DiffFace/e.jpg", "FE/Imagic/f.png", "FE/notes.txt"):
        touch(base / rel)
    listing = diff(tmp_path / "DiFF")
    assert listing.root == base
    assert listing.counts() == {"real": 2, "T2I/Midjourney": 1, "T2I/SDXL": 2, "I2I/LoRA": 1, "FS/DiffFace": 1,
                                "FE/Imagic": 1}
    assert {it.family for it in listing.items if it.label == 1} == {"T2I", "I2I", "FS", "FE"}


def test_deepfakebench_json_foreign_paths(tmp_path: Path) -> None:
    rgb = tmp_path / "rgb"
    frames = {}
    for vid, kind in (("001", "original_sequences/youtube"), ("001_870", "manipulated_sequences/Deepfakes")):
        paths = []
        for k in (0, 14, 28):
            rel = f"FaceForensics++/{kind}/c23/frames/{vid}/{k:03d}.png"
            touch(rgb / rel)
            paths.append("E:\\datasets\\rgb\\" + rel.replace("/", "\\"))  # written on another machine
        frames[vid] = paths
    frames["002"] = ["E:\\datasets\\rgb\\FaceForensics++\\original_sequences\\youtube\\c23\\frames\\002\\000.png"]
    index = {"FaceForensics++": {
        "FF-real": {"test": {"c23": {"001": {"label": "FF-real", "frames": frames["001"]},
                                     "002": {"label": "FF-real", "frames": frames["002"]}}},
                    "train": {"c23": {"999": {"label": "FF-real", "frames": []}}}},
        "FF-DF": {"test": {"c23": {"001_870": {"label": "FF-DF", "frames": frames["001_870"]}}}}}}
    file = tmp_path / "FaceForensics++.json"
    file.write_text(json.dumps(index))
    listing = resolve_suite(f"deepfakebench:{file}", rgb)
    assert [(it.video_id, it.label, it.method, len(it.frames)) for it in listing.items] == [
        ("FF-real/001", 0, "real", 3), ("FF-DF/001_870", 1, "FF-DF", 3)]
    assert all(Path(f).exists() for it in listing.items for f in it.frames)
    assert [m.video_id for m in listing.missing] == ["FF-real/002"]
    assert suite_dirname(f"deepfakebench:{file}") == "deepfakebench-FaceForensics++"


def test_folder_dirs_and_csv(tmp_path: Path) -> None:
    for rel in ("real/a.mp4", "real/b.png", "fake/x.mp4", "fake/Deepfakes/y.mp4", "fake/Deepfakes/z.jpg",
                "fake/readme.txt"):
        touch(tmp_path / "set" / rel)
    listing = folder(str(tmp_path / "set"))
    assert {(it.video_id, it.label, it.method) for it in listing.items} == {
        ("real/a", 0, "real"), ("real/b", 0, "real"), ("fake/x", 1, "fake"), ("fake/Deepfakes/y", 1, "Deepfakes"),
        ("fake/Deepfakes/z", 1, "Deepfakes")}
    csv = tmp_path / "set" / "list.csv"
    csv.write_text("path,label,method\nreal/a.mp4,0\nfake/x.mp4,fake,FaceSwap\nfake/gone.mp4,1,FaceSwap\n"
                   f"{tmp_path / 'set/real/b.png'},real\n")
    listing = resolve_suite(f"folder:{csv}")
    assert [(it.path.name, it.label, it.method) for it in listing.items] == [
        ("a.mp4", 0, "real"), ("x.mp4", 1, "FaceSwap"), ("b.png", 0, "real")]
    assert [m.path.name for m in listing.missing] == ["gone.mp4"]
    csv.write_text("real/a.mp4,maybe\n")
    with pytest.raises(SourceError, match="row 1"):
        folder(str(csv))
    with pytest.raises(SourceError, match="real/ and fake/"):
        folder(str(tmp_path))


def test_parse_suites() -> None:
    assert parse_suites(["df40,cdf_v2", "df40"]) == ["df40", "cdf_v2"]
    assert parse_suites(["all"])[:3] == ["ff++", "cdf_v1", "cdf_v2"] and "diff" in parse_suites(["all"])
    assert parse_suites(["folder:/a,b"]) == ["folder:/a,b"]  # a path is never split
    with pytest.raises(SourceError):
        parse_suites([" , "])


def test_files_a_suite_does_not_list_are_reported(tmp_path: Path) -> None:
    """Media on disk under a suite's folders that its index or layout does not list are in `unlisted`."""
    ffpp_tree(tmp_path / "ffpp")
    originals = tmp_path / "ffpp/original_sequences/youtube/c23/videos"
    for name in ("519.mp4", "my_clip.avi"):  # a train id and a file that is no FF++ id: not in the test split
        touch(originals / name)
    touch(originals / "notes.txt")  # not media
    touch(tmp_path / "ffpp/manipulated_sequences/Deepfakes/c23/videos/519_998.mp4")
    listing = ffpp(tmp_path / "ffpp")
    assert len(listing.items) == 840 and not listing.missing
    assert [p.relative_to(listing.root).as_posix() for p in listing.unlisted] == [
        "manipulated_sequences/Deepfakes/c23/videos/519_998.mp4", "original_sequences/youtube/c23/videos/519.mp4",
        "original_sequences/youtube/c23/videos/my_clip.avi"]

    for rel in ("real/a.png", "fake/Deepfakes/b.mp4", "extra/c.mp4"):
        touch(tmp_path / "set" / rel)
    unlisted = folder(str(tmp_path / "set")).unlisted
    assert [p.relative_to(tmp_path / "set").as_posix() for p in unlisted] == ["extra/c.mp4"]
    touch(tmp_path / "set/real/z.png")  # a CSV's layout: the folders of its files (not below them)
    (tmp_path / "set/list.csv").write_text("real/a.png,0\nfake/Deepfakes/b.mp4,1\n")
    unlisted = folder(str(tmp_path / "set/list.csv")).unlisted
    assert [p.relative_to(tmp_path / "set").as_posix() for p in unlisted] == ["real/z.png"]

    d40 = tmp_path / "DF40"
    for k in range(3):  # the frames of a listed frame folder are covered by their unit
        touch(d40 / "simswap/ff/frames/000_003" / f"{k:03d}.png")
    touch(d40 / "simswap/stray.png")  # beside the domain folders
    touch(d40 / "my_method/ff/x.png")  # a method DF40 does not have
    listing = df40(d40)
    assert [p.relative_to(d40).as_posix() for p in listing.unlisted] == ["my_method/ff/x.png", "simswap/stray.png"]
    assert listing.face_crops and not ffpp(tmp_path / "ffpp").face_crops

