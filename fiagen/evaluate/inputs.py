"""What an evaluation reads, found before anything heavy loads (torch, Ray, the plotting stack): the
checkpoint file and each suite's listing. So the argument errors a user makes most (a checkpoint that is
not there, a root without its index file, an unknown suite) are one line within a second.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fiagen.manifests.roots import SourceError
from fiagen.manifests.suites import resolve_suite
from fiagen.manifests.suites.listing import SuiteListing


@dataclass
class EvalInputs:
    """The checkpoint file, the listing of every suite found, and the suites skipped (with the reason)."""

    ckpt: Path
    listings: dict[str, SuiteListing]
    skipped: dict[str, str] = field(default_factory=dict)

    def output(self, out: str | os.PathLike | None) -> Path:
        """The output folder (`out`, else <checkpoint folder>/eval), if it can be used: not a file nor under
        one, writable, not held by another run (one error line at once, before torch and Ray load)."""
        from fiagen.outputs import preflight_output

        return preflight_output(Path(out) if out else self.ckpt.parent / "eval", "--out")


def default_checkpoint(runs: Path = Path("runs")) -> Path:
    """The newest runs/*/best.pt (by modification time)."""
    found = sorted(runs.glob("*/best.pt"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise SourceError(f"no checkpoint given and none found as {runs}/*/best.pt; pass --ckpt PATH")
    return found[-1]


def find_inputs(suites: Sequence[str], root: str | os.PathLike | None, ckpt: str | os.PathLike | None,
                skip_missing: bool = False, allow_outside_root: bool = False) -> EvalInputs:
    """The checkpoint (`ckpt`, else the newest runs/*/best.pt) and the listings of `suites` under `root`.

    A suite whose dataset cannot be found is an error, or, with `skip_missing` (--suite all), skipped
    with its reason; none found at all is an error. Listed paths outside a suite's root are refused
    unless `allow_outside_root`.
    """
    path = Path(ckpt) if ckpt else default_checkpoint()
    if not path.is_file():
        raise SourceError(f"checkpoint not found: {path}")
    inputs = EvalInputs(path, {})
    for spec in suites:
        try:
            inputs.listings[spec] = resolve_suite(spec, root, allow_outside_root)
        except SourceError as err:
            if not skip_missing:
                raise
            inputs.skipped[spec] = str(err)
    if not inputs.listings:
        raise SourceError("no suite could be found: " + " | ".join(inputs.skipped.values()))
    return inputs
