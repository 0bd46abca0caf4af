"""One dataclass config per entry point: defaults -> `--config file.yaml` -> CLI flags.

    parser = build_parser(TokenizeConfig, prog="rephraser tokenize")
    cfg = resolve(TokenizeConfig, parser.parse_args(argv))
    save_config(cfg, out_dir / "config.yaml")

Flags are generated from the dataclass fields (`max_seq_len` -> `--max-seq-len`); a field's
`metadata["help"]` is its help text and `metadata["flags"]` adds aliases (e.g. `--in`). Unknown keys
in a YAML file are an error naming the file and the key. Validation lives in each config's
`__post_init__`, which raises `ConfigError` naming the field.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import types
import typing
from pathlib import Path

import yaml

from rephraser.atomic import publish, temp_beside
from rephraser.errors import ConfigError

_MISSING = dataclasses.MISSING


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _field_kind(tp) -> tuple[type, tuple | None, bool]:
    """(base type, choices for a Literal, is_list) of an annotation like `int | None` or `Literal[...]`."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _field_kind(args[0])
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        return type(choices[0]), choices, False
    if origin in (list, tuple):
        base, choices, _ = _field_kind(typing.get_args(tp)[0])
        return base, choices, True
    return tp, None, False


def build_parser(cls, prog: str | None = None, description: str | None = None) -> argparse.ArgumentParser:
    """An argparse parser with one flag per field. Values not given stay absent (SUPPRESS), so a
    YAML file's values are overridden only by flags the user actually typed."""
    parser = argparse.ArgumentParser(prog=prog, description=description or (cls.__doc__ or "").strip())
    parser.add_argument("--config", help="YAML file with field values; CLI flags override it")
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        base, choices, is_list = _field_kind(hints[f.name])
        flags = (_flag(f.name), *f.metadata.get("flags", ()))
        kwargs = dict(dest=f.name, default=argparse.SUPPRESS, help=f.metadata.get("help"))
        if base is bool:
            parser.add_argument(*flags, action=argparse.BooleanOptionalAction, **kwargs)
            continue
        kwargs.update(type=base, choices=choices)
        if is_list:
            kwargs["nargs"] = "+"
        parser.add_argument(*flags, **kwargs)
    return parser


def load_yaml(path: str | os.PathLike, cls) -> dict:
    """Field values from a YAML mapping; unknown keys and non-mappings are errors naming the file."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"{path}: cannot read config: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must hold a mapping of field: value")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {unknown}; known keys: {sorted(known)}")
    return data


def resolve(cls, args: argparse.Namespace | dict):
    """Build the config: dataclass defaults, then the YAML named by `config`, then the given flags."""
    given = dict(vars(args) if isinstance(args, argparse.Namespace) else args)
    config_path = given.pop("config", None)
    values = load_yaml(config_path, cls) if config_path else {}
    values.update(given)
    missing = [
        f.name
        for f in dataclasses.fields(cls)
        if f.name not in values and f.default is _MISSING and f.default_factory is _MISSING
    ]
    if missing:
        flags = ", ".join(_flag(m) for m in missing)
        raise ConfigError(f"missing required field(s) {missing}: give {flags} or set them in --config")
    return cls(**values)


def save_config(cfg, path: str | os.PathLike) -> Path:
    """Write the resolved config as YAML, atomically (temp name, then rename)."""
    tmp = temp_beside(path)
    tmp.write_text(yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False, allow_unicode=True), encoding="utf-8")
    return publish(tmp, path)


def check_choice(name: str, value, choices) -> None:
    """For `__post_init__`: a value read from YAML bypasses argparse's choices."""
    if value not in choices:
        raise ConfigError(f"{name}: {value!r} is not one of {list(choices)}")


def check_positive(name: str, value, allow_zero: bool = False) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < (0 if allow_zero else 1):
        raise ConfigError(f"{name}: expected a {'non-negative' if allow_zero else 'positive'} integer, got {value!r}")
