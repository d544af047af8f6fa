"""Evaluation suites: which test videos (or images) a benchmark holds, their labels and methods.

Each suite parses its dataset's own layout and index file. An item is labelled 1 = fake, 0 = real; a
fake is compared with the reals of its `pool` (DF40 pairs FF++-domain fakes with FF++ reals, CDF-domain
fakes with Celeb-DF reals, and its FFHQ/CelebA methods with their own reals). Files the index names but
the disk lacks are listed in `missing`, and media files under the suite's folders that it does not
list (not in its test index or layout) in `unlisted`: never dropped silently.
"""

from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Callable, Iterable, Sequence

from fiagen.manifests.roots import DATA_ENV, SourceError, dataset_root
from fiagen.manifests.sources import FFPP_NAMES, FFPP_VIDEO_DIR
from fiagen.pipeline.video import IMAGE_SUFFIXES, VIDEO_SUFFIXES

REAL = "real"
FFPP_FAKE_METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "FaceShifter")
CDF_LIST = "List_of_testing_videos.txt"
CDF_NAMES = {"cdf_v1": ("Celeb-DF-v1", "Celeb-DF", "celebdf_v1", "cdf_v1", "CDF-v1"),
             "cdf_v2": ("Celeb-DF-v2", "Celeb-DF", "celebdf_v2", "cdf_v2", "CDF-v2")}
DFD_REAL_DIR = "original_sequences/actors/c23/videos"
DFD_FAKE_DIR = "manipulated_sequences/DeepFakeDetection/c23/videos"
DIFF_SUBSETS = ("T2I", "I2I", "FS", "FE")

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

# Where each index file comes from, for the one-line error when a root lacks it.
ORIGIN = {
    "ff++": "the FaceForensics++ download (download-FaceForensics.py -d all -c c23 -t videos)",
    "cdf": "the Celeb-DF release (https://github.com/yuezunli/celeb-deepfakeforensics), next to Celeb-real/",
    "dfd": "the FaceForensics++ download (-d DeepFakeDetection_original and -d DeepFakeDetection, -c c23)",
    "dfdc": "the DFDC public test set (labels.csv beside videos/), https://ai.meta.com/datasets/dfdc/",
    "dfdcp": "the DFDC preview release, dataset.json at its root",
    "df40": "the DF40 test data (https://github.com/YZY-stack/DF40), one folder per method",
    "diff": "the DiFF images (https://github.com/xaCheng1996/DiFF): T2I/ I2I/ FS/ FE/ and real/",
}


@dataclass(frozen=True)
class EvalItem:
    """One test video (a video file, an image, or a folder of frame images) with its ground truth.

    `label` is 1 for fake, 0 for real; `method` is the manipulation ("real" for reals); `pool` names the
    reals a fake is scored against; `family` groups methods (DF40: FS/FR/EFS/FE, DiFF: T2I/I2I/FS/FE);
    `frames` lists the frame images when an index names them (DeepfakeBench JSON).
    """

    video_id: str
    path: Path
    label: int
    method: str
    pool: str = ""
    family: str = ""
    frames: tuple[str, ...] = ()


