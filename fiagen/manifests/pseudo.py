"""`pseudo:OUT[:ABLATION][:SPLIT]` suites: the val (or test) frames of a precompute output and their
FIA-USA pseudo-fakes of one recipe (an ablation of fiagen.core.ablations.ABLATIONS, default full).

The frames are already aligned face crops, so the evaluation scores them directly (see
fiagen.evaluate.pseudo): no decoding, no face detection. The listing holds one item per frame of the
split, in the FIA-USA dataset's order; each is scored as a real and as its pseudo-fake.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from fiagen.core.ablations import ABLATIONS
from fiagen.manifests.roots import SourceError
from fiagen.manifests.suites.listing import EvalItem, SuiteListing

PREFIX = "pseudo:"
SPLITS = ("val", "test")
GRAMMAR = "pseudo:OUT[:ABLATION][:SPLIT]"
POOL = "pseudo"


@dataclass
class PseudoSpec:
    """A parsed pseudo suite: the precompute output, the recipe and the split."""

    shards: Path
    ablation: str = "full"
    split: str = "val"

    @property
    def dirname(self) -> str:
        """The output folder name: pseudo-<OUT's name>-<ablation>-<split>."""
        name = re.sub(r"[^A-Za-z0-9_.+-]", "_", self.shards.resolve().name) or "root"
        return f"pseudo-{name}-{self.ablation}-{self.split}"


def is_pseudo(spec: str) -> bool:
    """Whether a --suite value names a pseudo suite."""
    return spec.startswith(PREFIX)


def parse_pseudo(spec: str) -> PseudoSpec:
    """OUT, ABLATION (default full) and SPLIT (default val) of `pseudo:OUT[:ABLATION][:SPLIT]`; the two
    optional fields are read from the end, so OUT may itself hold a colon."""
    parts = spec[len(PREFIX):].split(":")
    split = parts.pop() if len(parts) > 1 and parts[-1] in SPLITS + ("train",) else "val"
    ablation = parts.pop() if len(parts) > 1 and parts[-1] in ABLATIONS else "full"
    out = ":".join(parts)
    if split == "train":
        raise SourceError(f"{spec}: the train split is what a detector learns from; score val or test")
    if not out:
        raise SourceError(f"{spec}: no precompute output given; expected {GRAMMAR}")
    return PseudoSpec(Path(out).expanduser(), ablation, split)


def pseudo_listing(spec: str) -> SuiteListing:
    """The frames of a pseudo suite's split, one item each (id `<video>/<frame:06d>`, the shard as path),
    in the order of the manifest's rows of that split (the FIA-USA dataset's order)."""
    from fiagen.manifests.manifest import MANIFEST_NAME, read_manifest  # pandas: not in the decode/detect tasks

    parsed = parse_pseudo(spec)
    if not (parsed.shards / MANIFEST_NAME).is_file():
        raise SourceError(f"{spec}: {parsed.shards} is not a precompute output (no {MANIFEST_NAME}); expected "
                          f"{GRAMMAR} with ABLATION one of {', '.join(ABLATIONS)} and SPLIT {' or '.join(SPLITS)}")
    manifest = read_manifest(parsed.shards)
    rows = manifest[manifest["split"] == parsed.split]
    if rows.empty:
        present = ", ".join(sorted(manifest["split"].unique())) or "none"
        raise SourceError(f"{spec}: {parsed.shards} has no {parsed.split} frames (splits present: {present})")
    items = [EvalItem(f"{video}/{frame:06d}", parsed.shards / shard, 0, "real", POOL)
             for video, frame, shard in zip(rows["video_id"], rows["frame_index"], rows["shard"], strict=False)]
    return SuiteListing(spec, parsed.shards, items, level="frame")
