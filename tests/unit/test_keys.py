"""HotkeyMachine: hold and toggle, autorepeat, taps, and the combination in any order."""

from __future__ import annotations

import pytest

from actors.ptt.hotkey import BackendUnavailable, choose_backend
from actors.ptt.keys import Action, HotkeyMachine, parse_combo


def hold(min_hold_s: float = 0.15) -> HotkeyMachine:
    return HotkeyMachine(parse_combo("ctrl+space"), mode="hold", min_hold_s=min_hold_s)


def test_parse_combo_canonical_names() -> None:
    assert parse_combo("Ctrl+Space") == {"ctrl", "space"}
    assert parse_combo("ctrl_r+shift_l+a") == {"ctrl", "shift", "a"}
    assert parse_combo("cmd+F9") == {"super", "f9"}
    with pytest.raises(ValueError, match="joined by"):
        parse_combo("ctrl++")


def test_hold_starts_on_completion_and_stops_on_release() -> None:
    m = hold()
    assert m.press("ctrl_l", 1.0) == []
    assert m.press("space", 1.1) == [Action("start", 1.1)]
    assert m.release("space", 3.0) == [Action("stop", 3.0)]
    assert m.release("ctrl_l", 3.1) == []


def test_hold_releasing_the_modifier_first_also_stops() -> None:
    m = hold()
    m.press("space", 0.0)
    assert m.press("ctrl_r", 0.5) == [Action("start", 0.5)]
    assert m.release("ctrl_r", 2.0) == [Action("stop", 2.0)]
    assert m.release("space", 2.1) == []


def test_autorepeat_presses_change_nothing() -> None:
    m = hold()
    m.press("ctrl_l", 0.0)
    assert m.press("space", 0.1) == [Action("start", 0.1)]
    repeats = [a for i in range(40) for a in m.press("space", 0.6 + i * 0.03)]
    repeats += [a for i in range(40) for a in m.press("ctrl_l", 0.6 + i * 0.03)]
    assert repeats == []
    assert m.release("space", 2.0) == [Action("stop", 2.0)]


def test_tap_shorter_than_min_hold_is_cancelled() -> None:
    m = hold(min_hold_s=0.2)
    m.press("ctrl", 0.0)
    m.press("space", 1.0)
    assert m.release("space", 1.1) == [Action("cancel", 1.1, reason="tap")]
    assert m.press("space", 2.0) == [Action("start", 2.0)]  # the next press starts afresh


def test_other_keys_do_not_start() -> None:
    m = hold()
    assert m.press("shift", 0.0) == [] and m.press("space", 0.1) == []
    assert m.release("space", 0.2) == [] and m.release("shift", 0.3) == []


def test_toggle_sends_toggle_on_each_completion_and_ignores_autorepeat() -> None:
    m = HotkeyMachine(parse_combo("ctrl+space"), mode="toggle", min_hold_s=0.15)
    m.press("ctrl", 0.0)
    assert m.press("space", 0.1) == [Action("toggle", 0.1)]
    assert [a for i in range(10) for a in m.press("space", 0.2 + i * 0.03)] == []  # autorepeat
    assert m.release("space", 0.6) == [] and m.release("ctrl", 0.7) == []  # releases do nothing
    m.press("ctrl", 3.0)
    assert m.press("space", 3.1) == [Action("toggle", 3.1)]


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="hold or toggle"):
        HotkeyMachine(parse_combo("f9"), mode="latch")


def test_backend_choice() -> None:
    assert choose_backend("auto", {"DISPLAY": ":3"}) == "xorg"
    with pytest.raises(BackendUnavailable, match="DISPLAY is not set"):
        choose_backend("xorg", {})
    with pytest.raises(BackendUnavailable, match="one of"):
        choose_backend("evdev", {"DISPLAY": ":1"})
