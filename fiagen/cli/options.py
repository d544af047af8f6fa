"""Click options from a stage's settings dataclass (`fiagen.core.settings`): one option per field, hidden old
spellings with a deprecation line, `--config FILE` and `--dry-run`, and the resolved config."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from fiagen.core import log
from fiagen.core.errors import FiagenError
from fiagen.core.settings import deprecated, merged, plain, to_yaml, value_type

ALIAS = "__alias"  # the parameter name of an old option spelling: <field>__alias


def _option(f: dataclasses.Field, hint: Any) -> Callable:
    """The click option of one config field."""
    meta, flag, default = f.metadata, "--" + f.name.replace("_", "-"), f.default
    names = [*([meta["short"]] if "short" in meta else ["-q"] if f.name == "quiet" else []), flag, f.name]
    required = " Required (here or in the --config file)." if meta.get("required") else ""
    kwargs: dict[str, Any] = {"default": default, "help": meta["help"] + required}
    if f.name == "quiet":  # every command's -q: as `fiagen -q` (fiagen.core.log)
        kwargs["help"] = meta["help"].rstrip(".") + "; warnings and errors only (as `fiagen -q`)."
    kind = value_type(hint)
    if meta.get("flag"):
        return click.option(*names, is_flag=True, **kwargs)
    if kind is bool and typing.get_origin(hint) is not tuple:
        return click.option(f"{flag}/--no-{flag[2:]}", f.name, **kwargs)
    if typing.get_origin(hint) is tuple:
        kwargs["default"] = ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in default)
        if "choices" in meta:
            kwargs["callback"] = _comma_choices(meta["choices"])
        elif "parse" in meta:
            kwargs["callback"] = _parsed(meta["parse"])
        return click.option(*names, **kwargs)
    if "choices" in meta:
        kwargs["type"] = click.Choice(meta["choices"])
    elif "min" in meta:
        kwargs["type"] = (click.IntRange if kind is int else click.FloatRange)(meta["min"], meta.get("max"))
    elif meta.get("folder") or meta.get("file"):
        kwargs["type"] = PathOption(folder=bool(meta.get("folder")))
    elif kind in (int, float):
        kwargs["type"] = kind
    if meta.get("output"):
        kwargs["callback"] = output_folder
    return click.option(*names, **kwargs)


class PathOption(click.ParamType):
    """A path option that names a folder (`folder`) or a file: the other kind is a one-line error (as
    fiagen.cli.main prints click's BadParameter); one that does not exist yet passes (the stage decides)."""

    name = "path"

    def __init__(self, folder: bool) -> None:
        self.folder = folder

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        path = Path(value).expanduser()
        if self.folder and path.exists() and not path.is_dir():
            self.fail(f"{value} is a file; expected a folder", param, ctx)
        if not self.folder and path.is_dir():
            self.fail(f"{value} is a folder; expected a file", param, ctx)
        return value


def _comma_choices(choices: tuple[str, ...]) -> Callable:

    def callback(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
        names = tuple(s.strip() for s in value.split(",") if s.strip())
        if not names or any(s not in choices for s in names):
            raise click.BadParameter(f"expected a comma list of {', '.join(choices)}; got {value!r}")
        return names

    return callback


def _parsed(parse: Callable[[str], Any]) -> Callable:

    def callback(ctx: click.Context, param: click.Parameter, value: str) -> Any:
        try:
            return parse(value)
        except FiagenError as err:
            raise click.BadParameter(str(err)) from None

    return callback


def output_folder(ctx: Any, param: Any, value: str | None) -> str | None:
    """An output folder option: one error line, not click's usage block, when it names a file."""
    from fiagen.core.outputs import check_output_folder

    return value if value is None else str(check_output_folder(Path(value)))


def click_options(cls: type) -> Callable[[Callable], Callable]:
    """A decorator adding `--config FILE`, `--dry-run` and one option per field of `cls` to a click command."""

    def decorate(func: Callable) -> Callable:
        hints = typing.get_type_hints(cls)
        for f in reversed(dataclasses.fields(cls)):
            if f.metadata.get("option", True):
                func = _option(f, hints[f.name])(func)
            if "alias" in f.metadata:
                func = click.option(f.metadata["alias"], f.name + ALIAS, hidden=True, default=None,
                                    type=value_type(hints[f.name]))(func)
        if "quiet" not in {f.name for f in dataclasses.fields(cls)}:
            func = click.option("-q", "--quiet", is_flag=True, expose_value=False, callback=_log_quiet,
                                help="Warnings and errors only (as `fiagen -q`).")(func)
        func = click.option("-v", "--verbose", is_flag=True, expose_value=False, callback=_log_verbose,
                            help="Debug lines too (as `fiagen -v`).")(func)
        func = click.option("--dry-run", is_flag=True, help="Check everything the command checks before its work "
                            "(names, dataset folders and index files, checkpoints, output folders), print the "
                            "resolved config (YAML) and exit.")(func)
        return click.option("--config", "config_file", default=None, type=click.Path(dir_okay=False, exists=True),
                            help="YAML file of options (keys as below, dashes or underscores); command-line "
                                 "options override it.")(func)

    return decorate


def _log_quiet(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        log.quiet()


def _log_verbose(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        log.setup(1)


def given(ctx: Any, opts: Mapping[str, Any]) -> dict[str, Any]:
    """The options the user gave on the command line (not left at their defaults); an old spelling
    (`alias`) counts as its new one, with a deprecation line. `fiagen -q COMMAND` counts as the
    command's own --quiet."""
    out = {"quiet": True} if "quiet" in opts and log.is_quiet() else {}
    for key, value in opts.items():
        if ctx.get_parameter_source(key) is ParameterSource.DEFAULT:
            continue
        if key.endswith(ALIAS):
            key = key[:-len(ALIAS)]
            deprecated(f"--{_flag(ctx, key + ALIAS)}", f"--{key.replace('_', '-')}")
        out[key] = value
    return out


def _flag(ctx: Any, dest: str) -> str:
    return next(p.opts[0] for p in ctx.command.params if p.name == dest).lstrip("-")


def resolve(cls: type, ctx: Any, opts: Mapping[str, Any], config_file: str | None, **fixed: Any) -> Any:
    """A command's config: defaults < the --config file < the options given (< `fixed`); a `required`
    field set by neither is click's one-line usage error."""
    values = {**merged(cls, given(ctx, opts), config_file, ctx.info_name), **fixed}
    for f in dataclasses.fields(cls):
        if f.metadata.get("required") and values.get(f.name) is None:
            raise click.UsageError(f"Missing option '--{f.name.replace('_', '-')}'.", ctx)
    return cls(**values)


def printed(cfg: Any, dry_run: bool, check: Callable[[Any], Any] | None = None) -> bool:
    """Run the command's checks, `check(cfg)` (what the real run checks before any work: one error line
    each), then, with --dry-run, print the resolved config (YAML, itself a valid --config file) and say so."""
    log.follow(cfg)
    if check is not None:
        check(cfg)
    if dry_run:
        click.echo(to_yaml(plain(cfg)), nl=False)
    return dry_run


def stage_command(cls: type, check: Callable[[Any], Any] | None = None) -> Callable[[Callable], Any]:
    """A command whose settings are the dataclass `cls` (its options, --config, --dry-run); the
    decorated function gets the resolved config, after `check(cfg)` (which --dry-run runs too)."""

    def decorate(fn: Callable) -> Any:
        def command(ctx: click.Context, config_file: str | None, dry_run: bool, **opts: Any) -> None:
            cfg = resolve(cls, ctx, opts, config_file)
            if not printed(cfg, dry_run, check):
                fn(cfg)

        return click.command(fn.__name__, help=fn.__doc__)(click.pass_context(click_options(cls)(command)))

    return decorate
