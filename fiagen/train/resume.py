"""What a resumed training must keep, and the learning-rate schedule it continues: a run resumed from last.pt
draws the same batches and follows the same schedule as one that was never stopped."""

from __future__ import annotations

from typing import Any

from fiagen.train.config import TrainConfig
from fiagen.train.context import TrainingError

RESUME_KEYS = ("backbone", "size", "batch_size", "seed", "ablation", "affine", "generate", "lambdas", "affs",
               "fpn_channels")


def setting_changes(key: str, old: Any, new: Any) -> list[str]:
    """`key old -> new` for a changed setting; for a mapping (`generate`), one item per changed key in it."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [c for k in {**old, **new} for c in setting_changes(f"{key}.{k}", old.get(k), new.get(k))]
    return [f"{key} {old!r} -> {new!r}"] if old != new else []


def check_resume(cfg: TrainConfig, saved: dict[str, Any]) -> None:
    """A resumed run must keep the settings that define its model and its sequence of batches."""
    now = cfg.to_dict()
    changed = [c for k in RESUME_KEYS if k in saved for c in setting_changes(k, saved[k], now[k])]
    if changed:
        raise TrainingError(f"--resume with other settings than {cfg.run}/last.pt: {', '.join(changed)}")


def lr_factor(step: int, total: int, decay_from: float) -> float:
    """Constant, then linear decay to 0 over the last (1 - decay_from) of the steps."""
    start = int(total * decay_from)
    if step < start or total <= start:
        return 1.0
    return max(0.0, (total - step) / (total - start))
