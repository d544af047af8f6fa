"""The training loop (METHOD.md §5): AFFS init, SAM steps on (real, fake, mask) batches, per-epoch
validation, last/best checkpoints, exact resume. The stage's entry point is `train/entry.py`.

Randomness: pseudo-fakes come from (seed, epoch, index) in the dataset, the batch order from
(seed, epoch) in the sampler, model init from the seed, and torch's global generator (dropout, drop
path) is reseeded from (seed, step, rank) before every step, so a resumed run repeats the
uninterrupted one exactly without storing generator states.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import sys
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.distributed as dist
from pytorch_optimizer import SAM
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from fiagen.errors import FiagenError
from fiagen.files import DiskFullError, write_text
from fiagen.progress import stage_progress
from fiagen.train.affs import AFFSSelection, affs_widths, select_channels
from fiagen.train.breakdown import batch_meta, breakdown, dataset_groups
from fiagen.train.checkpoint import full_disk_advice, read_resume_checkpoint, save_checkpoint, train_net_from
from fiagen.train.config import CONFIG_NAME, TrainConfig, check_run_folder, write_config
from fiagen.train.losses import detector_loss
from fiagen.train.metrics import RunLog
from fiagen.train.model import TrainNet, build_detector, default_fpn_channels

AFFS_PASSES = 5  # paper: AFFS ranks channels over 5 passes of the training set


class TrainingError(FiagenError):
    """A run that cannot start or cannot go on (empty split, existing run, too many non-finite losses)."""


@dataclass(frozen=True)
class Context:
    """Where this process trains: its rank among `world` data-parallel workers and its device."""

    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


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


class EpochSampler(DistributedSampler):
    """DistributedSampler (order from seed + epoch via set_epoch) that yields (epoch, index) keys for an
    `AtEpoch` dataset and can start `skip` samples into an epoch."""

    def __init__(self, dataset: Dataset, world: int, rank: int, seed: int):
        super().__init__(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed)
        self.skip = 0

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        epoch = self.epoch
        return ((epoch, i) for i in itertools.islice(super().__iter__(), self.skip, None))

    def __len__(self) -> int:
        return super().__len__() - self.skip


def resolve_device(name: str) -> torch.device:
    """auto -> cuda when available, else cpu; a CUDA device asked for on a machine without one is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError(f"--device {name}: CUDA is not available here")
    return device


def _datasets(cfg: TrainConfig) -> tuple[Dataset, Dataset]:
    from fiagen.generate.dataset import FIAUSADataset, GenerateConfig

    recipe = dict(size=cfg.size, seed=cfg.seed, ablation=cfg.ablation, config=GenerateConfig(affine=cfg.affine))
    train = FIAUSADataset(cfg.shards, split="train", train=True, **recipe)
    val = FIAUSADataset(cfg.shards, split="val", train=False, **recipe)
    if len(train) < cfg.batch_size:
        raise TrainingError(f"{cfg.shards}: the train split has {len(train)} frames, fewer than one batch "
                            f"of {cfg.batch_size}")
    if len(val) == 0:
        raise TrainingError(f"{cfg.shards}: the val split is empty; checkpoints are selected on val")
    return train, val


def _loader(ds: Dataset, cfg: TrainConfig, ctx: Context, sampler: Any = None, drop_last: bool = True) -> DataLoader:
    """A loader for the whole run: its worker processes start once and live until the run ends."""
    from fiagen.generate.loader import pair_loader

    workers = cfg.loader_workers if cfg.loader_workers is not None else min(4, os.cpu_count() or 1)
    return pair_loader(ds, cfg.batch_size, sampler=sampler, drop_last=drop_last, num_workers=workers,
                       pin_memory=ctx.device.type == "cuda", persistent_workers=workers > 0)


