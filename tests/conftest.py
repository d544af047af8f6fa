"""Shared fixtures: the real media (FIAGEN_TEST_DATA), one local Ray per session, precomputed shards."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import numpy as np

REAL_VIDEOS = ("liveportrait_d10", "liveportrait_d11", "liveportrait_d12", "liveportrait_d18",
               "liveportrait_d19", "liveportrait_d20", "liveportrait_d3")
# FF++ ids the real clips stand in for: four train ids (with 519, a real FF++ train video), two val, two test.
FFPP_LAYOUT = {"001": "liveportrait_d10", "002": "liveportrait_d11", "005": "liveportrait_d3",
               "004": "liveportrait_d12", "023": "liveportrait_d18",
               "000": "liveportrait_d19", "003": "liveportrait_d20"}
FIRST = ("test_learning.py", "test_preemption_group.py")  # the longest modules (about 6 and 3 min of one core)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest modules first: xdist (--dist loadfile) hands modules to the workers in this order, so the
    long ones start at once and the short ones fill the workers' time around them."""
    items.sort(key=lambda item: FIRST.index(item.path.name) if item.path.name in FIRST else len(FIRST))


@pytest.fixture(scope="session")
def test_data() -> Path:
    """The shared real media; tests that need it skip when FIAGEN_TEST_DATA is not set."""
    root = os.environ.get("FIAGEN_TEST_DATA")
    if not root or not Path(root, "real_videos").is_dir():
        pytest.skip("FIAGEN_TEST_DATA is not set to the shared real media")
    return Path(root)


@contextmanager
def _logger_restored() -> Iterator[None]:
    import logging

    logger = logging.getLogger("fiagen")
    state = (list(logger.handlers), logger.propagate, logger.level)
    yield
    logger.handlers[:], logger.propagate = state[0], state[1]
    logger.setLevel(state[2])


@pytest.fixture(autouse=True)
def _fiagen_log_restored() -> Iterator[None]:
    """The "fiagen" logger as it was before the test: a command run in the test process installs the CLI's
    handler (fiagen.core.log.setup); later tests start without it."""
    with _logger_restored():
        yield


@pytest.fixture(autouse=True, scope="module")
def _fiagen_log_restored_per_module() -> Iterator[None]:
    """The same around a whole module: a module-scoped fixture that runs a command in the test process
    (set up before any test's own restore) leaves no handler to the modules after it."""
    with _logger_restored():
        yield


@pytest.fixture
def fiagen_main(capsys: pytest.CaptureFixture,
                monkeypatch: pytest.MonkeyPatch) -> Callable[[list[str]], tuple[int, str, str]]:
    """Run `fiagen ARGV` through the console entry point in this process: (exit code, stdout, stderr)."""
    from fiagen.cli.main import main

    def run(argv: list[str]) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["fiagen", *argv])
        with pytest.raises(SystemExit) as code:
            main()
        out = capsys.readouterr()
        return code.value.code, out.out, out.err

    return run


@pytest.fixture
def fiagen_log() -> None:
    """The command line's message handler for a test calling library code: `fiagen: warning: ...` lines on
    stderr (restored after the test)."""
    from fiagen.core import log

    log.setup()


@contextmanager
def _one_torch_thread() -> Iterator[None]:
    """Torch on one thread inside the block (as in a precompute actor; CPU kernels may round differently
    with other thread counts), then back to what it was."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def one_torch_thread_block() -> Callable[[], AbstractContextManager[None]]:
    """The one-thread block as a context manager factory, for fixtures of any scope and parts of a test."""
    return _one_torch_thread


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Torch on one thread for the whole test."""
    with _one_torch_thread():
        yield


