"""What an evaluation reads, found before anything heavy loads (torch, Ray, the plotting stack): the
checkpoint file and each suite's listing. So the argument errors a user makes most (a checkpoint that is
not there, a root without its index file, an unknown suite) are one line within a second.
"""

from __future__ import annotations

import logging
import os
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fiagen.core.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from fiagen.evaluate.config import EvalConfig, ExplainConfig
from fiagen.manifests.pseudo import is_pseudo
from fiagen.manifests.roots import DATA_ENV, SourceError
from fiagen.manifests.suites import SUITES, check_suite_name, resolve_suite
from fiagen.manifests.suites.listing import SuiteListing

log = logging.getLogger(__name__)


@dataclass
class EvalInputs:
    """The checkpoint file, the listing of every suite found, and the suites skipped (with the reason)."""

    ckpt: Path
    listings: dict[str, SuiteListing]
    skipped: dict[str, str] = field(default_factory=dict)

    def output(self, out: str | os.PathLike | None) -> Path:
        """The output folder (`out`, else <checkpoint folder>/eval), if it can be used: not a file nor under
        one, writable, not held by another run (one error line at once, before torch and Ray load)."""
        from fiagen.core.outputs import preflight_output

        return preflight_output(Path(out) if out else self.ckpt.parent / "eval", "--out")


def default_checkpoint(runs: Path = Path("runs")) -> Path:
    """The newest runs/*/best.pt (by modification time)."""
    found = sorted(runs.glob("*/best.pt"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise SourceError(f"no checkpoint given and none found as {runs}/*/best.pt; pass --ckpt PATH")
    return found[-1]


def checkpoint_file(path: Path, what: str = "--ckpt", read: bool = False) -> Path:
    """`path` if it may be a fiagen checkpoint: a file, and with `read` in torch's zip format (its first
    bytes; read no further); one error line naming what it is otherwise (no such file, a folder, a config
    or other file)."""
    if not path.exists():
        raise SourceError(f"checkpoint not found: {path}")
    if path.is_dir():
        raise SourceError(f"{what} {path} is a folder; pass a checkpoint file (fiagen train writes RUN/best.pt)")
    if read and not zipfile.is_zipfile(path):
        raise SourceError(f"{what} {path} is not a fiagen checkpoint (not torch's zip format; fiagen train writes "
                          f"RUN/best.pt and RUN/last.pt)")
    return path


def empty_reason(listing: SuiteListing) -> str | None:
    """Why a listing has nothing to score (None when it has items): all missing, all refused, or none listed."""
    if listing.items:
        return None
    if listing.missing:
        return (f"all {len(listing.missing)} listed files are missing under {listing.root} (first: "
                f"{listing.missing[0].path})")
    if listing.refused:
        return (f"all {len(listing.refused)} listed paths lead outside {listing.root} and were refused (pass "
                f"--allow-outside-root to open them)")
    return f"{listing.root} lists nothing to score"


def find_inputs(suites: Sequence[str], root: str | os.PathLike | None, ckpt: str | os.PathLike | None,
                skip_missing: bool = False, allow_outside_root: bool = False) -> EvalInputs:
    """The checkpoint (`ckpt`, else the newest runs/*/best.pt) and the listings of `suites` under `root`;
    every suite name is checked first.

    A suite whose dataset cannot be found, or that has nothing to score (every listed file missing or
    refused), is an error, or, with `skip_missing` (--suite all), skipped with its reason; none found at
    all is an error. Listed paths outside a suite's root are refused unless `allow_outside_root`.
    """
    for spec in suites:  # a typo'd name first
        check_suite_name(spec)
    path = checkpoint_file(Path(ckpt)) if ckpt else default_checkpoint()
    return EvalInputs(path, *find_listings(suites, root, skip_missing, allow_outside_root))


def find_listings(suites: Sequence[str], root: str | os.PathLike | None, skip_missing: bool = False,
                  allow_outside_root: bool = False) -> tuple[dict[str, SuiteListing], dict[str, str]]:
    """The listing of each suite found ({spec: listing}) and the suites skipped ({spec: reason}), as
    `find_inputs` says."""
    listings, skipped = {}, {}
    for spec in suites:  # a typo'd name first, before any suite's data is read
        check_suite_name(spec)
    for spec in suites:
        try:
            listing = resolve_suite(spec, root, allow_outside_root)
            reason = empty_reason(listing)
            if reason is not None:
                raise SourceError(f"{spec}: nothing to score: {reason}")
        except SourceError as err:
            if not skip_missing:
                raise
            skipped[spec] = str(err)
            continue
        listings[spec] = listing
    if not listings:
        where = f"--root {root}" if root is not None else (f"${DATA_ENV} ({os.environ[DATA_ENV]})"
                                                          if os.environ.get(DATA_ENV) else f"no --root nor ${DATA_ENV}")
        raise SourceError(f"none of the {len(skipped)} suites has data ({where}); pass --root DIR, the folder "
                          f"holding FaceForensics++/, Celeb-DF-v2/, DF40/, ... (`fiagen evaluate --suite NAME "
                          f"--dry-run` says what one suite lacks)")
    return listings, skipped


def check_eval(cfg: EvalConfig) -> EvalInputs:
    """Everything evaluate and bench (and their --dry-run) check before any work, one line each: the
    checkpoint file, every suite (its name, dataset folder, index file, something to score), the output
    folder, the checkpoint's format."""
    inputs = find_inputs(cfg.suites, cfg.root, cfg.ckpt, cfg.skip_missing_suites, cfg.allow_outside_root)
    check_perturb(cfg, inputs.listings)
    inputs.output(cfg.out)
    checkpoint_file(inputs.ckpt, read=True)
    say_found(inputs.listings)
    return inputs


def check_perturb(cfg: EvalConfig, suites: Iterable[str]) -> None:
    """--perturb with a pseudo: suite is one error line (its crops are scored raw only)."""
    if cfg.perturb and any(is_pseudo(spec) for spec in suites):
        raise SourceError("--perturb applies to suites of videos and images; a pseudo: suite is scored raw only")


def say_found(listings: dict[str, SuiteListing]) -> None:
    """One info line per built-in suite (found by its folder names under --root or $FIAGEN_DATA): the folder
    its data was taken from (said once every check has passed). A suite given by its path says nothing."""
    for spec, listing in listings.items():
        if spec in SUITES:
            log.info("%s: data from %s", spec, listing.root)


def check_explain(cfg: ExplainConfig) -> None:
    """What explain (and its --dry-run) checks first: the input (a video or image that exists), the
    checkpoint file, the output folder."""
    from fiagen.core.outputs import preflight_output

    source = Path(cfg.input)
    if not source.exists():
        raise SourceError(f"--input {source}: no such file")
    if not source.is_file() or source.suffix.lower() not in VIDEO_SUFFIXES | IMAGE_SUFFIXES:
        raise SourceError(f"--input {source} is not a video ({', '.join(sorted(VIDEO_SUFFIXES))}) or image file")
    checkpoint_file(Path(cfg.ckpt), read=True)
    preflight_output(cfg.out, "--out")
