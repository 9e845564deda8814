"""YAML and JSON files (training recipes, the curation config, pipeline.json) turned into typed, validated
frozen dataclasses.

Nested dataclasses are built from nested mappings; an unknown key or a value of the wrong type is
one clear error naming its place in the file (e.g. `stages[1].steps`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from pathlib import Path
from typing import TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A YAML file that does not describe a valid configuration."""


def _build(tp: object, value: object, where: str) -> object:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _build(inner[0], value, where)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where or 'the file'} must be a mapping, got {value!r}")
        return from_dict(tp, value, where)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        return [_build(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        item = args[0] if len(args) == 2 and args[1] is Ellipsis else None
        return tuple(_build(item or args[i], v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where} must be one of {list(args)}, got {value!r}")
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{where} must be a {tp.__name__}, got {value!r}")
    return value


def from_dict(cls: type[T], data: dict, where: str = "") -> T:
    """Build dataclass `cls` from a mapping, recursively, rejecting unknown keys."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in {where or 'the file'}; expected some of {sorted(fields)}")
    kwargs = {k: _build(hints[k], v, f"{where}.{k}" if where else k) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as e:  # a required field is missing
        raise ConfigError(f"{where or 'the file'}: {e}") from None
    except ValueError as e:  # __post_init__ validation
        raise ConfigError(f"{where or 'the file'}: {e}") from None


def load_yaml(cls: type[T], path: str | os.PathLike, what: str = "recipe") -> T:
    """Read a YAML file, or a JSON file by its `.json` suffix, into dataclass `cls`; `what` names the
    file in errors ("recipe", "curation config", "pipeline file").

    (JSON is read as JSON: PyYAML reads YAML 1.1, where a float that `json.dumps` writes as 1e-05 is a
    string.)
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no {what} at {p}")
    try:
        data = json.loads(p.read_text()) if p.suffix == ".json" else yaml.safe_load(p.read_text()) or {}
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise ConfigError(f"{p} is not valid {'JSON' if p.suffix == '.json' else 'YAML'}: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p} must hold a mapping of {what} fields, got {type(data).__name__}")
    try:
        return from_dict(cls, data)
    except ConfigError as e:
        raise ConfigError(f"{p}: {e}") from None
