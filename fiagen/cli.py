"""Command line: one thin command per stage; parsing only, the work lives in the stage packages."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from fiagen import __version__
from fiagen.errors import FiagenError
from fiagen.manifests.sources import SPLITS


def _splits(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    names = tuple(s.strip() for s in value.split(",") if s.strip())
    bad = [s for s in names if s not in SPLITS]
    if bad or not names:
        raise click.BadParameter(f"expected a comma list of {', '.join(SPLITS)}; got {value!r}")
    return names


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="fiagen")
def cli() -> None:
    """fiagen: train face-deepfake detectors on FIA-USA pseudo-fakes made from real videos only.

    Stages: precompute (faces, landmarks, reconstructions -> shards), train, evaluate/bench.
    Dataset roots come from --root or the FIAGEN_DATA environment variable.
    """


@cli.command()
@click.option("--src", default="ff++_c23",
              help="Source of real videos: ff++_c23 (official FF++ split, c23 originals) or folder:PATH "
                   "(every video/image under PATH; train/ val/ test/ subfolders give the split, else all train).")
@click.option("--root", default=None, type=click.Path(file_okay=False),
              help="Dataset root for ff++_c23 (holds original_sequences/). Default: $FIAGEN_DATA, or "
                   "$FIAGEN_DATA/FaceForensics++ or $FIAGEN_DATA/ffpp.")
@click.option("--out", default="out", type=click.Path(file_okay=False), help="Output folder for shards, manifest, run.json.")
@click.option("--splits", default="train,val,test", callback=_splits, help="Splits to process (comma list).")
@click.option("--frames", default=32, type=click.IntRange(1), help="Frames sampled per video, spread uniformly.")
@click.option("--shard-size", default=256, type=click.IntRange(1),
              help="Frames per shard at most (whole videos per shard: shard-size // frames, at least one).")
@click.option("--workers", default=None, type=click.IntRange(1),
              help="Videos processed at once. Default: all cores (local) or all cluster CPUs (--address).")
@click.option("--address", default=None,
              help="Ray cluster address ('auto' on a cluster node, or ray://HOST:PORT). Default: a local Ray.")
@click.option("--ae", default="none", help="Autoencoder reconstructor: none.")
@click.option("--sr", default="none", help="Super-resolution reconstructor: none.")
@click.option("--limit", default=None, type=click.IntRange(1), help="Only the first N videos of each split (quick tries).")
@click.option("--compression", default="none", type=click.Choice(["none", "gzip"]),
              help="Crop storage in the shards, both lossless: none reads ~10x faster, gzip is ~3x smaller.")
@click.option("--overwrite", is_flag=True, help="Rebuild an output folder made with other settings.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def precompute(**opts: object) -> None:
    """Sample frames of real videos, find the face and its landmarks, store face crops in HDF5 shards.

    Writes OUT/shards/<split>/*.h5, OUT/manifest.parquet (one row per frame) and OUT/run.json (config,
    versions, counts, every missing video and failure). Rerunning on the same OUT rebuilds only shards
    that are missing or do not match their checksum.
    """
    from fiagen.pipeline.precompute import PrecomputeConfig, precompute as run

    result = run(PrecomputeConfig(**opts))
    c = result.report["counts"]
    click.echo(
        f"{result.out}: {c['frames_stored']} frames from {c['videos_found'] - c['videos_failed']} videos "
        f"in {c['shards']} shards ({result.shards_written} written, {result.shards_reused} reused); "
        f"{c['videos_missing']} missing, {c['videos_failed']} failed, {c['frames_no_face']} frames without a face "
        f"-> {result.out / 'run.json'}"
    )


@cli.command()
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--draw", default=0, type=click.IntRange(0), help="Write N frames with landmarks, face box and forehead arc.")
@click.option("--to", "to", default=None, type=click.Path(file_okay=False),
              help="Folder for the drawn PNGs. Default: OUT/inspect.")
@click.option("--seed", default=0, help="Which frames --draw picks (spread over the manifest, seeded).")
def inspect(out: str, draw: int, to: str | None, seed: int) -> None:
    """Print per-split counts and failures of a precompute output; optionally draw frames."""
    from fiagen.pipeline.inspect import draw_frames, summary

    click.echo(summary(Path(out)))
    if draw:
        written = draw_frames(Path(out), draw, Path(to) if to else Path(out) / "inspect", seed)
        click.echo(f"wrote {len(written)} PNGs to {written[0].parent if written else to}")


def main() -> None:
    """Console entry point: user errors are one line; anything else is one line plus how to see more."""
    try:
        code = cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except FiagenError as err:
        click.echo(f"fiagen: error: {err}", err=True)
        sys.exit(2)
    except Exception as err:  # noqa: BLE001 - last line of defence against a traceback wall
        if os.environ.get("FIAGEN_DEBUG"):
            raise
        click.echo(f"fiagen: unexpected {type(err).__name__}: {err} (set FIAGEN_DEBUG=1 for the traceback)", err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
