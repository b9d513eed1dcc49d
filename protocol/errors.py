"""The one table of error codes carried by `error` replies (SPEC.md, "Errors")."""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Why a request failed; clients branch on the code, people read the reason."""

    BAD_FRAME = "bad_frame"  # not msgpack, or not a map, or envelope fields missing
    UNSUPPORTED_VERSION = "unsupported_version"  # envelope `v` is not ours
    UNKNOWN_TYPE = "unknown_type"  # a message type this actor does not serve
    BAD_MESSAGE = "bad_message"  # body fields missing or of the wrong type
    INVALID_ARGUMENT = "invalid_argument"  # well-typed but meaningless (bad priority, ...)
    NOT_FOUND = "not_found"  # no such job
    INVALID_STATE = "invalid_state"  # e.g. resuming a completed job
    NOT_READY = "not_ready"  # e.g. result of a job that has not completed
    DECODE_FAILED = "decode_failed"  # the file is not usable audio
    MODEL_UNAVAILABLE = "model_unavailable"  # the transcriber could not load its model
    CHUNK_FAILED = "chunk_failed"  # the model raised on a chunk
    DEVICE_UNAVAILABLE = "device_unavailable"  # ptt start while the microphone is down
    INTERNAL = "internal"  # a bug; the reason says where


class ProtocolError(Exception):
    """A message that cannot be accepted; carries the code to reply with."""

    def __init__(self, code: ErrorCode, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason
