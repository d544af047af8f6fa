"""Evaluation suites: which test videos (or images) a benchmark holds, their labels and methods.

Each suite parses its dataset's own layout and index file. An item is labelled 1 = fake, 0 = real; a
fake is compared with the reals of its `pool` (DF40 pairs FF++-domain fakes with FF++ reals, CDF-domain
fakes with Celeb-DF reals, and its FFHQ/CelebA methods with their own reals). Files the index names but
the disk lacks are listed in `missing`, and media files under the suite's folders that it does not
list (not in its test index or layout) in `unlisted`: never dropped silently.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

from fiagen.core.ablations import ABLATIONS
from fiagen.manifests.roots import SourceError
from fiagen.manifests.suites.celebdf import celebdf
from fiagen.manifests.suites.deepfakebench import deepfakebench
from fiagen.manifests.suites.df40 import df40
from fiagen.manifests.suites.dfdc import dfdc, dfdcp
from fiagen.manifests.suites.diff import diff
from fiagen.manifests.suites.ffpp import dfd, ffpp
from fiagen.manifests.suites.folder import folder
from fiagen.manifests.suites.listing import SuiteListing

SUITE_HELP = ("ff++, cdf_v1, cdf_v2, dfd, dfdc, dfdcp, df40, diff, deepfakebench:FILE.json, folder:PATH (PATH/real/ + "
              "PATH/fake/[<method>/], or a CSV path,label[,method]), or pseudo:OUT[:ABLATION][:SPLIT]: precompute "
              "output OUT's val (default) or test frames and their FIA-USA pseudo-fakes of ABLATION ("
              + ", ".join(ABLATIONS) + "; default full), scored as aligned crops, one table row per mask type / "
              "reconstruction / blend ratio / T side (e.g. pseudo:out:sbi:test).")
SUITES: dict[str, Callable[[str | os.PathLike | None], SuiteListing]] = {
    "ff++": ffpp,
    "cdf_v1": lambda root: celebdf(root, "cdf_v1"),
    "cdf_v2": lambda root: celebdf(root, "cdf_v2"),
    "dfd": dfd,
    "dfdc": dfdc,
    "dfdcp": dfdcp,
    "df40": df40,
    "diff": diff,
}
# The suites whose index file names paths (each confined to the dataset root unless allow_outside).
LISTED: dict[str, Callable[[str | os.PathLike | None, bool], SuiteListing]] = {
    "cdf_v1": lambda root, allow: celebdf(root, "cdf_v1", allow),
    "cdf_v2": lambda root, allow: celebdf(root, "cdf_v2", allow),
    "dfdc": dfdc,
    "dfdcp": dfdcp,
}


def resolve_suite(spec: str, root: str | os.PathLike | None = None, allow_outside_root: bool = False) -> SuiteListing:
    """The listing of a --suite value: a built-in name, deepfakebench:FILE, folder:PATH or
    pseudo:OUT[:ABLATION][:SPLIT] (fiagen.manifests.pseudo). Paths an index or list file names outside
    the suite's root are refused (SuiteListing.refused, never opened) unless `allow_outside_root`."""
    check_suite_name(spec)
    if spec in LISTED:
        return LISTED[spec](root, allow_outside_root)
    if spec in SUITES:
        return SUITES[spec](root)
    if spec.startswith("pseudo:"):
        from fiagen.manifests.pseudo import pseudo_listing

        return pseudo_listing(spec)
    if spec.startswith("deepfakebench:"):
        return deepfakebench(spec[len("deepfakebench:"):], root, allow_outside_root)
    return folder(spec[len("folder:"):], allow_outside_root)


def check_suite_name(spec: str) -> None:
    """One error line for a --suite value that names no suite (checked for every suite before any is read)."""
    if spec not in SUITES and not spec.startswith(("pseudo:", "deepfakebench:", "folder:")):
        raise SourceError(f"unknown suite '{spec}': expected {', '.join(SUITES)}, deepfakebench:FILE, folder:PATH or "
                          f"pseudo:OUT[:ABLATION][:SPLIT]")


def suite_dirname(spec: str) -> str:
    """A folder name for a suite's outputs (folder:/deepfakebench: specs become <kind>-<basename>,
    pseudo: specs pseudo-<basename>-<ablation>-<split>)."""
    if spec.startswith("pseudo:"):
        from fiagen.manifests.pseudo import parse_pseudo

        return parse_pseudo(spec).dirname
    if ":" in spec:
        kind, _, rest = spec.partition(":")
        stem = Path(rest.rstrip("/\\")).stem or "root"
        return f"{kind}-{re.sub(r'[^A-Za-z0-9_.+-]', '_', stem)}"
    return spec


def parse_suites(values: Sequence[str]) -> list[str]:
    """--suite values: several names (repeated or comma-separated), or `all` for every built-in suite."""
    out: list[str] = []
    for value in values:
        for spec in ([value] if ":" in value else [v.strip() for v in value.split(",")]):
            if not spec:
                continue
            for name in (list(SUITES) if spec == "all" else [spec]):
                if name not in out:
                    out.append(name)
    if not out:
        raise SourceError("no suite given: pass --suite NAME (ff++, cdf_v2, df40, ...) or --suite all")
    return out
