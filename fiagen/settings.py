"""One way from a stage's settings dataclass to its command line and its YAML files.

Each field of a stage's config (`TrainConfig`, `PrecomputeConfig`) is declared with `setting(default,
help, ...)`. From the dataclass come the click options (one per field: name, default, help, type),
the keys a `--config FILE` may hold (dashes or underscores), the typed values read from YAML or the
command line, and the YAML that `--dry-run` prints (readable again by `--config`). Precedence, lowest
first: the defaults, the config file, the options given on the command line.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from fiagen.errors import FiagenError, message_line

ALIAS = "__alias"  # the parameter name of an old option spelling: <field>__alias


class ConfigError(FiagenError):
    """A config file or option value that cannot be used; the message names the key."""


def setting(default: Any, help: str, **option: Any) -> Any:
    """A config field: its default, its --help text and what its option checks beyond the field's type:
    `min`/`max` (number bounds), `choices` (of a text, or of each item of a comma list), `parse` (text
    -> value, raising FiagenError: for the option and for YAML), `folder`/`file` (a path that must not
    be a file / a folder), `output` (an output folder: one error line when it is a file), `flag` (an
    on-switch without a --no- form), `short` (e.g. "-n"), `required` (on the command line or in the
    file), `alias` (an old spelling, hidden, kept for one release with a deprecation line),
    `option=False` (a YAML key only: the command sets it its own way)."""
    return dataclasses.field(default=default, metadata={"help": help, **option})


def _hint(cls: type, name: str) -> Any:
    return typing.get_type_hints(cls)[name]


def _scalar(hint: Any) -> type:
    """The value type of a field: X of `X | None`, else str when the hint is not a plain type."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    kind = args[0] if args and typing.get_origin(hint) is not tuple else hint
    return kind if kind in (bool, int, float, str) else str


