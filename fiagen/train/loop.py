"""The training loop (docs/method.md §5): AFFS init, SAM steps on (real, fake, mask) batches, per-epoch
validation, last/best checkpoints, exact resume. The stage's entry point is `train/entry.py`.

Randomness: pseudo-fakes come from (seed, epoch, index) in the dataset, the batch order from
(seed, epoch) in the sampler, model init from the seed, and torch's global generator (dropout, drop
path) is reseeded from (seed, step, rank) before every step, so a resumed run repeats the
uninterrupted one exactly without storing generator states.

SIGTERM/SIGINT (fiagen.core.stop): the run ends the step it is in, saves last.pt at that step (the epoch's
loss sums too, so a resume logs the same averages), writes RUN/run.json `stopped (signal)` and stops; at
the last step of an epoch it first validates and saves as at every epoch end. A run that ends writes
RUN/run.json `complete`.
"""

from __future__ import annotations

import json
import signal
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from pytorch_optimizer import SAM
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset

from fiagen.core import stop
from fiagen.core.files import DiskFullError, write_text
from fiagen.core.progress import stage_progress
from fiagen.generate.loader import EpochSampler
from fiagen.train.breakdown import dataset_groups
from fiagen.train.card import card_threshold, choose_threshold, data_facts
from fiagen.train.checkpoint import full_disk_advice, read_resume_checkpoint, save_checkpoint, train_net_from
from fiagen.train.config import CONFIG_NAME, TrainConfig, check_run_folder, write_config
from fiagen.train.context import Context, TrainingError, stop_signal
from fiagen.train.data import make_train_loader, run_datasets, train_data_text, val_loader
from fiagen.train.model import TrainNet
from fiagen.train.resume import check_resume, lr_factor
from fiagen.train.runlog import RunLog
from fiagen.train.start import new_train_net
from fiagen.train.step import sam_step
from fiagen.train.validate import validation


@dataclass
class TrainResult:
    """What a run wrote: the run folder, its checkpoints, the best val AUC and the counters."""

    run: Path
    last: Path
    best: Path | None
    best_auc: float | None
    epochs: int
    steps: int
    nonfinite: int


@dataclass
class RunState:
    """The counters a run carries across steps, epochs and a resume: the step, the best val AUC, the
    non-finite steps skipped, and the loss sums of the epoch so far over its `counted` finite steps."""

    step: int = 0
    best_auc: float | None = None
    nonfinite: int = 0
    sums: dict[str, float] = field(default_factory=dict)
    counted: int = 0


@dataclass
class _Run:
    """What one training run works with, once set up (`_setup`)."""

    cfg: TrainConfig
    ctx: Context
    folder: Path
    net: TrainNet
    model: torch.nn.Module  # `net`, wrapped in DDP when there are several workers
    optimizer: SAM
    scheduler: Any
    steps_per_epoch: int
    state: RunState
    saved: dict[str, Any] | None  # the checkpoint resumed from
    affs: dict[str, Any] | None
    train_data: str
    log: RunLog | None
    facts: dict[str, Any]  # the training data, for the model card (fiagen.train.card)
    threshold: dict[str, Any] | None = None  # chosen on the latest validation's scores

    def checkpoint(self, path: Path, epoch: int, val_auc: float | None, training: bool) -> None:
        """Save the net (and, `training`, what a resume needs); a full disk is one line with advice."""
        s = self.state
        # epoch_sums/epoch_counted: the loss sums of the epoch so far, so that a run resumed inside an
        # epoch logs the same averages as the uninterrupted one
        state = {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(), "step": s.step,
                 "best_auc": s.best_auc, "nonfinite": s.nonfinite, "epoch_sums": dict(s.sums),
                 "epoch_counted": s.counted} if training else None
        try:
            save_checkpoint(path, self.net, epoch=epoch, step=s.step, val_auc=val_auc, train_data=self.train_data,
                            affs=self.affs, config=self.cfg.to_dict(), training=state, facts=self.facts,
                            threshold=self.threshold)
        except DiskFullError as err:
            raise err.noted(f"training stopped at step {s.step}; {full_disk_advice(self.folder)}") from None


def _prepare_run(cfg: TrainConfig, ctx: Context) -> Path:
    run = check_run_folder(cfg)
    if ctx.main:
        run.mkdir(parents=True, exist_ok=True)
        write_config(cfg, run / CONFIG_NAME)
    return run


