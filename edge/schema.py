"""Typed, validated loading of nested dicts (YAML, ONNX metadata) into frozen dataclasses.

Each dataclass field may carry `metadata={"check": fn, "doc": "..."}`; `fn(value)` returns an
error text or None. Loading rejects unknown keys, wrong types and failed checks with an InputError
naming the file, the dotted key path and what was expected.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Literal, Mapping

from .errors import InputError


def rng(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False):
    """A check that a number lies in [lo, hi] (or (lo, hi] when lo_open)."""

    def check(v):
        if lo is not None and (v <= lo if lo_open else v < lo):
            return f"a number {'>' if lo_open else '>='} {lo}" + (f" and <= {hi}" if hi is not None else "")
        if hi is not None and v > hi:
            return f"a number <= {hi}" + (f" and >= {lo}" if lo is not None else "")
        return None

    return check


def field(default=dataclasses.MISSING, *, check=None, doc: str = "", factory=None):
    meta = {"check": check, "doc": doc}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _describe(tp) -> str:
    origin = typing.get_origin(tp)
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is str:
        return "a string"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return " or ".join(_describe(a) for a in args) + " or null"
    if origin is tuple:
        items = typing.get_args(tp)
        return f"a list of {len(items)} " + _describe(items[0]).removeprefix("an ").removeprefix("a ") + "s"
    if origin is list:
        return "a list of " + _describe(typing.get_args(tp)[0]).removeprefix("an ").removeprefix("a ") + "s"
    if origin is dict:
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return str(tp)


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _convert(tp, value, where: str, key: str):
    if tp is Any:  # free-form parts (reports), kept as they are
        return value
    if isinstance(value, float) and not math.isfinite(value):  # NaN passes every range check: no comparison is true
        raise InputError(where, key, f"expected a finite number, got {value}")
    origin = typing.get_origin(tp)
    fail = InputError(where, key, f"expected {_describe(tp)}, got {_short(value)}")
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(a, value, where, key)
            except InputError:
                continue
        raise fail
    if origin is Literal:
        if value in typing.get_args(tp):
            return value
        raise fail
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise fail
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise fail
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise fail
    if tp is str:
        if isinstance(value, str):
            return value
        raise fail
    if tp is dict:
        if isinstance(value, Mapping):
            return dict(value)
        raise fail
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise fail
        return tuple(_convert(a, v, where, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin is list:
        (a,) = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise fail
        return [_convert(a, v, where, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        _, vt = typing.get_args(tp)
        if not isinstance(value, Mapping):
            raise fail
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise InputError(where, key, f"expected string keys, got {_short(k)}")
            out[k] = _convert(vt, v, where, f"{key}.{k}" if key else k)
        return out
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise fail
        return load(tp, value, where, key)
    raise TypeError(f"schema type not supported: {tp}")


def load(cls, data: Mapping | None, where: str, prefix: str = ""):
    """Build dataclass `cls` from `data`, validating every key. `where` names the file."""
    data = {} if data is None else data
    if not isinstance(data, Mapping):
        raise InputError(where, prefix or None, f"expected a mapping, got {_short(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for k in data:
        if k not in fields:
            known = ", ".join(sorted(fields))
            raise InputError(where, f"{prefix}.{k}" if prefix else str(k), f"unknown key (expected one of: {known})")
    kwargs = {}
    for name, f in fields.items():
        key = f"{prefix}.{name}" if prefix else name
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise InputError(where, key, f"missing; expected {_describe(hints[name])}")
            continue
        value = _convert(hints[name], data[name], where, key)
        check = f.metadata.get("check")
        if check is not None and value is not None:
            problem = check(value)
            if problem:
                raise InputError(where, key, f"expected {problem}, got {_short(data[name])}")
        kwargs[name] = value
    obj = cls(**kwargs)
    post = getattr(obj, "validate", None)
    if post is not None:
        post(where, prefix)
    return obj


def merge(base: Mapping, override: Mapping) -> dict:
    """Deep-merge two raw dicts: keys in `override` win, nested mappings merge key by key."""
    out = dict(base)
    for k, v in override.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def to_dict(obj) -> Any:
    """A dataclass tree back to plain dicts/lists (for metadata and reports)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj
