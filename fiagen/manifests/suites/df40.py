"""DF40: one folder per method, fakes of the FF++ and Celeb-DF domains (scored against those datasets'
test reals) or methods with their own real/ folder."""

from __future__ import annotations

import os
from pathlib import Path

from fiagen.manifests.sources import FFPP_NAMES
from fiagen.manifests.suites.celebdf import CDF_LIST, CDF_NAMES, celebdf
from fiagen.manifests.suites.ffpp import ffpp_real, ffpp_test_pairs
from fiagen.manifests.suites.listing import (
    REAL,
    EvalItem,
    SuiteListing,
    child_dir,
    media_units,
    split_found,
    unlisted_media,
)
from fiagen.manifests.suites.locate import ORIGIN, find_dataset, no_layout, search_roots

# DF40's methods (its README's table and folder tree), by family: face swapping, face reenactment,
# entire face synthesis, face editing. Methods with their own reals hold fake/ and real/ folders.
DF40_FAMILIES = {
    "FS": ("fsgan", "faceswap", "simswap", "inswap", "blendface", "uniface", "mobileswap", "e4s", "facedancer",
           "deepfacelab"),
    "FR": ("fomm", "facevid2vid", "wav2lip", "MRAA", "one_shot_free", "pirender", "tpsm", "lia", "danet",
           "sadtalker", "mcnet", "hyperreenact", "heygen"),
    "EFS": ("VQGAN", "StyleGAN2", "StyleGAN3", "StyleGANXL", "sd2.1", "ddim", "RDDM", "PixArt", "DiT", "SiT",
            "MidJourney", "whichfaceisreal"),
    "FE": ("CollabDiff", "e4e", "stargan", "starganv2", "styleclip"),
}
# Families whose data are videos (frame folders or video files); the others are independent images.
DF40_VIDEO_FAMILIES = ("FS", "FR")
DF40_DOMAINS = ("ff", "cdf")


def _domain_reals(domain: str, bases: list[Path]) -> tuple[list[EvalItem], str | None]:
    """Test reals for DF40's FF++ ("ff") or Celeb-DF ("cdf") domain, or a note saying why there are none."""
    if domain == "ff":
        base = find_dataset(bases, FFPP_NAMES, "original_sequences")
        if base is None:
            return [], "df40: FF++-domain fakes need the FF++ c23 test reals (original_sequences/); put " \
                       "FaceForensics++/ beside DF40/ or under $FIAGEN_DATA"
        ids = sorted({v for p in ffpp_test_pairs() for v in p})
        return [ffpp_real(base, vid, "ff") for vid in ids], None
    base = find_dataset(bases, CDF_NAMES["cdf_v2"], CDF_LIST)
    if base is None:
        return [], "df40: CDF-domain fakes need the Celeb-DF v2 test reals (List_of_testing_videos.txt); put " \
                   "Celeb-DF-v2/ beside DF40/ or under $FIAGEN_DATA"
    reals = [it for it in celebdf(base, "cdf_v2").items if it.label == 0]
    return [EvalItem(f"cdf/{it.video_id}", it.path, 0, REAL, "cdf") for it in reals], None


def df40(root: str | os.PathLike | None) -> SuiteListing:
    """DF40 test data: DF40/<method>/{ff,cdf}/ (fakes of the FF++/Celeb-DF domains, scored against those
    datasets' test reals) or DF40/<method>/{fake,real}/ (methods that bring their own reals).

    Methods are named `<method>_ff` / `<method>_cdf` for the two domains, as DF40 names its test sets.
    """
    names = ("DF40", "df40", "DF40_test")
    bases = search_roots(root)
    folders = {m.lower() for ms in DF40_FAMILIES.values() for m in ms}
    base = None
    for candidate in ([Path(root).expanduser()] if root is not None else []) + \
            [b / n for b in bases for n in names]:
        if candidate.is_dir() and any(p.is_dir() and p.name.lower() in folders for p in candidate.iterdir()):
            base = candidate
            break
    if base is None:
        raise no_layout("df40", root, "DF40", "holds none of",
                         f"DF40's method folders (fsgan/, simswap/, ...; they come with {ORIGIN['df40']})")
    items: list[EvalItem] = []
    missing: list[EvalItem] = []
    notes: list[str] = []
    needed: set[str] = set()
    absent = []
    for family, methods in DF40_FAMILIES.items():
        videos = family in DF40_VIDEO_FAMILIES
        for method in methods:
            mdir = child_dir(base, method)
            if mdir is None:
                absent.append(method)
                continue
            fake_dir = child_dir(mdir, "fake")
            if fake_dir is not None:
                items += [EvalItem(f"{method}/fake/{uid}", p, 1, method, method, family)
                          for uid, p in media_units(fake_dir, videos)]
                real_dir = child_dir(mdir, "real")
                items += [EvalItem(f"{method}/real/{uid}", p, 0, REAL, method, family)
                          for uid, p in media_units(real_dir, videos)] if real_dir else []
                continue
            for domain in DF40_DOMAINS:
                ddir = child_dir(mdir, domain)
                if ddir is None:
                    continue
                units = media_units(ddir, videos)
                items += [EvalItem(f"{method}/{domain}/{uid}", p, 1, f"{method}_{domain}", domain, family)
                          for uid, p in units]
                needed |= {domain} if units else set()
    for domain in sorted(needed):
        reals, note = _domain_reals(domain, bases)
        found, lacking = split_found(reals)
        items += found
        missing += lacking
        notes += [note] if note else []
    if absent:
        notes.append(f"df40: {len(absent)} method folders not found: {', '.join(absent)}")
    return SuiteListing("df40", base, items, missing, notes, level="frame", unlisted=unlisted_media([base], items),
                        face_crops=True)