@dataclass
class SuiteListing:
    """What a suite holds: items on disk, items its index names but the disk lacks, notes, and the paths
    its index names that were refused (outside the dataset root; never opened)."""

    name: str
    root: Path
    items: list[EvalItem]
    missing: list[EvalItem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    level: str = "video"
    refused: list[str] = field(default_factory=list)
    # media files under the suite's folders that it does not list; its images are face crops (DF40,
    # DiFF, DeepfakeBench frames: an image without a detected face is scored whole by default)
    unlisted: list[Path] = field(default_factory=list)
    face_crops: bool = False

    def counts(self) -> dict[str, int]:
        """Items per method (reals under "real"), found on disk."""
        out: dict[str, int] = {}
        for it in self.items:
            out[it.method] = out.get(it.method, 0) + 1
        return out


# ---------------------------------------------------------------------------------------------- roots

def _locate(root: str | os.PathLike | None, names: Sequence[str], marker: str, what: str, origin: str) -> Path:
    """The folder holding `marker`: --root itself or --root/<name>; else $FIAGEN_DATA[/<name>]."""
    if root is not None:
        base = Path(root).expanduser()
        for candidate in [base] + [base / n for n in names]:
            if (candidate / marker).exists():
                return candidate
        raise SourceError(f"{what}: {base} has no {marker} (it comes with {origin}); pass the dataset's folder, "
                          f"or a folder holding {names[0]}/, as --root")
    try:
        return dataset_root(None, names, marker, what)
    except SourceError as err:
        raise SourceError(f"{err} ({marker} comes with {origin})") from None


def _search_roots(root: str | os.PathLike | None) -> list[Path]:
    """Folders where a suite looks for the other datasets it needs (DF40's reals): --root, its parent, $FIAGEN_DATA."""
    out = []
    if root is not None:
        base = Path(root).expanduser()
        out += [base, base.parent]
    if os.environ.get(DATA_ENV):
        out.append(Path(os.environ[DATA_ENV]).expanduser())
    return out


def _no_layout(suite: str, root: str | os.PathLike | None, folder: str, lacks: str, what: str) -> SourceError:
    """The one-line error of a suite found by its folder layout: where it looked (--root, else
    $FIAGEN_DATA/<folder>) and `lacks` `what`; or, with neither set, that one must be."""
    env = os.environ.get(DATA_ENV)
    if root is None and not env:
        return SourceError(f"{suite}: pass --root DIR (the {folder} folder) or set {DATA_ENV} to a folder holding "
                           f"{folder}/ with {what}")
    where = str(root) if root is not None else f"{Path(env).expanduser() / folder} (from ${DATA_ENV})"
    return SourceError(f"{suite}: {where} {lacks} {what}; pass the {folder} folder as --root")


def _find_dataset(bases: Iterable[Path], names: Sequence[str], marker: str) -> Path | None:
    for base in bases:
        for candidate in [base] + [base / n for n in names]:
            if (candidate / marker).exists():
                return candidate
    return None


def _is_media(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES | IMAGE_SUFFIXES


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def _unlisted(folders: Iterable[Path], *listed: Iterable[EvalItem], recursive: bool = True) -> list[Path]:
    """Media files under `folders` (or, not `recursive`, directly in them) that no listed item covers
    (an item's file, a frame of its frame list, or a file in its frame folder), sorted."""
    files, dirs = set(), set()
    for it in (it for items in listed for it in items):
        if it.frames:
            files.update(os.path.abspath(f) for f in it.frames)
        else:
            (files if _is_media(it.path) else dirs).add(os.path.abspath(it.path))
    found = set()
    for folder in folders:
        for dirpath, dirnames, filenames in os.walk(folder):
            if os.path.abspath(dirpath) in dirs:
                dirnames.clear()
                continue
            found.update(Path(dirpath, f) for f in filenames
                         if _is_media(Path(f)) and os.path.abspath(os.path.join(dirpath, f)) not in files)
            if not recursive:
                dirnames.clear()
    return sorted(found)


def _split(found: Iterable[EvalItem]) -> tuple[list[EvalItem], list[EvalItem]]:
    items, missing = [], []
    for it in found:
        (items if it.path.exists() else missing).append(it)
    return items, missing


# ---------------------------------------------------------------------------------------------- FF++ / DFD

def ffpp_test_pairs() -> list[tuple[str, str]]:
    """The official FF++ test pairs [a, b]; the fakes are a_b and b_a."""
    text = resources.files("fiagen.manifests").joinpath("splits/ffpp_test.json").read_text()
    return [(a, b) for a, b in json.loads(text)]


def _ffpp_real(base: Path, vid: str, pool: str = "ff") -> EvalItem:
    """An FF++ c23 original: the video, or DeepfakeBench's extracted frames folder when only that exists."""
    video = base / FFPP_VIDEO_DIR / f"{vid}.mp4"
    frames = base / "original_sequences/youtube/c23/frames" / vid
    path = frames if not video.exists() and frames.is_dir() else video
    return EvalItem(f"real/{vid}", path, 0, REAL, pool)


def ffpp(root: str | os.PathLike | None) -> SuiteListing:
    """FF++ c23 test split: 140 originals and 140 fakes for each of the five manipulation methods."""
    base = _locate(root, FFPP_NAMES, "original_sequences", "ff++", ORIGIN["ff++"])
    pairs = ffpp_test_pairs()
    found = [_ffpp_real(base, vid) for vid in sorted({v for p in pairs for v in p})]
    for method in FFPP_FAKE_METHODS:
        for a, b in pairs:
            for name in (f"{a}_{b}", f"{b}_{a}"):
                path = base / "manipulated_sequences" / method / "c23" / "videos" / f"{name}.mp4"
                found.append(EvalItem(f"{method}/{name}", path, 1, method, "ff"))
    items, missing = _split(found)
    folders = [base / FFPP_VIDEO_DIR] + [base / "manipulated_sequences" / m / "c23/videos" for m in FFPP_FAKE_METHODS]
    return SuiteListing("ff++", base, items, missing, unlisted=_unlisted(folders, items, missing))


def dfd(root: str | os.PathLike | None) -> SuiteListing:
    """DeepFakeDetection (Google/Jigsaw) c23: actors' originals vs DeepFakeDetection fakes, all videos."""
    base = _locate(root, FFPP_NAMES + ("DFD", "DeepFakeDetection"), DFD_REAL_DIR, "dfd", ORIGIN["dfd"])
    items = [EvalItem(f"real/{p.stem}", p, 0, REAL, "dfd") for p in sorted((base / DFD_REAL_DIR).glob("*.mp4"))]
    fake_dir = base / DFD_FAKE_DIR
    notes = [] if fake_dir.is_dir() else [f"dfd: {fake_dir} does not exist, so the suite has no fakes"]
    items += [EvalItem(f"DeepFakeDetection/{p.stem}", p, 1, "DeepFakeDetection", "dfd")
              for p in sorted(fake_dir.glob("*.mp4"))]
    return SuiteListing("dfd", base, items, [], notes, unlisted=_unlisted([base / DFD_REAL_DIR, fake_dir], items))


# ---------------------------------------------------------------------------------------------- Celeb-DF

def celebdf(root: str | os.PathLike | None, version: str = "cdf_v2") -> SuiteListing:
    """Celeb-DF test list: lines `<label> <relpath>` where label 1 means REAL (inverted to our 0)."""
    base = _locate(root, CDF_NAMES[version], CDF_LIST, version, ORIGIN["cdf"])
    found = []
    for n, line in enumerate((base / CDF_LIST).read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or parts[0] not in ("0", "1"):
            raise SourceError(f"{version}: {base / CDF_LIST} line {n} is not '<0|1> <relpath>': {line.strip()!r}")
        is_real = parts[0] == "1"
        rel = parts[1].strip()
        method = REAL if is_real else rel.split("/")[0]
        found.append(EvalItem(Path(rel).with_suffix("").as_posix(), base / rel, 0 if is_real else 1, method, "cdf"))
    items, missing = _split(found)
    folders = sorted({base / it.path.relative_to(base).parts[0] for it in found if it.path.is_relative_to(base)})
    return SuiteListing(version, base, items, missing, unlisted=_unlisted(folders, items, missing))


# ---------------------------------------------------------------------------------------------- DFDC / DFDCP

def dfdc(root: str | os.PathLike | None) -> SuiteListing:
    """DFDC public test set: labels.csv (filename,label with 1 = fake); videos in videos/ or beside it."""
    base = _locate(root, ("DFDC/test", "DFDC", "dfdc", "dfdc_test"), "labels.csv", "dfdc", ORIGIN["dfdc"])
    found = []
    with open(base / "labels.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"filename", "label"} <= set(reader.fieldnames):
            raise SourceError(f"dfdc: {base / 'labels.csv'} needs the columns filename,label")
        for row in reader:
            name = row["filename"].strip()
            label = int(float(row["label"]))
            path = base / "videos" / name
            if not path.exists() and (base / name).exists():
                path = base / name
            found.append(EvalItem(Path(name).stem, path, label, "DFDC" if label else REAL, "dfdc"))
    items, missing = _split(found)
    folders = [base / "videos"] if (base / "videos").is_dir() else [base]
    return SuiteListing("dfdc", base, items, missing, unlisted=_unlisted(folders, items, missing))


def dfdcp(root: str | os.PathLike | None) -> SuiteListing:
    """DFDC preview: dataset.json {relpath: {label: real|fake, set: train|test}}; the test set only.

    Files are looked up at the key's path, else at <first folder>/videos/<rest> (a common re-layout).
    """
    base = _locate(root, ("DFDCP", "dfdcp", "dfdc_preview", "DFDC-preview"), "dataset.json", "dfdcp",
                   ORIGIN["dfdcp"])
    index = json.loads((base / "dataset.json").read_text())
    found = []
    for key, rec in sorted(index.items()):
        if rec.get("set") != "test":
            continue
        label = 1 if str(rec.get("label", "")).lower() == "fake" else 0
        parts = key.split("/")
        path = base / key
        if not path.exists() and len(parts) > 1 and (base / parts[0] / "videos" / "/".join(parts[1:])).exists():
            path = base / parts[0] / "videos" / "/".join(parts[1:])
        found.append(EvalItem(Path(key).with_suffix("").as_posix(), path, label, parts[0] if label else REAL,
                              "dfdcp"))
    items, missing = _split(found)
    folders = sorted({base / key.split("/")[0] for key in index})
    return SuiteListing("dfdcp", base, items, missing, unlisted=_unlisted(folders, items, missing))


# ---------------------------------------------------------------------------------------------- DF40

def _media_units(folder: Path, frame_folders: bool) -> list[tuple[str, Path]]:
    """(id relative to `folder`, path) of the test units under a folder.

    frame_folders=True: every video file, and every subfolder that directly holds images (a video's
    extracted frames); images lying directly in `folder` count one each. False: every video and every
    image is a unit of its own.
    """
    units = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        here = Path(dirpath)
        files = sorted(here / f for f in filenames if _is_media(here / f))
        if frame_folders and here != folder and any(_is_image(f) for f in files):
            units.append((here.relative_to(folder).as_posix(), here))
            files = [f for f in files if not _is_image(f)]
        units += [(f.relative_to(folder).with_suffix("").as_posix(), f) for f in files]
    return sorted(units)


def _child(folder: Path, name: str) -> Path | None:
    """The subfolder called `name`, ignoring case."""
    if (folder / name).is_dir():
        return folder / name
    if folder.is_dir():
        for p in folder.iterdir():
            if p.is_dir() and p.name.lower() == name.lower():
                return p
    return None


def _domain_reals(domain: str, bases: list[Path]) -> tuple[list[EvalItem], str | None]:
    """Test reals for DF40's FF++ ("ff") or Celeb-DF ("cdf") domain, or a note saying why there are none."""
    if domain == "ff":
        base = _find_dataset(bases, FFPP_NAMES, "original_sequences")
        if base is None:
            return [], "df40: FF++-domain fakes need the FF++ c23 test reals (original_sequences/); put " \
                       "FaceForensics++/ beside DF40/ or under $FIAGEN_DATA"
        ids = sorted({v for p in ffpp_test_pairs() for v in p})
        return [_ffpp_real(base, vid, "ff") for vid in ids], None
    base = _find_dataset(bases, CDF_NAMES["cdf_v2"], CDF_LIST)
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
    bases = _search_roots(root)
    folders = {m.lower() for ms in DF40_FAMILIES.values() for m in ms}
    base = None
    for candidate in ([Path(root).expanduser()] if root is not None else []) + \
            [b / n for b in bases for n in names]:
        if candidate.is_dir() and any(p.is_dir() and p.name.lower() in folders for p in candidate.iterdir()):
            base = candidate
            break
    if base is None:
        raise _no_layout("df40", root, "DF40", "holds none of",
                         f"DF40's method folders (fsgan/, simswap/, ...; they come with {ORIGIN['df40']})")
    items: list[EvalItem] = []
    missing: list[EvalItem] = []
    notes: list[str] = []
    needed: set[str] = set()
    absent = []
    for family, methods in DF40_FAMILIES.items():
        videos = family in DF40_VIDEO_FAMILIES
        for method in methods:
            mdir = _child(base, method)
            if mdir is None:
                absent.append(method)
                continue
            fake_dir = _child(mdir, "fake")
            if fake_dir is not None:
                items += [EvalItem(f"{method}/fake/{uid}", p, 1, method, method, family)
                          for uid, p in _media_units(fake_dir, videos)]
                real_dir = _child(mdir, "real")
                items += [EvalItem(f"{method}/real/{uid}", p, 0, REAL, method, family)
                          for uid, p in _media_units(real_dir, videos)] if real_dir else []
                continue
            for domain in DF40_DOMAINS:
                ddir = _child(mdir, domain)
                if ddir is None:
                    continue
                units = _media_units(ddir, videos)
                items += [EvalItem(f"{method}/{domain}/{uid}", p, 1, f"{method}_{domain}", domain, family)
                          for uid, p in units]
                needed |= {domain} if units else set()
    for domain in sorted(needed):
        reals, note = _domain_reals(domain, bases)
        found, lacking = _split(reals)
        items += found
        missing += lacking
        notes += [note] if note else []
    if absent:
        notes.append(f"df40: {len(absent)} method folders not found: {', '.join(absent)}")
    return SuiteListing("df40", base, items, missing, notes, level="frame", unlisted=_unlisted([base], items),
                        face_crops=True)


# ---------------------------------------------------------------------------------------------- DiFF

def diff(root: str | os.PathLike | None) -> SuiteListing:
    """DiFF images: [test/]{T2I,I2I,FS,FE}/<method>/... fakes and [test/]real/ pristine images.

    A subset whose images lie directly in it is one method named after the subset.
    """
    def has_layout(p: Path) -> bool:
        return _child(p, REAL) is not None and any(_child(p, s) is not None for s in DIFF_SUBSETS)

    candidates = []
    for b in ([Path(root).expanduser()] if root is not None else []) + \
            [b / n for b in _search_roots(None) for n in ("DiFF", "diff", "DIFF")]:
        candidates += [b / "test", b]
    base = next((c for c in candidates if c.is_dir() and has_layout(c)), None)
    if base is None:
        raise _no_layout("diff", root, "DiFF", "(or its test/) has no",
                         f"real/ plus T2I/ I2I/ FS/ FE/ folders (they come with {ORIGIN['diff']})")
    items = [EvalItem(f"real/{uid}", p, 0, REAL, "diff") for uid, p in _media_units(_child(base, REAL), False)]
    notes = []
    for subset in DIFF_SUBSETS:
        sdir = _child(base, subset)
        if sdir is None:
            notes.append(f"diff: subset {subset}/ not found under {base}")
            continue
        for uid, p in _media_units(sdir, False):
            parts = uid.split("/")
            method = f"{subset}/{parts[0]}" if len(parts) > 1 else subset
            items.append(EvalItem(f"{subset}/{uid}", p, 1, method, "diff", subset))
    return SuiteListing("diff", base, items, [], notes, level="frame", unlisted=_unlisted([base], items),
                        face_crops=True)


# ---------------------------------------------------------------------------------------------- DeepfakeBench

def _bench_records(node: object, split: str) -> Iterable[tuple[str, str, dict]]:
    """(label name, video id, record) of a DeepfakeBench JSON: dataset -> label -> split -> [compression] -> id."""
    if not isinstance(node, dict):
        return
    for dataset in node.values():
        for label_name, splits in (dataset or {}).items():
            level = (splits or {}).get(split) or {}
            first = next(iter(level.values()), None)
            if isinstance(first, dict) and "frames" not in first:  # a compression level (c0/c23/c40)
                level = level.get("c23") or first
            for vid, rec in level.items():
                if isinstance(rec, dict) and "frames" in rec:
                    yield label_name, vid, rec


def _path_parts(path: str) -> tuple[str, ...]:
    """The parts of a path written on any OS (Windows drives and backslashes too), without its anchor."""
    pure = PureWindowsPath(path) if "\\" in path or re.match(r"^[A-Za-z]:", path) else PurePosixPath(path)
    return pure.parts[1:] if pure.anchor else pure.parts


def _under(base: Path, parts: Sequence[str]) -> Path | None:
    """The absolute base/parts with `..` resolved in the text, or None when that leaves `base`."""
    path = Path(os.path.abspath(base.joinpath(*parts)))
    return path if parts and path.is_relative_to(os.path.abspath(base)) else None


def _frame_root(sample: str, bases: list[Path]) -> tuple[Path, int]:
    """Where the JSON's frame paths (often absolute paths of another machine) lie on this disk: the first
    (base, number of leading parts to drop) that maps `sample` onto an existing file under the base;
    none: the first base, nothing dropped."""
    parts = _path_parts(sample)
    return next(((base, drop) for base in bases for drop in range(len(parts))
                 if (path := _under(base, parts[drop:])) is not None and path.exists()), (bases[0], 0))


def deepfakebench(spec: str, root: str | os.PathLike | None) -> SuiteListing:
    """A DeepfakeBench dataset JSON (its test split): label names containing "real" are real, others fake."""
    file = Path(spec).expanduser()
    if not file.is_file():
        raise SourceError(f"deepfakebench: {file} is not a file (expected deepfakebench:FILE.json, a DeepfakeBench "
                          f"dataset JSON from its preprocessing/dataset_json)")
    try:
        index = json.loads(file.read_text())
    except json.JSONDecodeError as err:
        raise SourceError(f"deepfakebench: {file} is not JSON ({err})") from None
    records = list(_bench_records(index, "test"))
    if not records:
        raise SourceError(f"deepfakebench: {file} has no test records (dataset -> label -> test -> [c23] -> id)")
    bases = ([Path(root).expanduser()] if root is not None else []) + [file.parent] + _search_roots(None)
    base, drop = _frame_root(next((str(f) for _, _, rec in records for f in rec["frames"]), ""), bases)
    items, missing, refused = [], [], []
    for label_name, vid, rec in records:
        is_real = "real" in label_name.lower()
        # every frame path is mapped under `base`; one that would leave it (`..`) is refused, never opened
        mapped = [(str(f), _under(base, _path_parts(str(f))[drop:])) for f in rec["frames"]]
        refused += [f for f, path in mapped if path is None]
        frames = [path for _, path in mapped if path is not None]
        present = tuple(str(f) for f in frames if f.exists())
        item = EvalItem(f"{label_name}/{vid}", frames[0].parent if frames else file.parent, 0 if is_real else 1,
                        REAL if is_real else label_name, file.stem, frames=present)
        if frames or not mapped:  # an item whose every frame was refused is only counted as refused
            (items if present else missing).append(item)
    notes = [f"deepfakebench: {len(refused)} frame paths lead outside {base} and were refused (listed in "
             f"report.json)"] if refused else []
    video_folders = sorted({Path(f).parent.parent for it in items for f in it.frames[:1]})
    return SuiteListing(f"deepfakebench:{file.stem}", file.parent, items, missing, notes, level="frame",
                        refused=refused, unlisted=_unlisted(video_folders, items), face_crops=True)


# ---------------------------------------------------------------------------------------------- folder

def _label(value: str) -> int | None:
    v = value.strip().lower()
    return {"0": 0, "1": 1, "real": 0, "fake": 1}.get(v)


def folder(spec: str) -> SuiteListing:
    """Your own test set: PATH/real/ and PATH/fake/ (fake/<method>/ names methods), or a CSV
    `path,label[,method]` (label 0/1 or real/fake; relative paths from the CSV's folder; an optional
    header row names its second column "label")."""
    path = Path(spec).expanduser()
    name = f"folder:{path}"
    if path.is_file():
        items, missing = [], []
        with open(path, newline="") as fh:
            rows = [r for r in csv.reader(fh) if r and any(c.strip() for c in r)]
        if rows and len(rows[0]) > 1 and rows[0][1].strip().lower() == "label":
            rows = rows[1:]
        for n, row in enumerate(rows, 1):
            label = _label(row[1]) if len(row) > 1 else None
            if label is None:
                raise SourceError(f"folder: {path} row {n} is not path,label[,method] with label 0/1/real/fake: {row}")
            file = Path(row[0].strip())
            file = file if file.is_absolute() else path.parent / file
            method = REAL if label == 0 else (row[2].strip() if len(row) > 2 and row[2].strip() else "fake")
            item = EvalItem(Path(row[0].strip()).with_suffix("").as_posix(), file, label, method, "folder")
            (items if file.exists() else missing).append(item)
        folders = sorted({it.path.parent for it in items + missing})  # the CSV's own folders, not below
        return SuiteListing(name, path.parent, items, missing,
                            unlisted=_unlisted(folders, items, missing, recursive=False))
    real_dir, fake_dir = _child(path, REAL), _child(path, "fake")
    if real_dir is None or fake_dir is None:
        raise SourceError(f"folder: {path} needs real/ and fake/ subfolders (fake/<method>/ optional), "
                          f"or pass a CSV path,label[,method] as folder:FILE.csv")
    items = [EvalItem(f"real/{uid}", p, 0, REAL, "folder") for uid, p in _media_units(real_dir, False)]
    for uid, p in _media_units(fake_dir, False):
        parts = uid.split("/")
        items.append(EvalItem(f"fake/{uid}", p, 1, parts[0] if len(parts) > 1 else "fake", "folder"))
    if not items:
        raise SourceError(f"folder: no videos ({', '.join(sorted(VIDEO_SUFFIXES))}) or images under {path}")
    return SuiteListing(name, path, items, unlisted=_unlisted([path], items))


# ---------------------------------------------------------------------------------------------- registry

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


def resolve_suite(spec: str, root: str | os.PathLike | None = None) -> SuiteListing:
    """The listing of a --suite value: a built-in name, deepfakebench:FILE, folder:PATH or
    pseudo:OUT[:ABLATION][:SPLIT] (fiagen.manifests.pseudo)."""
    if spec in SUITES:
        return SUITES[spec](root)
    if spec.startswith("pseudo:"):
        from fiagen.manifests.pseudo import pseudo_listing

        return pseudo_listing(spec)
    if spec.startswith("deepfakebench:"):
        return deepfakebench(spec[len("deepfakebench:"):], root)
    if spec.startswith("folder:"):
        return folder(spec[len("folder:"):])
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