def make_train_loader(train_ds: Dataset, cfg: TrainConfig, ctx: Context) -> tuple[DataLoader, EpochSampler]:
    """The training batches of a run and their sampler (set its epoch and skip before each pass)."""
    from fiagen.generate.loader import AtEpoch

    sampler = EpochSampler(train_ds, ctx.world, ctx.rank, cfg.seed)
    return _loader(AtEpoch(train_ds), cfg, ctx, sampler), sampler


def _val_loader(val_ds: Dataset, cfg: TrainConfig, ctx: Context) -> DataLoader:
    """This worker's share of the val pairs (the first --val-limit frames, or all)."""
    n = len(val_ds) if cfg.val_limit is None else min(len(val_ds), cfg.val_limit)
    return _loader(Subset(val_ds, list(range(ctx.rank, n, ctx.world))), cfg, ctx, drop_last=False)


def _train_data(cfg: TrainConfig, injected: Dataset | None) -> str:
    """A one-line description of the training data for the checkpoint's info."""
    if injected is not None:
        return f"{type(injected).__name__} ({len(injected)} pairs)"
    try:
        src = json.loads((Path(cfg.shards) / "run.json").read_text())["config"]["src"]
    except (OSError, KeyError, ValueError):
        src = "unknown source"
    return f"{src} train split, FIA-USA {cfg.ablation}, from {Path(cfg.shards).resolve()}"


def _autocast(cfg: TrainConfig, device: torch.device) -> Any:
    if device.type == "cuda" and cfg.amp:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def _all_finite(value: torch.Tensor, ctx: Context) -> bool:
    """Whether the loss is finite on every worker (all must skip together, or DDP would hang)."""
    ok = torch.isfinite(value.detach()).float().reshape(1)
    if ctx.world > 1:
        dist.all_reduce(ok, op=dist.ReduceOp.MIN)
    return bool(ok.item() > 0)


def sam_step(net: torch.nn.Module, optimizer: SAM, batch: dict[str, torch.Tensor], cfg: TrainConfig,
             ctx: Context) -> dict[str, float] | None:
    """One SAM step (gradient, ascent to the perturbed weights, gradient there, SGD update).

    Returns the loss terms of the first pass, or None when a pass had a non-finite loss and the step was
    skipped (weights, momentum and normalisation statistics unchanged).
    """
    device = ctx.device
    real = batch["real"].to(device, non_blocking=True)
    fake = batch["fake"].to(device, non_blocking=True)
    mask = batch["mask"].to(device, non_blocking=True)
    x = torch.cat([real, fake])
    if device.type == "cuda" and cfg.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)

    def losses() -> dict[str, torch.Tensor]:
        with _autocast(cfg, device):
            logits, fmap = net(x)
        return detector_loss(logits, fmap, mask, cfg.lambdas, cfg.tau, cfg.boundary)

    buffers = [b.detach().clone() for b in net.buffers()]  # BN statistics a bad batch would poison

    def skip() -> None:
        with torch.no_grad():
            for b, saved in zip(net.buffers(), buffers):
                b.copy_(saved)
        optimizer.zero_grad(set_to_none=True)

    optimizer.zero_grad(set_to_none=True)
    terms = losses()
    if not _all_finite(terms["loss"], ctx):
        skip()
        return None
    terms["loss"].backward()
    second_ok = []

    def closure() -> torch.Tensor:
        loss = losses()["loss"]
        ok = _all_finite(loss, ctx)
        second_ok.append(ok)
        if ok:  # else no gradients: second_step restores the weights and SGD skips every parameter
            loss.backward()
        return loss

    optimizer.step(closure)
    optimizer.zero_grad(set_to_none=True)
    if not second_ok[0]:
        skip()
        return None
    return {k: float(v.detach()) for k, v in terms.items()}


