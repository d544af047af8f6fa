"""Shared fixtures: the real media (FIAGEN_TEST_DATA), one local Ray per session, precomputed shards."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REAL_VIDEOS = ("liveportrait_d10", "liveportrait_d11", "liveportrait_d12", "liveportrait_d18",
               "liveportrait_d19", "liveportrait_d20", "liveportrait_d3")
# FF++ ids the real clips stand in for: four train ids (with 519, a real FF++ train video), two val, two test.
FFPP_LAYOUT = {"001": "liveportrait_d10", "002": "liveportrait_d11", "005": "liveportrait_d3",
               "004": "liveportrait_d12", "023": "liveportrait_d18",
               "000": "liveportrait_d19", "003": "liveportrait_d20"}


@pytest.fixture(scope="session")
def test_data() -> Path:
    """The shared real media; tests that need it skip when FIAGEN_TEST_DATA is not set."""
    root = os.environ.get("FIAGEN_TEST_DATA")
    if not root or not Path(root, "real_videos").is_dir():
        pytest.skip("FIAGEN_TEST_DATA is not set to the shared real media")
    return Path(root)


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray for the whole session (starting Ray costs seconds)."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
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
    from fiagen.pipeline.precompute import PrecomputeConfig, precompute

    out = tmp_path_factory.mktemp("shards_small")
    precompute(PrecomputeConfig(src="ff++_c23", root=str(ffpp_root), out=str(out), frames=8, shard_size=16,
                                quiet=True))
    return out
