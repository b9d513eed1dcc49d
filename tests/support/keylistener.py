"""A pynput keyboard Listener in its own process, reporting what an application on the X
display would receive: key presses, and the clipboard at the moment ctrl+v or shift+insert
is pressed. Used to check typing and pasting for real."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

START_TIMEOUT_S = 10.0
EVENT_TIMEOUT_S = 10.0

LISTENER = r"""
import json, subprocess, sys, threading, time
from pynput import keyboard
from pynput.keyboard import Key

recording = threading.Event()
held = set()


def emit(**event):
    print(json.dumps({**event, "t": time.monotonic()}), flush=True)


def name(key):
    return getattr(key, "char", None) or getattr(key, "name", None) or str(key)


def on_press(key):
    if key == Key.f12:  # the probe that proves RECORD is delivering
        recording.set()
        return
    held.add(name(key))
    emit(press=name(key))
    if (name(key) == "v" and "ctrl" in held) or (name(key) == "insert" and "shift" in held):
        cmd = ["xclip", "-selection", "clipboard", "-out"]
        emit(pasted=subprocess.run(cmd, capture_output=True, timeout=5).stdout.decode())


def on_release(key):
    held.discard(name(key))


listener = keyboard.Listener(on_press=on_press, on_release=on_release)
listener.start()
listener.wait()  # ready is marked before the RECORD context is enabled: probe until a key arrives
probe = keyboard.Controller()
deadline = time.monotonic() + 5
while not recording.wait(0.05):
    if time.monotonic() > deadline:
        sys.exit("the listener never saw the probe key")
    probe.tap(Key.f12)
emit(ready=True)
sys.stdin.read()
listener.stop()
"""


class KeyListener:
    """A pynput keyboard Listener in its own process, reporting key presses as JSON lines."""

    def __init__(self, env: dict[str, str], script: Path) -> None:
        script.write_text(LISTENER)
        self.process = subprocess.Popen(
            [sys.executable, str(script)],
            env={**env, "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.until(lambda e: e.get("ready"), START_TIMEOUT_S)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.events.put(json.loads(line))

    def until(self, done: Callable[[dict[str, Any]], Any], timeout_s: float = EVENT_TIMEOUT_S) -> list[dict]:
        """Events up to and including the first one `done` accepts."""
        seen: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout_s
        while not seen or not done(seen[-1]):
            try:
                seen.append(self.events.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                raise AssertionError(f"listener: no matching event in {timeout_s} s; saw {seen}") from None
        return seen

    def drain(self) -> list[dict[str, Any]]:
        """Every event received so far and not yet read."""
        out = []
        while True:
            try:
                out.append(self.events.get_nowait())
            except queue.Empty:
                return out

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
