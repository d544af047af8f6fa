"""Whether `fiagen run` trains a run folder, resumes it, or reuses it as it is: by the key of what decides the
run, kept beside it as RUN/run_key.json, never by the folder's name alone.

The key is every train setting that changes what a run learns (all but where and how it runs: the folder,
the shards' path, the device, loader workers, save_every, quiet, the cluster address) and the shards'
content: the digest of each shard's sha256 as the manifest lists them, so a precompute with other settings,
or a shard rebuilt with other bytes, is a change too. A folder whose last.pt was made under another key is
refused with one line naming what changed, and never trained further on the settings it was not made with:
- `epochs` alone raised on a run stopped before its learning rate began to decay resumes (the schedule of the
  steps it took is the same at either length, so it is exactly the longer run);
- `epochs` changed on a finished run, or on one whose learning rate had begun to decay, is refused: the
  schedule of the steps already taken would not be the new length's (a finished run's decayed to 0);
- any other change is refused, as is a last.pt without a run_key.json (a `fiagen train` run, or one trained
  by fiagen before the key existed): what it was trained with is unknown.
The way on is always the same: move the folder away (it is then trained again) or give the train section
another `run`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from fiagen.core.files import write_text
from fiagen.core.settings import plain
from fiagen.workflow.pipeline_file import PipelineError

KEY_NAME = "run_key.json"
# Train settings that say where and how a run goes, not what it learns: left out of its key.
NOT_DECIDING = ("run", "shards", "resume", "quiet", "address", "device", "loader_workers", "save_every",
                "gpus_per_worker")
TRAIN, RESUME, COMPLETE = "train", "resume", "complete"


class StaleRun(PipelineError):
    """A run folder trained with other settings or data than the pipeline asks for."""


def shards_digest(shards: str | Path) -> str:
    """sha256 over every shard's path and sha256 in the precompute output's manifest (its content, not its
    folder's name or the parquet file's bytes)."""
    from fiagen.manifests.manifest import read_manifest

    manifest = read_manifest(Path(shards))
    pairs = sorted(set(zip(manifest["shard"].astype(str), manifest["shard_sha256"].astype(str), strict=True)))
    return hashlib.sha256("".join(f"{shard} {sha}\n" for shard, sha in pairs).encode()).hexdigest()


def run_key(cfg: Any) -> dict[str, Any]:
    """What decides the run of TrainConfig `cfg`: its deciding settings and its shards' digest."""
    settings = {k: v for k, v in plain(cfg).items() if k not in NOT_DECIDING}
    return {"settings": settings, "shards": shards_digest(cfg.shards)}


def _digest(key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def write_key(cfg: Any) -> None:
    """Record the key of the run `cfg` is about to train (or resume) in its folder."""
    key = run_key(cfg)
    write_text(Path(cfg.run) / KEY_NAME, json.dumps({"digest": _digest(key), **key}, indent=2, sort_keys=True) + "\n")


def _changed(saved: dict[str, Any], cfg: Any, key: dict[str, Any]) -> list[str]:
    """`key old -> new` for each deciding setting that changed (a setting newer than the record counts only when
    it is not at its default), and the shards' content when it did."""
    from fiagen.train.resume import setting_changes

    if saved.get("digest") == _digest(key):
        return []
    old, new = saved.get("settings", {}), key["settings"]
    defaults = plain(type(cfg)())
    changed = [c for k in new if k in old or new[k] != defaults.get(k) for c in setting_changes(k, old.get(k), new[k])]
    return changed + (["the shards' content (another precompute output)"] if saved.get("shards") != key["shards"]
                      else [])


def _undecayed(last: Path) -> bool:
    """Whether every step of last.pt ran at the full learning rate (its schedule had not begun to decay)."""
    from fiagen.train.checkpoint import read_checkpoint

    scheduler = (read_checkpoint(last)["training"] or {}).get("scheduler", {})
    return bool(scheduler) and scheduler.get("_last_lr") == scheduler.get("base_lrs")


def decide(cfg: Any, where: str = "train") -> str:
    """TRAIN (no last.pt), RESUME (last.pt made under the same key, fewer epochs; or only `epochs` raised
    before the decay began) or COMPLETE (same key, every epoch); StaleRun with one line otherwise."""
    from fiagen.train.checkpoint import read_checkpoint

    folder = Path(cfg.run)
    last = folder / "last.pt"
    if not last.is_file():
        return TRAIN
    way_on = f"move {folder} away to train it again, or give the train section another `run`"
    try:
        saved = json.loads((folder / KEY_NAME).read_text())
    except (OSError, ValueError):
        raise StaleRun(f"{where}: {folder} holds a run (last.pt) without a readable {KEY_NAME}, so what it was "
                       f"trained with is unknown (a `fiagen train` run, or one of an older fiagen); {way_on}") from None
    done = read_checkpoint(last)["info"]["epoch"]
    changed = _changed(saved, cfg, run_key(cfg))
    old = saved["settings"].get("epochs")
    if len(changed) == 1 and old != cfg.epochs:  # epochs alone
        if done >= old:
            raise StaleRun(f"{where}: {folder} is a finished {old}-epoch run, not a {cfg.epochs}-epoch one, and "
                           f"training it on would not make one (its learning-rate schedule, which decayed to its end, "
                           f"would be recomputed); {way_on}")
        if cfg.epochs < old or not _undecayed(last):
            raise StaleRun(f"{where}: {folder} is an unfinished {old}-epoch run; resumed for {cfg.epochs} epochs it "
                           f"would be a {cfg.epochs}-epoch run only while epochs go up and its learning rate has not "
                           f"begun to decay, and it has {'begun' if cfg.epochs > old else 'not gone up'}; {way_on}")
        return RESUME
    if changed:
        raise StaleRun(f"{where}: {folder} was trained with other settings ({', '.join(changed)}); {way_on}")
    return COMPLETE if done >= cfg.epochs else RESUME
