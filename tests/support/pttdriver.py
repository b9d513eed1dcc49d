"""Drive push-to-talk as a person would: a real stack (all six actors) on an Xvfb display
with a PulseAudio virtual microphone (tests/support/rig.py); hold the key, speak, release, and read
the clipboard. Shared by tests/rig/test_ptt.py and tests/bench/ptt.py."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from protocol.control import ListHistory
from protocol.vocab import Role
from tests.support.harness import Stack, collect_events, poll
from tests.support.rig import Display, Microphone

ALL_ACTORS = (Role.SCHEDULER, Role.INGEST, Role.TRANSCRIBER, Role.AUDIO, Role.HOTKEY, Role.DELIVER)
MEMBERS = (Role.AUDIO, Role.HOTKEY, Role.DELIVER)
KEY = "ctrl+space"

Step = Callable[[], object]


@dataclass
class Dictation:
    key_down: float
    key_up: float
    speech_at: float
    marker: str


class PushToTalkRig:
    """A Stack plus the display and microphone its audio, hotkey and deliver actors use."""

    def __init__(self, settings: dict[str, Any] | None = None) -> None:
        self.mic_root = Path(tempfile.mkdtemp(prefix="mic", dir="/tmp"))
        self.display = Display().start()
        try:
            self.mic = Microphone(self.mic_root, sink=False).start()  # unplugging it ends the stream
        except BaseException:
            self.display.stop()
            shutil.rmtree(self.mic_root, ignore_errors=True)
            raise
        self.stack = Stack(settings)
        self.stack.env.update(self.display.env)
        self.stack.env.update(self.mic.env)
        self.count = 0

    def start(self, *actors: str) -> PushToTalkRig:
        self.stack.start(*(actors or ALL_ACTORS))
        roles = tuple(a for a in (actors or ALL_ACTORS) if a != "scheduler")
        self.stack.wait_ready(roles=roles)
        return self

    def restart(self, actor: str, **settings: Any) -> None:
        """Restart one actor with changed settings (kept for later restarts too)."""
        for name, value in settings.items():
            self.stack.env[f"SOTTOVOCE_{name.replace('.', '_')}".upper()] = str(value)
        self.stack.restart(actor)
        pid = self.stack.procs[actor].pid

        def registered() -> bool:
            from protocol.control import Ping

            try:
                data = self.stack.client.call(Ping(actor=actor), timeout_s=1.0)
            except Exception:
                return False
            return data.get("pid") == pid or any(w["pid"] == pid for w in data.get("workers", []))

        poll(registered, 30, interval_s=0.05, what=f"{actor} to register again")

    def close(self) -> None:
        self.stack.cleanup()
        self.mic.stop()
        self.display.stop()
        shutil.rmtree(self.mic_root, ignore_errors=True)

    # --- acting ----------------------------------------------------------------------------

    def mark_clipboard(self) -> str:
        """Put a unique marker in the clipboard, so a delivery shows as a change."""
        self.count += 1
        marker = f"marker-{os.getpid()}-{self.count}"
        self.display.set_clipboard(marker)
        return marker

    def dictate(
        self,
        pcm: np.ndarray,
        lead_s: float = 0.05,
        key: str = KEY,
        wait_s: float = 60,
        on_press: Step | None = None,
        before_release: Step | None = None,
        after_release: Step | None = None,
    ) -> Dictation:
        """Hold the key, start speaking `lead_s` after the press, release when the audio ends
        (`wait_s`: how long the audio may take to play; raise it for dictations over a minute).
        The steps run right after the press, before the release (the key stays down until
        it returns) and right after the release."""
        marker = self.mark_clipboard()
        down = self.display.key_down(key)
        if on_press:
            on_press()
        poll(lambda: time.time() >= down + lead_s, 5, interval_s=0.002, what="the lead time")
        speech_at = self.mic.play(pcm)
        self.mic.wait_played(wait_s)
        if before_release:
            before_release()
        up = self.display.key_up(key)
        if after_release:
            after_release()
        return Dictation(down, up, speech_at, marker)

    def clipboard_text(self, dictation: Dictation, timeout_s: float = 60) -> tuple[str, float]:
        """The delivered text and when it was seen (polling xclip every ~10 ms)."""
        text = poll(
            lambda: (t := self.display.clipboard()) != dictation.marker and t,
            timeout_s,
            interval_s=0.005,
            what="the text in the clipboard",
        )
        return str(text), time.time()

    def history(self, **query: Any) -> list[dict[str, Any]]:
        return list(self.stack.client.call(ListHistory(**query))["entries"])

    def wait_history(self, count: int, timeout_s: float = 30) -> list[dict[str, Any]]:
        """Until the history holds `count` entries and the newest has its delivery latency."""
        return poll(
            lambda: (
                (h := self.history(limit=0))
                and len(h) >= count
                and "release_to_text" in h[0]["latency"]
                and h
            ),
            timeout_s,
            interval_s=0.05,
            what=f"{count} history entries",
        )


def wait_kind(
    sub: Any, kind: str, timeout_s: float = 30, job_id: str | None = None, **match: Any
) -> tuple[Any, list[Any]]:
    """Read events until one of `kind` (of `job_id`, if given) whose data matches; returns it
    and everything read."""

    def hit(e: Any) -> bool:
        return (
            e.kind == kind
            and (job_id is None or e.job_id == job_id)
            and all(e.data.get(k) == v for k, v in match.items())
        )

    events = collect_events(sub, lambda evs: any(hit(e) for e in evs), timeout_s)
    return next(e for e in events if hit(e)), events
