"""Requests to members' own endpoints: the audio actor's `ptt` (SPEC.md 12.2) and the
watcher's `watch` (SPEC.md 13.2)."""

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


WATCH_ACTIONS = ("status", "add", "remove")


@dataclass(frozen=True)
class Watch(Record):
    """List the watched folders and their files, or add or remove a folder."""

    TYPE = "watch"
    action: str
    """One of WATCH_ACTIONS."""
    path: str = ""
    """For add and remove: an absolute folder path."""