def _setup(cfg: TrainConfig, ctx: Context, folder: Path, loader: DataLoader, sampler: EpochSampler,
           injected: Dataset | None) -> _Run:
    """The net (new, or from last.pt with --resume), its optimizer and schedule, the restored counters
    and the log of a run."""
    saved = read_resume_checkpoint(folder) if cfg.resume else None
    if saved is not None:
        check_resume(cfg, saved["config"] or {})
        net, affs = train_net_from(saved), saved["affs"]
    else:
        net, selection = new_train_net(cfg, loader, sampler, ctx, folder)
        affs = selection.to_dict() if selection else None
    net.to(ctx.device)
    if cfg.channels_last:
        net.to(memory_format=torch.channels_last)
    model: torch.nn.Module = net
    if ctx.world > 1:
        model = DistributedDataParallel(net, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
    optimizer = SAM(net.parameters(), torch.optim.SGD, rho=cfg.rho, lr=cfg.lr, momentum=cfg.momentum,
                    weight_decay=cfg.weight_decay)
    steps_per_epoch = len(sampler) // cfg.batch_size
    if steps_per_epoch == 0:
        raise TrainingError(f"each of the {ctx.world} workers gets {len(sampler)} training frames, fewer than "
                            f"one batch of {cfg.batch_size}")
    total = steps_per_epoch * cfg.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total, cfg.decay_from))
    state = RunState()
    if saved is not None:
        training = saved["training"]
        optimizer.load_state_dict(training["optimizer"])
        scheduler.load_state_dict(training["scheduler"])
        state = RunState(training["step"], training["best_auc"], training["nonfinite"])
    log = RunLog(folder, resume_step=state.step if saved is not None else None) if ctx.main else None
    return _Run(cfg, ctx, folder, net, model, optimizer, scheduler, steps_per_epoch, state, saved, affs,
                train_data_text(cfg, injected), log, {} if injected is not None else data_facts(cfg.shards),
                card_threshold(saved.get("card") or {}) if saved is not None else None)


def train_one_epoch(r: _Run, loader: DataLoader, sampler: EpochSampler, epoch: int,
                    advance: Callable[[str], None]) -> tuple[float, float]:
    """One pass over the training batches of `epoch` (from the resumed step when inside it): per batch
    torch's generator reseeded from (seed, step, rank), a SAM step, the schedule, the step's log row,
    `advance` (the progress line) and the --save-every checkpoint. Returns the seconds spent waiting
    for data and the epoch's seconds."""
    cfg, ctx, state = r.cfg, r.ctx, r.state
    pairs_per_step = cfg.batch_size * ctx.world
    sampler.set_epoch(epoch)
    sampler.skip = (state.step - epoch * r.steps_per_epoch) * cfg.batch_size
    state.sums = {"loss": 0.0, "bce": 0.0, "pcr": 0.0, "icr": 0.0}
    state.counted, wait_total, epoch_start = 0, 0.0, time.perf_counter()
    if sampler.skip:  # resumed inside this epoch: its averages count the steps before too
        state.sums, state.counted = dict(r.saved["training"]["epoch_sums"]), r.saved["training"]["epoch_counted"]
    r.model.train()
    tick = time.perf_counter()
    for batch in loader:
        wait = time.perf_counter() - tick
        torch.manual_seed(cfg.seed * 1_000_003 + state.step * 131 + ctx.rank)
        terms = sam_step(r.model, r.optimizer, batch, cfg, ctx)
        lr = r.optimizer.param_groups[0]["lr"]
        with warnings.catch_warnings():  # a skipped first step: the schedule still counts it
            warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step", UserWarning)
            r.scheduler.step()
        state.step += 1
        if terms is None:
            state.nonfinite += 1
        else:
            state.counted += 1
            for k in state.sums:
                state.sums[k] += terms[k]
        seconds = time.perf_counter() - tick
        wait_total += wait
        rate = pairs_per_step / seconds
        if r.log:
            nan = float("nan")
            r.log.step({"step": state.step, "epoch": epoch, "loss": terms["loss"] if terms else nan,
                        "bce": terms["bce"] if terms else nan, "pcr": terms["pcr"] if terms else nan,
                        "icr": terms["icr"] if terms else nan, "lr": lr, "pairs_per_s": rate,
                        "data_wait_s": wait, "skipped": int(terms is None)})
        if terms is None and state.nonfinite >= cfg.max_nonfinite:
            raise TrainingError(f"stopped at step {state.step}: {state.nonfinite} steps had a non-finite loss "
                                f"(max {cfg.max_nonfinite}); lower --lr or check the data")
        loss_txt = f"{terms['loss']:.4f}" if terms else "skipped"
        advance(f"e{epoch + 1}/{cfg.epochs} loss {loss_txt} {rate:.1f} pairs/s")
        at_epoch_end = state.step % r.steps_per_epoch == 0  # that checkpoint comes after validation
        saved = bool(cfg.save_every and state.step % cfg.save_every == 0 and not at_epoch_end)
        if saved and ctx.main:
            r.checkpoint(r.folder / "last.pt", epoch, None, training=True)
        if (signum := stop_signal(ctx)) is not None and not at_epoch_end:  # last.pt at this step, then stop
            if ctx.main and not saved:
                r.checkpoint(r.folder / "last.pt", epoch, None, training=True)
            _stopped(r, epoch, signum)
        tick = time.perf_counter()
    return wait_total, time.perf_counter() - epoch_start


