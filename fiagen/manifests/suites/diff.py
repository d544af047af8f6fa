"""DiFF: diffusion-made face images in T2I/ I2I/ FS/ FE/ subsets beside real/."""

from __future__ import annotations

import os
from pathlib import Path

from fiagen.manifests.suites.listing import REAL, EvalItem, SuiteListing, child_dir, media_units, unlisted_media
from fiagen.manifests.suites.locate import ORIGIN, no_layout, search_roots

DIFF_SUBSETS = ("T2I", "I2I", "FS", "FE")


def diff(root: str | os.PathLike | None) -> SuiteListing:
    """DiFF images: [test/]{T2I,I2I,FS,FE}/<method>/... fakes and [test/]real/ pristine images.

    A subset whose images lie directly in it is one method named after the subset.
    """
    def has_layout(p: Path) -> bool:
        return child_dir(p, REAL) is not None and any(child_dir(p, s) is not None for s in DIFF_SUBSETS)

    names = ("DiFF", "diff", "DIFF")
    given = [Path(root).expanduser()] if root is not None else []
    candidates = []
    for b in given + [g / n for g in given for n in names] + [b / n for b in search_roots(None) for n in names]:
        candidates += [b / "test", b]
    base = next((c for c in candidates if c.is_dir() and has_layout(c)), None)
    if base is None:
        raise no_layout("diff", root, "DiFF", "(or its test/) has no",
                         f"real/ plus T2I/ I2I/ FS/ FE/ folders (they come with {ORIGIN['diff']})")
    items = [EvalItem(f"real/{uid}", p, 0, REAL, "diff") for uid, p in media_units(child_dir(base, REAL), False)]
    notes = []
    for subset in DIFF_SUBSETS:
        sdir = child_dir(base, subset)
        if sdir is None:
            notes.append(f"diff: subset {subset}/ not found under {base}")
            continue
        for uid, p in media_units(sdir, False):
            parts = uid.split("/")
            method = f"{subset}/{parts[0]}" if len(parts) > 1 else subset
            items.append(EvalItem(f"{subset}/{uid}", p, 1, method, "diff", subset))
    return SuiteListing("diff", base, items, [], notes, level="frame", unlisted=unlisted_media([base], items),
                        face_crops=True)
