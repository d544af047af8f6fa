"""One way from a stage's settings dataclass to its command line and its YAML files.

Each field of a stage's config (`TrainConfig`, `PrecomputeConfig`) is declared with `setting(default,
help, ...)`. From the dataclass come the click options (one per field: name, default, help, type),
the keys a `--config FILE` may hold (dashes or underscores), the typed values read from YAML or the
command line, and the YAML that `--dry-run` prints (readable again by `--config`). Precedence, lowest
first: the defaults, the config file, the options given on the command line. The click side (options,
`--config`, `--dry-run`) is `fiagen/cli/options.py`.
"""

from __future__ import annotations

import dataclasses
import logging
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from fiagen.core.errors import FiagenError, message_line


class ConfigError(FiagenError):
    """A config file or option value that cannot be used; the message names the key."""


def setting(default: Any, help: str, **option: Any) -> Any:
    """A config field: its default, its --help text and what its option checks beyond the field's type:
    `min`/`max` (number bounds), `choices` (of a text, or of each item of a comma list), `parse` (text
    -> value, raising FiagenError: for the option and for YAML), `folder`/`file` (a path that must not
    be a file / a folder), `output` (an output folder: one error line when it is a file), `flag` (an
    on-switch without a --no- form), `short` (e.g. "-n"), `required` (on the command line or in the
    file), `alias` (an old spelling, hidden, kept for one release with a deprecation line),
    `option=False` (a YAML key only: the command sets it its own way), `section` (a nested mapping of
    YAML: mapping -> checked plain mapping, raising FiagenError; with option=False)."""
    return dataclasses.field(default=default, metadata={"help": help, **option})


def seed_setting(what: str) -> Any:
    """The `seed` field: one meaning in every command (the root of each random choice it makes; a
    pseudo-fake is a function of (seed, index, epoch) wherever it is drawn); `what` lists the choices."""
    return setting(0, f"Root seed of this command's random choices: {what}. The same seed draws the same "
                      f"pseudo-fakes in train, preview, generate and evaluate pseudo:.", min=0)


def _hint(cls: type, name: str) -> Any:
    return typing.get_type_hints(cls)[name]


def value_type(hint: Any) -> type:
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
    meta = next(f for f in dataclasses.fields(cls) if f.name == name).metadata
    if "section" in meta:
        if value is not None and not isinstance(value, Mapping):
            raise ConfigError(f"{name}: expected a mapping of key: value, got {value!r}")
        try:
            return meta["section"](value)
        except FiagenError as err:
            raise ConfigError(str(err)) from None
    parse = meta.get("parse")
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
    kind = value_type(hint)
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
    return from_mapping(cls, data, f"config {p}", command, ignore)


def _old_keys(cls: type) -> dict[str, str]:
    """{old spelling: field} of the fields of `cls` with an `alias` (YAML keys, underscores)."""
    return {key_name(f.metadata["alias"].lstrip("-")): f.name
            for f in dataclasses.fields(cls) if "alias" in f.metadata}


def key_name(key: Any) -> str:
    """A YAML key or option name as its field name: dashes and underscores are the same key."""
    return str(key).replace("-", "_")


def underscored(data: Mapping[Any, Any]) -> dict[str, Any]:
    """`data` with every key as its field name (`key_name`)."""
    return {key_name(k): v for k, v in data.items()}


def from_mapping(cls: type, data: Mapping[Any, Any], where: str, command: str, ignore: tuple[str, ...] = (),
                 noun: str = "key") -> dict[str, Any]:
    """Settings of `cls` from a mapping of option: value (dashes or underscores), checked and typed; an old
    spelling counts as its new one with a deprecation line; an unknown key is a ConfigError naming `where`."""
    names, old = {f.name for f in dataclasses.fields(cls)}, _old_keys(cls)
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = key_name(key)
        if name in ignore:
            continue
        if name in old and name not in names:
            deprecated(f"{where}: key '{key}'", f"'{old[name]}'")
            name = old[name]
        if name not in names:
            raise ConfigError(f"{where}: unknown {noun} {key!r} (see fiagen {command} --help)")
        out[name] = coerce(cls, name, value)
    return out


def deprecated(what: str, use: str) -> None:
    """The deprecation line of an old spelling (`what`) and its new one (`use`): a warning of the fiagen log."""
    logging.getLogger("fiagen.core.settings").warning("%s is deprecated and goes in the next release; use %s",
                                                      what, use)


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