def _number_tuple(value: Any, n: int, name: str) -> tuple[float, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    try:
        out = tuple(float(v) for v in items)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: expected {n} comma-separated numbers, got {value!r}") from None
    if len(out) != n:
        raise ConfigError(f"{name}: expected {n} numbers, got {len(out)} ({value!r})")
    return out


def _list(value: Any, kind: type, name: str) -> tuple[Any, ...]:
    items = [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else list(value)
    try:
        return tuple(kind(v) for v in items)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: expected a comma list of {kind.__name__}, got {value!r}") from None


def coerce(cls: type, name: str, value: Any) -> Any:
    """One setting converted to its field's type (comma lists and YAML lists to tuples) and checked
    against its `choices` and `min`/`max`, or a ConfigError naming the key."""
    meta = next(f for f in dataclasses.fields(cls) if f.name == name).metadata
    value = _typed(cls, name, value)
    items = value if isinstance(value, tuple) else (value,)
    if value is not None and "choices" in meta and any(v not in meta["choices"] for v in items):
        raise ConfigError(f"{name}: expected {' or '.join(meta['choices'])}, got {value!r}")
    low, high = meta.get("min"), meta.get("max")
    if value is not None and ((low is not None and value < low) or (high is not None and value > high)):
        raise ConfigError(f"{name}: expected a number in [{low}, {'...' if high is None else high}], got {value!r}")
    return value


def _typed(cls: type, name: str, value: Any) -> Any:
    """One setting converted to its field's type (a `parse` field through its parser)."""
    hint = _hint(cls, name)
    parse = next(f for f in dataclasses.fields(cls) if f.name == name).metadata.get("parse")
    if parse is not None and value is not None:
        try:
            return parse(value if isinstance(value, str) else ",".join(str(v) for v in value))
        except FiagenError as err:
            raise ConfigError(f"{name}: {err}") from None
    if typing.get_origin(hint) is tuple:
        args = typing.get_args(hint)
        if args[-1] is Ellipsis:
            return _list(value, args[0], name)
        return _number_tuple(value, len(args), name)
    if value is None:
        return None
    kind = _scalar(hint)
    try:
        if kind is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "yes", "no", "1", "0"):
                    raise ValueError(value)
                return value.lower() in ("true", "yes", "1")
            return bool(value)
        if kind is int and isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: expected {kind.__name__}, got {value!r}") from None


def read_yaml(cls: type, path: str | Path, command: str, ignore: tuple[str, ...] = ()) -> dict[str, Any]:
    """Settings of `cls` from a YAML mapping (keys as in `fiagen COMMAND --help`, dashes or underscores),
    checked and typed; keys in `ignore` are skipped (derived values a printed config shows)."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"cannot read config {p}: {message_line(err)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config {p} must be a mapping of option: value")
    names = {f.name for f in dataclasses.fields(cls)}
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name in ignore:
            continue
        if name not in names:
            raise ConfigError(f"config {p}: unknown key {key!r} (see fiagen {command} --help)")
        out[name] = coerce(cls, name, value)
    return out


def merged(cls: type, given: Mapping[str, Any], config_file: str | None, command: str) -> dict[str, Any]:
    """The values of a config file overridden by the options given on the command line, typed."""
    values = read_yaml(cls, config_file, command) if config_file else {}
    values.update({k: coerce(cls, k, v) for k, v in given.items()})
    return values


def plain(cfg: Any) -> dict[str, Any]:
    """A config's values as YAML/JSON-safe data (tuples as lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}


def to_yaml(values: Mapping[str, Any]) -> str:
    """Settings as the YAML text `--dry-run` prints and `--config` reads: one line per key, lists and
    nested mappings inline."""
    return "".join(yaml.safe_dump({k: v}, sort_keys=False, default_flow_style=None if isinstance(v, (list, dict))
                                  else False) for k, v in values.items())


def _option(f: dataclasses.Field, hint: Any) -> Callable:
    """The click option of one config field."""
    import click

    meta, flag, default = f.metadata, "--" + f.name.replace("_", "-"), f.default
    names = [*([meta["short"]] if "short" in meta else []), flag, f.name]
    required = " Required (here or in the --config file)." if meta.get("required") else ""
    kwargs: dict[str, Any] = {"default": default, "help": meta["help"] + required}
    kind = _scalar(hint)
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
        kwargs["type"] = click.Path(file_okay=not meta.get("folder"), dir_okay=not meta.get("file"))
    elif kind in (int, float):
        kwargs["type"] = kind
    if meta.get("output"):
        kwargs["callback"] = output_folder
    return click.option(*names, **kwargs)


def _comma_choices(choices: tuple[str, ...]) -> Callable:
    import click

    def callback(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
        names = tuple(s.strip() for s in value.split(",") if s.strip())
        if not names or any(s not in choices for s in names):
            raise click.BadParameter(f"expected a comma list of {', '.join(choices)}; got {value!r}")
        return names

    return callback


def _parsed(parse: Callable[[str], Any]) -> Callable:
    import click

    def callback(ctx: click.Context, param: click.Parameter, value: str) -> Any:
        try:
            return parse(value)
        except FiagenError as err:
            raise click.BadParameter(str(err)) from None

    return callback


def output_folder(ctx: Any, param: Any, value: str | None) -> str | None:
    """An output folder option: one error line, not click's usage block, when it names a file."""
    from fiagen.outputs import check_output_folder

    return value if value is None else str(check_output_folder(Path(value)))


def click_options(cls: type) -> Callable[[Callable], Callable]:
    """A decorator adding `--config FILE`, `--dry-run` and one option per field of `cls` to a click command."""
    import click

    def decorate(func: Callable) -> Callable:
        hints = typing.get_type_hints(cls)
        for f in reversed(dataclasses.fields(cls)):
            if f.metadata.get("option", True):
                func = _option(f, hints[f.name])(func)
            if "alias" in f.metadata:
                func = click.option(f.metadata["alias"], f.name + ALIAS, hidden=True, default=None,
                                    type=_scalar(hints[f.name]))(func)
        func = click.option("--dry-run", is_flag=True, help="Print the resolved config (YAML) and exit.")(func)
        return click.option("--config", "config_file", default=None, type=click.Path(dir_okay=False, exists=True),
                            help="YAML file of options (keys as below, dashes or underscores); command-line "
                                 "options override it.")(func)

    return decorate


def given(ctx: Any, opts: Mapping[str, Any]) -> dict[str, Any]:
    """The options the user gave on the command line (not left at their defaults); an old spelling
    (`alias`) counts as its new one, with a deprecation line."""
    import click
    from click.core import ParameterSource

    out = {}
    for key, value in opts.items():
        if ctx.get_parameter_source(key) is ParameterSource.DEFAULT:
            continue
        if key.endswith(ALIAS):
            key = key[:-len(ALIAS)]
            click.echo(f"fiagen: warning: --{_flag(ctx, key + ALIAS)} is deprecated and goes in the next release; "
                       f"use --{key.replace('_', '-')}", err=True)
        out[key] = value
    return out


def _flag(ctx: Any, dest: str) -> str:
    return next(p.opts[0] for p in ctx.command.params if p.name == dest).lstrip("-")


def resolve(cls: type, ctx: Any, opts: Mapping[str, Any], config_file: str | None, **fixed: Any) -> Any:
    """A command's config: defaults < the --config file < the options given (< `fixed`); a `required`
    field set by neither is click's one-line usage error."""
    import click

    values = {**merged(cls, given(ctx, opts), config_file, ctx.info_name), **fixed}
    for f in dataclasses.fields(cls):
        if f.metadata.get("required") and values.get(f.name) is None:
            raise click.UsageError(f"Missing option '--{f.name.replace('_', '-')}'.", ctx)
    return cls(**values)


def printed(cfg: Any, dry_run: bool) -> bool:
    """With --dry-run, print the resolved config (YAML, itself a valid --config file) and say so."""
    import click

    if dry_run:
        click.echo(to_yaml(plain(cfg)), nl=False)
    return dry_run


def stage_command(group: Any, cls: type) -> Callable[[Callable], Any]:
    """A command of `group` whose settings are the dataclass `cls` (its options, --config, --dry-run); the
    decorated function gets the resolved config."""
    import click

    def decorate(fn: Callable) -> Any:
        def command(ctx: click.Context, config_file: str | None, dry_run: bool, **opts: Any) -> None:
            cfg = resolve(cls, ctx, opts, config_file)
            if not printed(cfg, dry_run):
                fn(cfg)

        return group.command(fn.__name__, help=fn.__doc__)(click.pass_context(click_options(cls)(command)))

    return decorate
