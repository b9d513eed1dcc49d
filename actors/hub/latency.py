"""Push-to-talk latency: marks set along the way (SPEC.md 12.6) and the spans derived from them."""

from __future__ import annotations

SPANS: dict[str, tuple[str, str]] = {
    "release_to_submit": ("key_up", "submitted"),
    "queue": ("received", "dispatched"),
    "transcribe": ("dispatched", "completed"),
    "release_to_result": ("key_up", "completed"),
    "deliver": ("completed", "delivered"),
    "release_to_text": ("key_up", "delivered"),
}
"""Derived latency name -> (from mark, to mark)."""


def derive(marks: dict[str, float]) -> dict[str, float]:
    """Every span whose two marks are present, in seconds rounded to the millisecond, and
    `busy_at_key_up` (1.0 or 0.0, SPEC.md 12.6) when the scheduler set it."""
    latency = {
        name: round(marks[end] - marks[start], 3)
        for name, (start, end) in SPANS.items()
        if start in marks and end in marks
    }
    if "busy_at_key_up" in marks:
        latency["busy_at_key_up"] = marks["busy_at_key_up"]
    return latency
