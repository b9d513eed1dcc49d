"""The one codec: records <-> msgpack frames inside a versioned envelope (SPEC.md, "Envelope").

A frame is a msgpack map: {v, type, id, parent, sender, time, body}. `decode` raises
ProtocolError (never anything else) for any frame it cannot accept, so an actor can answer
with an error and keep serving. No pickle, no code execution: msgpack maps of plain types.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import msgpack

from protocol.control import REQUESTS, Reply
from protocol.errors import ErrorCode, ProtocolError
from protocol.events import Event
from protocol.ptt import Ptt, Watch
from protocol.records import Record
from protocol.work import WORK_MESSAGES

PROTOCOL_VERSION = 1
MAX_FRAME_BYTES = 256 * 1024 * 1024  # a 30 s chunk is ~1 MB; a 5 min utterance ~10 MB
MAX_NESTING = 32
"""Arrays and maps nested deeper than this (the envelope map is level 1) are refused: SVP's
own messages nest 7 deep, and what a receiver accepts it may encode again (an event, a reply,
JSON in the store), recursively: about 900 levels would exhaust Python's stack."""

_ALL: tuple[type[Record], ...] = (*REQUESTS, Reply, *WORK_MESSAGES, Event, Ptt, Watch)
TYPES: dict[str, type[Record]] = {cls.TYPE: cls for cls in _ALL}


def new_id() -> str:
    """A 16-hex-digit message id, unique enough for matching replies to requests."""
    return os.urandom(8).hex()


@dataclass(frozen=True)
class Envelope:
    """Header of every message."""

    type: str
    id: str
    parent: str
    """Id of the message this one answers, or ""."""
    sender: str
    time: float
    """Sender's wall clock, seconds since the epoch."""
    version: int = PROTOCOL_VERSION


def encode(record: Record, sender: str, parent: str = "", msg_id: str | None = None) -> bytes:
    """Pack `record` into one frame."""
    return msgpack.packb(
        {
            "v": PROTOCOL_VERSION,
            "type": record.TYPE,
            "id": msg_id or new_id(),
            "parent": parent,
            "sender": sender,
            "time": time.time(),
            "body": record.to_wire(),
        },
        use_bin_type=True,
    )


def decode_envelope(frame: bytes) -> tuple[Envelope, Any]:
    """Unpack the envelope and return it with the raw body; raises ProtocolError."""
    if len(frame) > MAX_FRAME_BYTES:
        raise ProtocolError(ErrorCode.BAD_FRAME, f"frame of {len(frame)} bytes is too large")
    try:
        data = msgpack.unpackb(frame, raw=False, strict_map_key=True, max_bin_len=MAX_FRAME_BYTES)
    except Exception as exc:  # msgpack raises many types for garbage input
        raise ProtocolError(ErrorCode.BAD_FRAME, f"not a msgpack frame ({type(exc).__name__})") from exc
    if not isinstance(data, dict):
        raise ProtocolError(ErrorCode.BAD_FRAME, "frame is not a msgpack map")
    if _nesting_exceeds(data, MAX_NESTING):
        raise ProtocolError(ErrorCode.BAD_FRAME, f"arrays and maps nested more than {MAX_NESTING} deep")
    version = data.get("v")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ProtocolError(ErrorCode.BAD_FRAME, "envelope field v (protocol version) missing")
    if version != PROTOCOL_VERSION:
        raise ProtocolError(
            ErrorCode.UNSUPPORTED_VERSION,
            f"protocol version {version} is not supported (this peer speaks {PROTOCOL_VERSION})",
        )
    header: dict[str, Any] = {}
    for name, tp in (("type", str), ("id", str), ("parent", str), ("sender", str)):
        value = data.get(name, "" if name == "parent" else None)
        if value is None and name == "parent":
            value = ""
        if not isinstance(value, tp):
            raise ProtocolError(ErrorCode.BAD_FRAME, f"envelope field {name} missing or not a string")
        header[name] = value
    stamp = data.get("time", 0.0)
    if not isinstance(stamp, int | float) or isinstance(stamp, bool):
        raise ProtocolError(ErrorCode.BAD_FRAME, "envelope field time is not a number")
    envelope = Envelope(time=float(stamp), version=version, **header)
    return envelope, data.get("body", {})


def _nesting_exceeds(data: Any, limit: int) -> bool:
    """True if arrays and maps in `data` nest more than `limit` deep (iteratively: no recursion)."""
    todo = [(data, 1)]
    while todo:
        value, depth = todo.pop()
        if depth > limit:
            return True
        children = value.values() if isinstance(value, dict) else value
        todo.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def decode(frame: bytes) -> tuple[Envelope, Record]:
    """Unpack a frame into its envelope and typed record; raises ProtocolError."""
    envelope, body = decode_envelope(frame)
    cls = TYPES.get(envelope.type)
    if cls is None:
        raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown message type {envelope.type!r}")
    return envelope, cls.from_wire(body)


def peek_id(frame: bytes) -> str:
    """Best-effort message id of a frame that failed to decode, for the error's parent."""
    if len(frame) > MAX_FRAME_BYTES:
        return ""
    try:
        data = msgpack.unpackb(frame, raw=False)
        value = data.get("id", "") if isinstance(data, dict) else ""
        return value if isinstance(value, str) else ""
    except Exception:
        return ""
