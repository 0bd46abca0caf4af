"""One dataclass config per entry point: defaults -> `--config file.yaml` -> CLI flags.

    parser = build_parser(TokenizeConfig, prog="rephraser tokenize")
    cfg = resolve(TokenizeConfig, parser.parse_args(argv))
    save_config(cfg, out_dir / "config.yaml")

Flags are generated from the dataclass fields (`max_seq_len` -> `--max-seq-len`, and `--max_seq_len` as
accelerate and lm-eval users type it). A field's help text is the string right under it (litgpt's args.py style:
one setting a line, its help as the docstring under it) or its `metadata["help"]`; the default is appended.
`metadata["flags"]` adds aliases (e.g. `--in`):

    @dataclass
    class TokenizeConfig:
        max_seq_len: int = 1536
        '''longest sample kept, in tokens (padded width)'''

A YAML file's values are checked against
the field types exactly as argparse checks flags (a string "no" is not a boolean): unknown keys and values
of the wrong type are errors naming the file and the key. Validation of values lives in each config's
`__post_init__`, which raises `ConfigError` naming the field.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import os
import textwrap
import types
import typing
from pathlib import Path

import yaml

from rephraser.atomic import publish, temp_beside
from rephraser.errors import ConfigError

_MISSING = dataclasses.MISSING


def _flags(name: str) -> list[str]:
    dashed = "--" + name.replace("_", "-")
    return [dashed] if "_" not in name else [dashed, "--" + name]


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
    if origin is dict:
        return dict, None, False
    return tp, None, False


def _optional(tp) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in typing.get_args(tp)


def _default_text(f: dataclasses.Field) -> str:
    if f.default is not _MISSING:
        return f"default: {f.default!r}" if f.default is not None else "default: none"
    if f.default_factory is not _MISSING:
        return "default: computed"
    return "required"


@functools.cache
def field_docs(cls) -> dict[str, str]:
    """The string under each field of a dataclass (attribute docstrings; Python keeps none at run time)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):  # no source (built at run time): metadata help only
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, after in zip(body, body[1:]):
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                if isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant):
                    if isinstance(after.value.value, str):
                        docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def field_help(cls, f: dataclasses.Field) -> str:
    return f.metadata.get("help") or field_docs(cls).get(f.name, "")


def build_parser(cls, prog: str | None = None, description: str | None = None) -> argparse.ArgumentParser:
    """An argparse parser with one flag per field. Values not given stay absent (SUPPRESS), so a
    YAML file's values are overridden only by flags the user actually typed."""
    parser = argparse.ArgumentParser(prog=prog, description=description or (cls.__doc__ or "").strip())
    parser.add_argument("--config", help="YAML file with field values; CLI flags override it")
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.metadata.get("cli") is False:
            continue
        base, choices, is_list = _field_kind(hints[f.name])
        flags = (*_flags(f.name), *f.metadata.get("flags", ()))
        help_text = f"{field_help(cls, f)} ({_default_text(f)})".strip()
        kwargs = dict(dest=f.name, default=argparse.SUPPRESS, help=help_text.replace("%", "%%"))
        if base is bool:
            parser.add_argument(*flags, action=argparse.BooleanOptionalAction, **kwargs)
            continue
        if base is dict:  # structured settings (a list of conditions, training options) live in --config files
            continue
        kwargs.update(type=base, choices=choices)
        if is_list:
            kwargs["nargs"] = "+"
        parser.add_argument(*flags, **kwargs)
    return parser


def check_type(cls, name: str, value, where: str):
    """A value from a YAML file (or a dict) against the field's annotation, as argparse would check a
    flag: bool must be a YAML boolean, int an integer, float a number; a scalar for a list field becomes
    a one-element list. Returns the value (int -> float where a float is expected)."""
    tp = typing.get_type_hints(cls)[name]
    if value is None:
        if _optional(tp):
            return None
        raise ConfigError(f"{where}: {name}: null is not allowed")
    base, choices, is_list = _field_kind(tp)
    if is_list:
        values = value if isinstance(value, list) else [value]
        return [_check_scalar(name, v, base, choices, where) for v in values]
    return _check_scalar(name, value, base, choices, where)


def _check_scalar(name: str, value, base: type, choices, where: str):
    ok = {
        bool: lambda v: isinstance(v, bool),
        int: lambda v: isinstance(v, int) and not isinstance(v, bool),
        float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        str: lambda v: isinstance(v, str),
        dict: lambda v: isinstance(v, dict),
    }.get(base, lambda v: isinstance(v, base))
    if not ok(value):
        hint = " (write true or false, unquoted)" if base is bool else ""
        raise ConfigError(f"{where}: {name}: expected {base.__name__}, got {type(value).__name__} {value!r}{hint}")
    if choices is not None and value not in choices:
        raise ConfigError(f"{where}: {name}: {value!r} is not one of {list(choices)}")
    return float(value) if base is float else value


def load_yaml(path: str | os.PathLike, cls) -> dict:
    """Field values from a YAML mapping; unknown keys, wrong types and non-mappings are errors naming the file."""
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
    return {key: check_type(cls, key, value, str(path)) for key, value in data.items()}


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
        flags = ", ".join(_flags(m)[0] for m in missing)
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


def check_positive(name: str, value, allow_zero: bool = False, maximum: int | None = None) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < (0 if allow_zero else 1):
        raise ConfigError(f"{name}: expected a {'non-negative' if allow_zero else 'positive'} integer, got {value!r}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name}: {value} is larger than the supported maximum {maximum}")


def differences(before, now, where: str = "") -> list[str]:
    """What changed between a saved configuration (or run record) and the current one, for a resume refusal:
    ["lr: 2e-05 there, 0.001 now", "data[0].sha256: ...", ...], nested keys dotted."""
    if isinstance(before, dict) and isinstance(now, dict):
        return [
            d
            for key in sorted(set(before) | set(now), key=str)
            for d in differences(before.get(key), now.get(key), f"{where}.{key}" if where else str(key))
        ]
    if isinstance(before, list) and isinstance(now, list) and len(before) == len(now):
        return [d for i, (a, b) in enumerate(zip(before, now)) for d in differences(a, b, f"{where}[{i}]")]
    return [] if before == now else [f"{where}: {_short(before)} there, {_short(now)} now"]


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
