"""Base class for message records: strict typed decoding from wire maps, tolerant of extras.

A record is a frozen dataclass whose fields are plain wire types (int, float, str, bytes,
bool, list, dict, None). `from_wire` checks every declared field against its annotation and
ignores fields it does not know, so a newer peer can add fields without breaking us.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, ClassVar, Self

from protocol.errors import ErrorCode, ProtocolError

_MISSING = dataclasses.MISSING


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp)


def _check(value: Any, tp: Any, where: str) -> Any:
    """Return `value` if it matches annotation `tp`, else raise ProtocolError."""
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in typing.get_args(tp):
            try:
                return _check(value, option, where)
            except ProtocolError as exc:
                errors.append(exc.reason)
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"{where}: expected {tp}, got {type(value).__name__}")
    if tp is type(None):
        if value is None:
            return None
    elif origin is list:
        if isinstance(value, list | tuple):
            (item,) = typing.get_args(tp) or (Any,)
            return [_check(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    elif origin is dict:
        if isinstance(value, dict):
            key_tp, val_tp = typing.get_args(tp) or (Any, Any)
            return {_check(k, key_tp, where): _check(v, val_tp, f"{where}.{k}") for k, v in value.items()}
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp in (str, bytes, bool):
        if isinstance(value, tp):
            return value
    elif tp is list:
        if isinstance(value, list | tuple):
            return list(value)
    elif tp is dict:
        if isinstance(value, dict):
            return value
    else:  # a nested record
        if isinstance(value, dict) and hasattr(tp, "from_wire"):
            return tp.from_wire(value)
    raise ProtocolError(
        ErrorCode.BAD_MESSAGE,
        f"{where}: expected {_type_name(tp)}, got {type(value).__name__}",
    )


class Record:
    """A message body. Subclasses are frozen dataclasses and set TYPE to their wire name."""

    TYPE: ClassVar[str] = ""

    @classmethod
    def from_wire(cls, data: Any) -> Self:
        """Build from a decoded msgpack map, checking every known field's type."""
        if not isinstance(data, dict):
            raise ProtocolError(ErrorCode.BAD_MESSAGE, f"{cls.TYPE or cls.__name__}: body is not a map")
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):  # type: ignore[arg-type]
            where = f"{cls.TYPE or cls.__name__}.{field.name}"
            if field.name in data:
                values[field.name] = _check(data[field.name], hints[field.name], where)
            elif field.default is _MISSING and field.default_factory is _MISSING:
                raise ProtocolError(ErrorCode.BAD_MESSAGE, f"{where}: required field missing")
        return cls(**values)

    def to_wire(self) -> dict[str, Any]:
        """The msgpack-ready map of this record (nested records become maps)."""
        return {f.name: _to_wire(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]


def _to_wire(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_wire()
    if isinstance(value, list | tuple):
        return [_to_wire(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_wire(v) for k, v in value.items()}
    return value