@torch.no_grad()
def validate(detector: torch.nn.Module, loader: DataLoader, cfg: TrainConfig, ctx: Context,
             groups: list[str] | None = None) -> tuple[float, float, dict[str, float] | None]:
    """(AUC, BCE loss, AUC per pseudo-fake group) on the val split's real frames and their fixed
    pseudo-fakes (`loader`: this worker's share, see `_val_loader`). The breakdown (see
    fiagen.train.breakdown) covers `groups` (default: those the fakes fall in); None when the items
    carry no "meta"."""
    from sklearn.metrics import roc_auc_score

    was_training = detector.training
    detector.eval()
    logits, labels, metas = [], [], []
    for batch in loader:
        x = torch.cat([batch["real"], batch["fake"]]).to(ctx.device)
        with _autocast(cfg, ctx.device):
            out = detector(x).float().cpu()
        logits.append(out)
        labels.append(torch.cat([torch.zeros(len(batch["real"])), torch.ones(len(batch["fake"]))]))
        metas += batch_meta(batch["meta"]) if "meta" in batch else []
    detector.train(was_training)
    mine = (torch.cat(logits) if logits else torch.zeros(0), torch.cat(labels) if labels else torch.zeros(0), metas)
    if ctx.world > 1:
        gathered: list[Any] = [None] * ctx.world
        dist.all_gather_object(gathered, mine)
        mine = (torch.cat([g[0] for g in gathered]), torch.cat([g[1] for g in gathered]),
                [m for g in gathered for m in g[2]])
    scores, truth, metas = mine
    loss = torch.nn.functional.binary_cross_entropy_with_logits(scores, truth).item()
    per_group = None
    if metas:
        found = breakdown(scores[truth == 0].numpy(), scores[truth == 1].numpy(), metas, groups)
        per_group = {name: auc for name, (auc, _) in found.items()}
    return float(roc_auc_score(truth.numpy(), scores.numpy())), loss, per_group


def _prepare_run(cfg: TrainConfig, ctx: Context) -> Path:
    run = check_run_folder(cfg)
    if ctx.main:
        run.mkdir(parents=True, exist_ok=True)
        write_config(cfg, run / CONFIG_NAME)
    return run


def _init_net(cfg: TrainConfig, loader: DataLoader, sampler: EpochSampler, ctx: Context,
              run: Path) -> tuple[TrainNet, AFFSSelection | None]:
    """A new TrainNet: backbone (+ pretrained weights), AFFS ranking on training pairs (epochs 0, 1, ...
    of `loader`), FPN."""
    torch.manual_seed(cfg.seed)
    detector = build_detector(cfg.backbone, cfg.size, cfg.pretrained, cfg.drop_rate, cfg.drop_path_rate)
    init = detector.init
    if init["source"] == "none" and ctx.main:
        print(f"fiagen: warning: --pretrained none: {cfg.backbone} starts from random weights; detection "
              "results will be poor (pass --pretrained auto, timm or a weights file)", file=sys.stderr)
    elif ctx.main and not cfg.quiet:
        print(f"fiagen: {init['arch']} starts from {init['weights']} ({init['source']}): {init['tensors_loaded']} "
              "tensors loaded, a new 1-logit head", file=sys.stderr)
    selection = None
    if cfg.uses_rcr and cfg.affs:
        detector.to(ctx.device)
        per_pass = len(sampler) // cfg.batch_size
        budget = cfg.affs_batches if cfg.affs_batches is not None else AFFS_PASSES * per_pass * ctx.world
        budget = max(1, math.ceil(budget / ctx.world))

        def batches() -> Iterator[dict[str, torch.Tensor]]:
            done = 0
            for p in itertools.count():
                sampler.set_epoch(p)
                for batch in loader:
                    yield batch
                    done += 1
                    if done >= budget:
                        return

        with stage_progress(cfg.quiet or not ctx.main, unit="pairs", rate_field="stats") as bar:
            task = bar.add_task("AFFS", total=budget * cfg.batch_size, stats="")
            with _autocast(cfg, ctx.device):
                selection = select_channels(detector, batches(), affs_widths(detector.stage_channels, cfg.affs_ratio),
                                            ctx.device, on_batch=lambda b: bar.advance(task, b))
        if ctx.main:
            write_text(run / "affs.json", json.dumps({"backbone": cfg.backbone, **selection.to_dict()}, indent=1))
    fpn = (cfg.fpn_channels or default_fpn_channels(cfg.backbone)) if cfg.uses_rcr else None
    return TrainNet(detector, selection.indices if selection else None, fpn), selection