@pytest.fixture(scope="session")
def untrained_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny detector's checkpoint (resnet10t at 64 px, seeded; its new head at 0: every score 0.5), for
    tests that check which inputs are scored or refused, never a score."""
    import torch

    from fiagen.train.checkpoint import save_checkpoint
    from fiagen.train.model import build_detector

    torch.manual_seed(0)
    return save_checkpoint(tmp_path_factory.mktemp("run") / "best.pt", build_detector("resnet10t", 64), epoch=1)


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray for the whole session (starting Ray costs seconds)."""
    import ray

    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def ffpp_root(test_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A FaceForensics++ tree of symlinks: 519.mp4 plus the real clips under official split ids."""
    root = tmp_path_factory.mktemp("ffpp")
    videos = root / "original_sequences" / "youtube" / "c23" / "videos"
    videos.mkdir(parents=True)
    (videos / "519.mp4").symlink_to(test_data / "ffpp_train_real" / "519.mp4")
    for vid, clip in FFPP_LAYOUT.items():
        (videos / f"{vid}.mp4").symlink_to(test_data / "real_videos" / f"{clip}.mp4")
    return root


@pytest.fixture(scope="session")
def shards_small(ffpp_root: Path, ray_local, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Precompute output (8 frames per video, no reconstructors) over the FF++ tree, made once."""
    from fiagen.precompute.entry import PrecomputeConfig, precompute

    out = tmp_path_factory.mktemp("shards_small")
    precompute(PrecomputeConfig(src="ff++_c23", root=str(ffpp_root), out=str(out), frames=8, shard_size=16,
                                ae="none", sr="none", quiet=True))
    return out


@pytest.fixture(scope="session")
def astronaut_face():
    """scikit-image's astronaut at 256 px, its face detection and 478-point mesh (mediapipe, offline)."""
    import cv2
    from skimage import data

    from fiagen.precompute.faces import FaceLandmarker

    image = cv2.resize(data.astronaut(), (256, 256), interpolation=cv2.INTER_AREA)
    with FaceLandmarker() as marker:
        det = max(marker.detect(image), key=lambda d: d.area)
        mesh = marker.mesh(image, det.box)
    assert mesh is not None
    return image, det, mesh


@pytest.fixture(scope="session")
def hard_faces(test_data: Path) -> dict[str, np.ndarray]:
    """Faces that mediapipe's full-range detector alone misses (what precompute and evaluate ran before
    issue 13), made from frame 0 of a shared clip: its face box + 5% per side, as a frame-filling 512 px
    close-up (`closeup512`) and as a 64 px tight crop (`tight64`), RGB uint8."""
    import numpy as np

    from fiagen.generate.crop import resize_to
    from fiagen.precompute.faces import FaceLandmarker, expand_box
    from fiagen.precompute.video import read_frames

    _, frame = next(read_frames(test_data / "real_videos" / "liveportrait_d12.mp4", np.array([0])))
    h, w = frame.shape[:2]
    with FaceLandmarker() as marker:
        (face,) = marker.detect(frame)
        x0, y0, x1, y1 = expand_box(face.box, 0.05, 0.05, 0.05, 0.05, w, h)
        images = {"closeup512": resize_to(frame[y0:y1, x0:x1], 512), "tight64": resize_to(frame[y0:y1, x0:x1], 64)}
        for image in images.values():
            assert marker.detect_pass(image, "full_range") == []
    return images


@pytest.fixture(scope="session")
def fia_shards(astronaut_face, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small precompute output written directly: train (2 videos, 10 frames) and val (3 frames) shards
    of shifted astronaut faces, each with constant AE (200) and SR (50) images; train row 1 has no AE."""
    import cv2
    import numpy as np

    from fiagen.precompute.extract import face_crop
    from fiagen.precompute.faces import Detection
    from fiagen.precompute.index import write_manifest
    from fiagen.precompute.shard_writer import write_shard
    from fiagen.precompute.shards import ShardContent

    image, det, mesh = astronaut_face
    out = tmp_path_factory.mktemp("fia_shards")

    def record(video: str, k: int):
        dx, dy = (k % 3 - 1) * 6, (k % 2) * 5 - 2
        moved = cv2.warpAffine(image, np.float32([[1, 0, dx], [0, 1, dy]]), (256, 256), borderMode=cv2.BORDER_REFLECT)
        x0, y0, x1, y1 = det.box
        rec = face_crop(moved, Detection((x0 + dx, y0 + dy, x1 + dx, y1 + dy), det.score),
                        mesh + np.float32([dx, dy, 0]), k, 1, video)
        rec.ae = np.full_like(rec.image, 200)
        rec.sr = np.full_like(rec.image, 50)
        return rec

    shards = []
    for split, videos in (("train", {"astro_a": 6, "astro_b": 4}), ("val", {"astro_v": 3})):
        records = [record(v, k) for v, n in videos.items() for k in range(n)]
        if split == "train":
            records[1].ae = None
        rel = f"shards/{split}/00000.h5"
        sha = write_shard(out / rel, ShardContent(split=split, shard_id="00000", videos=list(videos), records=records,
                                                  ae_id="test-ae", sr_id="test-sr"))
        shards.append((rel, sha))
    write_manifest(out, shards)
    return out


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A resnet10t detector at 64 px with a non-zero head, saved as a checkpoint trained on ff++_c23
    (epoch 3, val AUC 0.91), made once (a module may define its own)."""
    import torch

    from fiagen.train.checkpoint import save_checkpoint
    from fiagen.train.model import build_detector

    torch.manual_seed(0)
    det = build_detector("resnet10t", 64)
    torch.nn.init.normal_(det.net.get_classifier().weight, std=0.1)  # the new head starts at 0: give it weights
    path = tmp_path_factory.mktemp("run") / "best.pt"
    return save_checkpoint(path, det, epoch=3, val_auc=0.91, train_data="ff++_c23")
