"""The push-to-talk hotkey as a state machine: key presses and releases in, PTT actions out.

Pure logic, no keyboard access (actors/ptt/hotkey.py feeds it from pynput), so it is tested on
its own. Key autorepeat shows up as repeated presses of a key that is already down; those
never change anything. `hold` starts on the press that completes the combination and stops
on the release of any of its keys; a hold shorter than `min_hold_s` is cancelled as a tap
instead of stopped. `toggle` sends `toggle` on every completion and lets the audio actor,
which knows whether it records (a CLI stop, a cap, a refused start), decide.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MODIFIER_ALIASES = {
    "ctrl": "ctrl",
    "control": "ctrl",
    "ctrl_l": "ctrl",
    "ctrl_r": "ctrl",
    "shift": "shift",
    "shift_l": "shift",
    "shift_r": "shift",
    "alt": "alt",
    "alt_l": "alt",
    "alt_r": "alt",
    "alt_gr": "alt",
    "cmd": "super",
    "cmd_l": "super",
    "cmd_r": "super",
    "super": "super",
    "win": "super",
    "meta": "super",
}
MODES = ("hold", "toggle")


def canonical(name: str) -> str:
    """One spelling per key: modifiers without side, everything lower case."""
    name = name.strip().lower()
    return MODIFIER_ALIASES.get(name, name)


def parse_combo(text: str) -> frozenset[str]:
    """`ctrl+space` -> {"ctrl", "space"}; raises ValueError for an empty part."""
    parts = [p.strip() for p in text.split("+")]
    if not parts or any(not p for p in parts):
        raise ValueError(f"hotkey {text!r}: expected keys joined by +, e.g. ctrl+space")
    return frozenset(canonical(p) for p in parts)


@dataclass(frozen=True)
class Action:
    """A PTT action to send (protocol/ptt.py)."""

    action: str  # start, stop, cancel or toggle
    at: float
    reason: str = ""


@dataclass
class HotkeyMachine:
    combo: frozenset[str]
    mode: str = "hold"
    min_hold_s: float = 0.15
    down: set[str] = field(default_factory=set)
    recording_since: float | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"hotkey mode must be hold or toggle, not {self.mode!r}")

    def press(self, key: str, at: float) -> list[Action]:
        key = canonical(key)
        if key in self.down:  # autorepeat
            return []
        was_complete = self.combo <= self.down
        self.down.add(key)
        if was_complete or not self.combo <= self.down:
            return []
        if self.mode == "toggle":
            return [Action("toggle", at)]
        if self.recording_since is None:
            self.recording_since = at
            return [Action("start", at)]
        return []

    def release(self, key: str, at: float) -> list[Action]:
        key = canonical(key)
        if key not in self.down:
            return []
        self.down.discard(key)
        if self.mode == "hold" and key in self.combo and self.recording_since is not None:
            return [self._end(at)]
        return []

    def _end(self, at: float) -> Action:
        started = self.recording_since
        assert started is not None
        self.recording_since = None
        if at - started < self.min_hold_s:
            return Action("cancel", at, reason="tap")
        return Action("stop", at)
