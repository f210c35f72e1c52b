"""The SAIC API's replies decoded into the library's dataclasses at a fifteenth of dacite's cost.

saic-ismart-client-ng decodes every reply with `dacite.from_dict`, which resolves and checks each
field's annotation generically: 236 µs for a vehicle status, 151 µs for the charging data
(`bench.saic_decode`), about 10 % of the gateway's CPU at 1,000 cars. `from_dict` here builds one
decoder per dataclass from its type hints, once, and runs the common case (each value exactly of
its annotated type, None, nested dataclasses, lists) in straight-line code. Anything else, a string
where an int is annotated, a missing required field, an annotation it does not know, goes to dacite
itself, so that the result and the errors stay dacite's. tests/gateway/saic/test_decode.py compares
the two on every reply the test server gives.

`install()` swaps the `dacite` the library's API module calls for this one (the library has no
parameter for its decoder, as it has none for its HTTP client: see `gateway.saic.http`).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from typing import Any

import dacite
from saic_ismart_client_ng.api import base

type Decode = Callable[[Any], Any]

_SCALARS = frozenset({int, float, str, bool})
_decoders: dict[type, Decode | None] = {}
_OMIT = object()
"""A missing key of a field with a default: left out, so that the dataclass gives its default."""


class _NotPlain(Exception):
    """The value is not exactly of its annotated type: dacite decides what it becomes."""


class _Unsupported(Exception):
    """An annotation the fast path does not handle: that dataclass always goes to dacite."""


def from_dict[T](data_class: type[T], data: Any, config: dacite.Config | None = None) -> T:
    decode = None if config is not None else _decoder(data_class)
    if decode is not None:
        try:
            result: T = decode(data)
            return result
        except _NotPlain:
            pass
    return dacite.from_dict(data_class, data, config)


class _Dacite:
    """What the library's API module uses of the `dacite` module."""

    from_dict = staticmethod(from_dict)


def install() -> None:
    vars(base)["dacite"] = _Dacite


def _decoder(data_class: type) -> Decode | None:
    try:
        return _decoders[data_class]
    except KeyError:
        pass
    try:
        decode: Decode | None = _build_dataclass(data_class)
    except Exception:  # an annotation it does not know, or cannot resolve: dacite's to answer
        decode = None
    _decoders[data_class] = decode
    return decode


def _build_dataclass(data_class: type) -> Decode:
    if not dataclasses.is_dataclass(data_class):
        raise _Unsupported
    hints = typing.get_type_hints(data_class)
    # (name, decode, what a missing key gives: _OMIT for the field's own default, None, or _NotPlain)
    fields: list[tuple[str, Decode, object]] = []
    for field in dataclasses.fields(data_class):
        if not field.init:
            raise _Unsupported
        hint = hints[field.name]
        has_default = field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING
        missing = _OMIT if has_default else None if _is_optional(hint) else _NotPlain
        fields.append((field.name, _build(hint), missing))

    def decode(data: Any) -> Any:
        if type(data) is not dict:
            raise _NotPlain
        values = {}
        for name, decode_value, missing in fields:
            if name in data:
                values[name] = decode_value(data[name])
            elif missing is None:
                values[name] = None
            elif missing is _NotPlain:
                raise _NotPlain
        return data_class(**values)

    return decode


def _is_optional(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType) and types.NoneType in typing.get_args(hint)


def _build(hint: Any) -> Decode:
    if hint is Any:
        return _as_is
    if hint in _SCALARS:
        return _scalar(hint)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        # Built on first use: a dataclass may refer to one declared further down its module.
        return _nested(hint)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is list and len(args) == 1:
        return _list(_build(args[0]))
    if origin in (typing.Union, types.UnionType):
        return _union(args)
    raise _Unsupported


def _as_is(value: Any) -> Any:
    return value


def _scalar(kind: type) -> Decode:
    def decode(value: Any) -> Any:
        if type(value) is kind:
            return value
        raise _NotPlain

    return decode


def _nested(data_class: type) -> Decode:
    def decode(value: Any) -> Any:
        nested = _decoder(data_class)
        if nested is None:
            raise _NotPlain
        return nested(value)

    return decode


def _list(decode_item: Decode) -> Decode:
    def decode(value: Any) -> Any:
        if type(value) is not list:
            raise _NotPlain
        return [decode_item(item) for item in value]

    return decode


def _union(members: tuple[Any, ...]) -> Decode:
    may_be_none = types.NoneType in members
    others = [member for member in members if member is not types.NoneType]
    if len(others) == 1:
        decode_other = _build(others[0])

        def optional(value: Any) -> Any:
            return None if value is None and may_be_none else decode_other(value)

        return optional
    if all(member in _SCALARS for member in others):
        kinds = frozenset(others)

        def scalars(value: Any) -> Any:
            if type(value) in kinds or (value is None and may_be_none):
                return value
            raise _NotPlain

        return scalars
    raise _Unsupported
