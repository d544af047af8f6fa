"""The `fiagen` click group: its global options and the order --help lists the commands in."""

from __future__ import annotations

import click

from fiagen.core import log
from fiagen.core.version import __version__


class _PipelineOrder(click.Group):
    """A group whose --help lists the commands in the order a user runs them (click sorts by name)."""

    ORDER = ("precompute", "inspect", "preview", "generate", "train", "evaluate", "bench", "explain", "predict",
             "export", "run", "demo")

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self.commands, key=lambda n: (self.ORDER.index(n) if n in self.ORDER else len(self.ORDER), n))


@click.group(cls=_PipelineOrder, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="fiagen")
@click.option("-q", "--quiet", is_flag=True,
              help="Warnings and errors only (no info lines, no progress bars); as each command's -q/--quiet.")
@click.option("-v", "--verbose", is_flag=True, help="Debug lines too; as each command's -v/--verbose.")
def cli(quiet: bool, verbose: bool) -> None:
    """fiagen: train face-deepfake detectors on FIA-USA pseudo-fakes made from real videos only.

    Stages: precompute (faces, landmarks, reconstructions -> shards), train, evaluate/bench.
    Dataset roots come from --root or the FIAGEN_DATA environment variable. Messages go to stderr as
    `fiagen: warning: ...` / `fiagen: error: ...` lines; a command's result goes to stdout.
    """
    log.setup(1 if verbose else -1 if quiet else 0)
