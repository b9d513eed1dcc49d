"""Push-to-talk family: requests to the audio actor's `ptt` endpoint (SPEC.md 16.2)."""

from __future__ import annotations

from dataclasses import dataclass

from protocol.records import Record

PTT_ACTIONS = ("start", "stop", "toggle", "cancel", "status")


@dataclass(frozen=True)
class Ptt(Record):
    """Start, stop, toggle or cancel a recording, or ask for its state."""

    TYPE = "ptt"
    action: str
    """One of PTT_ACTIONS."""
    at: float = 0.0
    """When the user acted (epoch seconds); 0: on receipt."""
    origin: str = "cli"
    """hotkey or cli."""
    reason: str = ""
    """For cancel: why (tap: released before the minimum hold)."""