RUN_RECORD = "run.json"


def _record(r: _Run, status: str, epoch: int, **extra: Any) -> None:
    """RUN/run.json: how the run ended (complete, or stopped by a signal), at which step and epoch."""
    if r.ctx.main:
        record = {"status": status, "step": r.state.step, "epoch": epoch,
                  "steps_total": r.steps_per_epoch * r.cfg.epochs, **extra}
        write_text(r.folder / RUN_RECORD, json.dumps(record, indent=2) + "\n")


def _stopped(r: _Run, epoch: int, signum: int) -> None:
    """After a signal, at a step boundary whose state RUN/last.pt holds: record it and raise Stopped."""
    _record(r, stop.STATUS, epoch, signal=signal.Signals(signum).name)
    raise stop.Stopped(signum, f"after step {r.state.step}", ("--resume",), "train")  # last.pt holds this step


def _end_epoch(r: _Run, epoch: int, loader: DataLoader, groups: list[str] | None, wait_total: float,
               seconds: float, done: int) -> None:
    """After epoch `epoch`'s `done` steps: validation when due (every --val-every epochs and the last),
    best.pt on a better val AUC, last.pt and the epoch's log row."""
    cfg, ctx, state = r.cfg, r.ctx, r.state
    val_auc = val_loss = None
    if (epoch + 1) % cfg.val_every == 0 or epoch + 1 == cfg.epochs:
        v = validation(r.net.detector, loader, cfg, ctx, groups)
        val_auc, val_loss, per_group = v.auc, v.loss, v.per_group
        r.threshold = choose_threshold(torch.sigmoid(v.logits.double()).numpy(), v.labels.numpy(), epoch + 1)
        if r.log and per_group is not None:
            r.log.breakdown({"epoch": epoch + 1, "step": state.step, **per_group})
        if ctx.main and (state.best_auc is None or val_auc > state.best_auc):
            state.best_auc = val_auc
            r.checkpoint(r.folder / "best.pt", epoch + 1, val_auc, training=False)
    if ctx.main:
        r.checkpoint(r.folder / "last.pt", epoch + 1, val_auc, training=True)
        r.log.epoch({"epoch": epoch + 1, "step": state.step, **{f"train_{k}": v / max(state.counted, 1)
                                                                for k, v in state.sums.items()},
                     "val_auc": val_auc, "val_loss": val_loss, "lr": r.optimizer.param_groups[0]["lr"],
                     "pairs_per_s": done * cfg.batch_size * ctx.world / seconds,
                     "data_wait_fraction": wait_total / seconds, "nonfinite_skipped": state.nonfinite,
                     "seconds": round(seconds, 3)})


def run_training(cfg: TrainConfig, ctx: Context, data: tuple[Dataset, Dataset] | None = None) -> TrainResult:
    """Train on this process as worker `ctx.rank` of `ctx.world` (torch.distributed set up when world > 1).

    `data`: (train, val) datasets of {"real", "fake", "mask"} items with `set_epoch`, in place of the
    FIA-USA datasets over `cfg.shards`.
    """
    check_run_folder(cfg)
    train_ds, val_ds = data if data is not None else run_datasets(cfg)  # bad shards: nothing written
    folder = _prepare_run(cfg, ctx)
    train_loader, sampler = make_train_loader(train_ds, cfg, ctx)
    val_batches = val_loader(val_ds, cfg, ctx)
    groups = dataset_groups(val_ds)
    r = _setup(cfg, ctx, folder, train_loader, sampler, data[0] if data is not None else None)
    pairs_per_step = cfg.batch_size * ctx.world
    try:
        with stop.safe_points(), stage_progress(cfg.quiet or not ctx.main, unit="pairs", rate_field="stats") as bar:
            task = bar.add_task("train", total=r.steps_per_epoch * cfg.epochs * pairs_per_step,
                                completed=r.state.step * pairs_per_step, stats="")
            for epoch in range(r.state.step // r.steps_per_epoch, cfg.epochs):
                def advance(stats: str) -> None:
                    bar.update(task, advance=pairs_per_step, stats=stats)

                wait_total, seconds = train_one_epoch(r, train_loader, sampler, epoch, advance)
                _end_epoch(r, epoch, val_batches, groups, wait_total, seconds,
                           r.steps_per_epoch - sampler.skip // cfg.batch_size)
                if (signum := stop_signal(ctx)) is not None and epoch + 1 < cfg.epochs:  # last.pt: epoch's end
                    _stopped(r, epoch + 1, signum)
        _record(r, "complete", cfg.epochs)
    finally:
        if r.log:
            r.log.close()
    best = folder / "best.pt"
    return TrainResult(folder, folder / "last.pt", best if best.exists() else None, r.state.best_auc, cfg.epochs,
                       r.state.step, r.state.nonfinite)
