"""Progress bars for long stages (rich), quiet when asked."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def stage_progress(quiet: bool = False, unit: str = "videos", rate_field: str = "rate") -> Progress:
    """A bar showing done/total `unit`, a rate field the caller updates (e.g. frames/s), elapsed and ETA."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TextColumn("{task.fields[" + rate_field + "]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=quiet,
        transient=False,
    )
