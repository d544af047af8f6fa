"""FaceForensics++ c23 (the official test pairs) and DeepFakeDetection, which ships in the same download."""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path

from fiagen.manifests.sources import FFPP_NAMES, FFPP_VIDEO_DIR
from fiagen.manifests.suites.listing import REAL, EvalItem, SuiteListing, split_found, unlisted_media
from fiagen.manifests.suites.locate import ORIGIN, locate

FFPP_FAKE_METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "FaceShifter")
DFD_REAL_DIR = "original_sequences/actors/c23/videos"
DFD_FAKE_DIR = "manipulated_sequences/DeepFakeDetection/c23/videos"


def ffpp_test_pairs() -> list[tuple[str, str]]:
    """The official FF++ test pairs [a, b]; the fakes are a_b and b_a."""
    text = resources.files("fiagen.manifests").joinpath("splits/ffpp_test.json").read_text()
    return [(a, b) for a, b in json.loads(text)]


def ffpp_real(base: Path, vid: str, pool: str = "ff") -> EvalItem:
    """An FF++ c23 original: the video, or DeepfakeBench's extracted frames folder when only that exists."""
    video = base / FFPP_VIDEO_DIR / f"{vid}.mp4"
    frames = base / "original_sequences/youtube/c23/frames" / vid
    path = frames if not video.exists() and frames.is_dir() else video
    return EvalItem(f"real/{vid}", path, 0, REAL, pool)


def ffpp(root: str | os.PathLike | None) -> SuiteListing:
    """FF++ c23 test split: 140 originals and 140 fakes for each of the five manipulation methods."""
    base = locate(root, FFPP_NAMES, "original_sequences", "ff++", ORIGIN["ff++"])
    pairs = ffpp_test_pairs()
    found = [ffpp_real(base, vid) for vid in sorted({v for p in pairs for v in p})]
    for method in FFPP_FAKE_METHODS:
        for a, b in pairs:
            for name in (f"{a}_{b}", f"{b}_{a}"):
                path = base / "manipulated_sequences" / method / "c23" / "videos" / f"{name}.mp4"
                found.append(EvalItem(f"{method}/{name}", path, 1, method, "ff"))
    items, missing = split_found(found)
    folders = [base / FFPP_VIDEO_DIR] + [base / "manipulated_sequences" / m / "c23/videos" for m in FFPP_FAKE_METHODS]
    return SuiteListing("ff++", base, items, missing, unlisted=unlisted_media(folders, items, missing))


def dfd(root: str | os.PathLike | None) -> SuiteListing:
    """DeepFakeDetection (Google/Jigsaw) c23: actors' originals vs DeepFakeDetection fakes, all videos."""
    base = locate(root, FFPP_NAMES + ("DFD", "DeepFakeDetection"), DFD_REAL_DIR, "dfd", ORIGIN["dfd"])
    items = [EvalItem(f"real/{p.stem}", p, 0, REAL, "dfd") for p in sorted((base / DFD_REAL_DIR).glob("*.mp4"))]
    fake_dir = base / DFD_FAKE_DIR
    notes = [] if fake_dir.is_dir() else [f"dfd: {fake_dir} does not exist, so the suite has no fakes"]
    items += [EvalItem(f"DeepFakeDetection/{p.stem}", p, 1, "DeepFakeDetection", "dfd")
              for p in sorted(fake_dir.glob("*.mp4"))]
    return SuiteListing("dfd", base, items, [], notes, unlisted=unlisted_media([base / DFD_REAL_DIR, fake_dir], items))
