"""The two shapes of a control reply the hub builds (SPEC.md, "Control": every reply says
what to do next)."""

from __future__ import annotations

from typing import Any

from protocol.control import Reply
from protocol.errors import ErrorCode


def ok(**data: Any) -> Reply:
    return Reply(status="ok", data=data)


def error(code: ErrorCode, reason: str) -> Reply:
    return Reply(status="error", code=code, reason=reason)