RESUME_KEYS = ("backbone", "size", "batch_size", "seed", "ablation", "affine", "lambdas", "affs", "fpn_channels")


def _check_resume(cfg: TrainConfig, saved: dict[str, Any]) -> None:
    """A resumed run must keep the settings that define its model and its sequence of batches."""
    now = cfg.to_dict()
    changed = [f"{k} {saved[k]!r} -> {now[k]!r}" for k in RESUME_KEYS if k in saved and saved[k] != now[k]]
    if changed:
        raise TrainingError(f"--resume with other settings than {cfg.run}/last.pt: {', '.join(changed)}")


def _lr_factor(step: int, total: int, decay_from: float) -> float:
    """Constant, then linear decay to 0 over the last (1 - decay_from) of the steps."""
    start = int(total * decay_from)
    if step < start or total <= start:
        return 1.0
    return max(0.0, (total - step) / (total - start))


def run_training(cfg: TrainConfig, ctx: Context, data: tuple[Dataset, Dataset] | None = None) -> TrainResult:
    """Train on this process as worker `ctx.rank` of `ctx.world` (torch.distributed set up when world > 1).

    `data`: (train, val) datasets of {"real", "fake", "mask"} items with `set_epoch`, in place of the
    FIA-USA datasets over `cfg.shards`.
    """
    run = _prepare_run(cfg, ctx)
    train_ds, val_ds = data if data is not None else _datasets(cfg)
    train_loader, sampler = make_train_loader(train_ds, cfg, ctx)
    val_loader = _val_loader(val_ds, cfg, ctx)
    groups = dataset_groups(val_ds)
    saved = read_resume_checkpoint(run) if cfg.resume else None
    if saved is not None:
        _check_resume(cfg, saved["config"] or {})
        net, affs = train_net_from(saved), saved["affs"]
    else:
        net, selection = _init_net(cfg, train_loader, sampler, ctx, run)
        affs = selection.to_dict() if selection else None
    net.to(ctx.device)
    if ctx.device.type == "cuda" and cfg.channels_last:
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
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_factor(s, total, cfg.decay_from))

    step, epoch0, best_auc, nonfinite = 0, 0, None, 0
    if saved is not None:
        state = saved["training"]
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, best_auc, nonfinite = state["step"], state["best_auc"], state["nonfinite"]
        epoch0 = step // steps_per_epoch
    log = RunLog(run, resume_step=step if saved is not None else None) if ctx.main else None
    train_data = _train_data(cfg, data[0] if data is not None else None)

    def checkpoint(path: Path, epoch: int, val_auc: float | None, training: bool) -> None:
        # epoch_sums/epoch_counted: the loss sums of the epoch so far, so that a run resumed inside an
        # epoch logs the same averages as the uninterrupted one
        state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "step": step,
                 "best_auc": best_auc, "nonfinite": nonfinite, "epoch_sums": dict(sums),
                 "epoch_counted": counted} if training else None
        try:
            save_checkpoint(path, net, epoch=epoch, step=step, val_auc=val_auc, train_data=train_data, affs=affs,
                            config=cfg.to_dict(), training=state)
        except DiskFullError as err:
            raise err.noted(f"training stopped at step {step}; {full_disk_advice(run)}") from None

    pairs_per_step = cfg.batch_size * ctx.world
    try:
        with stage_progress(cfg.quiet or not ctx.main, unit="pairs", rate_field="stats") as bar:
            task = bar.add_task("train", total=total * pairs_per_step, completed=step * pairs_per_step, stats="")
            for epoch in range(epoch0, cfg.epochs):
                sampler.set_epoch(epoch)
                sampler.skip = (step - epoch * steps_per_epoch) * cfg.batch_size
                sums = {"loss": 0.0, "bce": 0.0, "pcr": 0.0, "icr": 0.0}
                counted, wait_total, epoch_start = 0, 0.0, time.perf_counter()
                if sampler.skip:  # resumed inside this epoch: its averages count the steps before too
                    sums, counted = dict(saved["training"]["epoch_sums"]), saved["training"]["epoch_counted"]
                model.train()
                tick = time.perf_counter()
                for batch in train_loader:
                    wait = time.perf_counter() - tick
                    torch.manual_seed(cfg.seed * 1_000_003 + step * 131 + ctx.rank)
                    terms = sam_step(model, optimizer, batch, cfg, ctx)
                    lr = optimizer.param_groups[0]["lr"]
                    with warnings.catch_warnings():  # a skipped first step: the schedule still counts it
                        warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step", UserWarning)
                        scheduler.step()
                    step += 1
                    if terms is None:
                        nonfinite += 1
                    else:
                        counted += 1
                        for k in sums:
                            sums[k] += terms[k]
                    seconds = time.perf_counter() - tick
                    wait_total += wait
                    rate = pairs_per_step / seconds
                    if log:
                        nan = float("nan")
                        log.step({"step": step, "epoch": epoch, "loss": terms["loss"] if terms else nan,
                                  "bce": terms["bce"] if terms else nan, "pcr": terms["pcr"] if terms else nan,
                                  "icr": terms["icr"] if terms else nan, "lr": lr, "pairs_per_s": rate,
                                  "data_wait_s": wait, "skipped": int(terms is None)})
                    if terms is None and nonfinite >= cfg.max_nonfinite:
                        raise TrainingError(f"stopped at step {step}: {nonfinite} steps had a non-finite loss "
                                            f"(max {cfg.max_nonfinite}); lower --lr or check the data")
                    loss_txt = f"{terms['loss']:.4f}" if terms else "skipped"
                    bar.update(task, advance=pairs_per_step, stats=f"e{epoch + 1}/{cfg.epochs} loss {loss_txt} "
                                                                   f"{rate:.1f} pairs/s")
                    at_epoch_end = step % steps_per_epoch == 0  # that checkpoint comes after validation
                    if cfg.save_every and step % cfg.save_every == 0 and ctx.main and not at_epoch_end:
                        checkpoint(run / "last.pt", epoch, None, training=True)
                    tick = time.perf_counter()
                seconds = time.perf_counter() - epoch_start
                val_auc = val_loss = None
                if (epoch + 1) % cfg.val_every == 0 or epoch + 1 == cfg.epochs:
                    val_auc, val_loss, per_group = validate(net.detector, val_loader, cfg, ctx, groups)
                    if log and per_group is not None:
                        log.breakdown({"epoch": epoch + 1, "step": step, **per_group})
                    if ctx.main and (best_auc is None or val_auc > best_auc):
                        best_auc = val_auc
                        checkpoint(run / "best.pt", epoch + 1, val_auc, training=False)
                if ctx.main:
                    checkpoint(run / "last.pt", epoch + 1, val_auc, training=True)
                    done = steps_per_epoch - sampler.skip // cfg.batch_size
                    log.epoch({"epoch": epoch + 1, "step": step, **{f"train_{k}": v / max(counted, 1)
                                                                    for k, v in sums.items()},
                               "val_auc": val_auc, "val_loss": val_loss, "lr": optimizer.param_groups[0]["lr"],
                               "pairs_per_s": done * pairs_per_step / seconds,
                               "data_wait_fraction": wait_total / seconds, "nonfinite_skipped": nonfinite,
                               "seconds": round(seconds, 3)})
    finally:
        if log:
            log.close()
    best = run / "best.pt"
    return TrainResult(run, run / "last.pt", best if best.exists() else None, best_auc, cfg.epochs, step, nonfinite)
