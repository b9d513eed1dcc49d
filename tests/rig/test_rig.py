"""Tests of the test rig itself (tests/support/rig.py), with real processes: a separate Python process
records the virtual microphone with sounddevice, and one listens to the virtual display's keys
with pynput, exactly as the application would."""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.support.rig import (
    RATE_HZ,
    Display,
    Microphone,
    display,
    display_autorepeat,
    load_pcm,
    microphone,
    microphone_only,
    need_binaries,
    poll,
    speech_pcm,
)

pytestmark = pytest.mark.rig

__all__ = ["display", "display_autorepeat", "microphone", "microphone_only"]  # fixtures used here

# Records the default input device into argv[1] (raw int16) and logs "frames time" per callback into
# argv[2]. When the device goes away (finished_callback without a stop) it closes the stream and
# reopens it every 50 ms until that works: the device-loss recovery recipe.
RECORDER = r"""
import sys, threading, time
import sounddevice as sd

raw, log = open(sys.argv[1], "ab"), open(sys.argv[2], "a")
lost = threading.Event()

def callback(indata, frames, t, status):
    raw.write(indata.tobytes()); raw.flush()
    log.write(f"{frames} {time.time()}\n"); log.flush()

def open_stream():
    stream = sd.InputStream(samplerate=16000, channels=1, dtype="int16", blocksize=160,
                            callback=callback, finished_callback=lost.set)
    stream.start()
    return stream

stream = open_stream()
print("recording", flush=True)
while True:
    lost.wait()
    lost.clear()
    print("lost", flush=True)
    stream.close()
    while True:
        try:
            stream = open_stream()
            break
        except sd.PortAudioError:
            time.sleep(0.05)
    print("reopened", flush=True)
"""

# Prints "ready", then one "press|release KEY TIME" line per key event.
LISTENER = r"""
import time
from pynput import keyboard

def emit(kind, key):
    print(kind, str(key), time.time(), flush=True)

with keyboard.Listener(on_press=lambda k: emit("press", k), on_release=lambda k: emit("release", k)) as l:
    l.wait()
    print("ready", flush=True)
    l.join()
"""


class Child:
    """A Python subprocess whose stdout lines are read into a queue by a thread."""

    def __init__(self, code: str, env: dict[str, str], *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, *args],
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())

    def expect(self, prefix: str, timeout_s: float = 10) -> str:
        """The next line; fail unless it starts with `prefix`."""
        try:
            line = self.lines.get(timeout=timeout_s)
        except queue.Empty:
            raise TimeoutError(f"no line {prefix!r} within {timeout_s} s") from None
        assert line.startswith(prefix), line
        return line

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(5)


@pytest.fixture(scope="module")
def phrase() -> np.ndarray:
    need_binaries("espeak-ng", "sox")
    return speech_pcm("Open the settings.")


@pytest.fixture
def recorder(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    yield tmp_path / "rec.raw", tmp_path / "rec.log"


def recorded(raw: Path) -> np.ndarray:
    data = raw.read_bytes()
    return np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2")


def find_clip(rec: np.ndarray, clip: np.ndarray) -> int | None:
    """Where `clip` starts in `rec`, bit-exact, or None. The rig's silence is exact zeros."""
    lead = int(np.flatnonzero(clip)[0])
    for first in np.flatnonzero(rec):
        start = int(first) - lead
        if start >= 0 and np.array_equal(rec[start : start + len(clip)], clip):
            return start
        if start + len(clip) > len(rec):
            break
    return None


def wait_for_clip(raw: Path, clip: np.ndarray, after: int = 0, timeout_s: float = 10) -> int:
    """Poll the recording until `clip` is in it (past sample `after`); return its start."""

    def found() -> int:
        start = find_clip(recorded(raw)[after:], clip)
        return 0 if start is None else start + after + 1  # +1: found at 0 is truthy

    return poll(found, timeout_s, 0.02, "the played clip in the recording") - 1


def callback_time_of(log: Path, sample: int) -> float:
    """The time.time() of the callback that delivered recorded sample number `sample`."""
    total = 0
    for line in log.read_text().splitlines():
        frames, t = line.split()
        total += int(frames)
        if total > sample:
            return float(t)
    raise AssertionError(f"sample {sample} not in the log")


def test_a_separate_process_records_what_play_splices_in(
    microphone: Microphone, phrase: np.ndarray, recorder: tuple[Path, Path]
) -> None:
    raw, log = recorder
    child = Child(RECORDER, microphone.env, str(raw), str(log))
    try:
        child.expect("recording")
        poll(lambda: raw.exists() and raw.stat().st_size > 0, 5, what="the first callback")
        played_at = microphone.play(phrase)
        start = wait_for_clip(raw, phrase)
        latency_s = callback_time_of(log, start) - played_at
        assert -0.01 < latency_s < 0.2, latency_s  # measured 2-20 ms: one 10 ms block plus delivery
        microphone.wait_played()
        assert microphone.error is None
    finally:
        child.stop()


def test_the_writer_survives_an_unplug_and_a_client_can_recover(
    microphone_only: Microphone, phrase: np.ndarray, recorder: tuple[Path, Path]
) -> None:
    mic, (raw, log) = microphone_only, recorder
    child = Child(RECORDER, mic.env, str(raw), str(log))
    try:
        child.expect("recording")
        mic.play(phrase)
        first = wait_for_clip(raw, phrase)
        mic.unload_source()
        child.expect("lost")  # no source is left: the stream dies
        mic.play(phrase[:1600])  # spoken into the unplugged microphone: dropped
        mic.load_source()
        child.expect("reopened")  # same process, no sd._terminate()/_initialize() needed
        size = raw.stat().st_size
        poll(lambda: raw.stat().st_size > size, 5, what="callbacks on the reopened stream")
        written = mic.blocks_written
        mic.play(phrase)
        wait_for_clip(raw, phrase, after=first + len(phrase))
        assert mic.blocks_written > written
        assert mic.error is None
    finally:
        child.stop()


def test_with_the_null_sink_the_same_stream_comes_back(
    microphone: Microphone, phrase: np.ndarray, recorder: tuple[Path, Path]
) -> None:
    raw, log = recorder
    child = Child(RECORDER, microphone.env, str(raw), str(log))
    try:
        child.expect("recording")
        microphone.unload_source()  # PulseAudio moves the stream to vsink.monitor ...
        microphone.load_source()  # ... and back to vmic when it is the default source again
        microphone.play(phrase)
        wait_for_clip(raw, phrase)
        assert child.lines.empty()  # never "lost"
    finally:
        child.stop()


def key_events(child: Child, until: str, timeout_s: float = 5) -> list[tuple[str, str, float]]:
    """Key events up to and including the first line starting with `until`."""
    events = []
    deadline = time.monotonic() + timeout_s
    while True:
        line = child.expect("", max(0.0, deadline - time.monotonic()))
        kind, key, t = line.split()
        events.append((kind, key, float(t)))
        if line.startswith(until):
            return events


def test_pynput_sees_hotkey_press_and_release(display: Display) -> None:
    child = Child(LISTENER, display.env)
    try:
        child.expect("ready")
        t_down = display.key_down("ctrl+space")
        pressed = key_events(child, "press Key.space")
        t_up = display.key_up("ctrl+space")
        released = key_events(child, "release Key.space")
        assert [(k, key) for k, key, _ in pressed] == [("press", "Key.ctrl"), ("press", "Key.space")]
        assert [(k, key) for k, key, _ in released] == [("release", "Key.ctrl"), ("release", "Key.space")]
        assert abs(pressed[-1][2] - t_down) < 0.1 and abs(released[-1][2] - t_up) < 0.1
    finally:
        child.stop()


def test_autorepeat_gives_many_presses_over_the_hold_and_one_release(display_autorepeat: Display) -> None:
    display = display_autorepeat
    assert display.autorepeat_enabled()
    child = Child(LISTENER, display.env)
    try:
        child.expect("ready")
        t_down = display.key_down("ctrl+space")
        time.sleep(1.0)  # the stimulus: a 1 s hold (660 ms delay, then a repeat every 40 ms)
        t_up = display.key_up("ctrl+space")
        events = key_events(child, "release Key.space")
        spaces = [t for kind, key, t in events if kind == "press" and key == "Key.space"]
        assert len(spaces) >= 5
        assert [key for kind, key, _ in events if kind == "release"] == ["Key.ctrl", "Key.space"]
        assert spaces[1] - t_down > 0.5  # the first repeat comes after the autorepeat delay
        assert t_up - spaces[1] > 0.2  # repeats arrive while the key is held, not in a burst at release
    finally:
        child.stop()


def test_clipboard_round_trip(display: Display) -> None:
    assert display.clipboard() == ""
    display.set_clipboard("héllo\nwörld")
    assert display.clipboard() == "héllo\nwörld"
    display.set_clipboard("second")
    assert display.clipboard() == "second"


def test_stop_leaves_no_process_behind() -> None:
    need_binaries("Xvfb", "xdotool", "xclip", "pulseaudio", "pactl")
    root = Path(tempfile.mkdtemp(prefix="mic", dir="/tmp"))
    try:
        disp, mic = Display(autorepeat=True).start(), Microphone(root).start()
        disp.set_clipboard("x")
        subprocess.run(
            ["xclip", "-selection", "primary"],
            input=b"y",
            env={**os.environ, **disp.env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=True,
        )  # forks a server
        pids = [disp._proc.pid, mic._proc.pid]  # type: ignore[union-attr]
        disp.stop()
        mic.stop()
        poll(
            lambda: not any(Path(f"/proc/{p}").exists() for p in pids), 5, what="Xvfb and pulseaudio to exit"
        )
        assert not [p for p in os.listdir("/proc") if p.isdigit() and _is_xclip_on(p, disp.name)]
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _is_xclip_on(pid: str, name: str) -> bool:
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        return comm == "xclip" and f"DISPLAY={name}".encode() in Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False


def test_load_pcm_and_speech_pcm(tmp_path: Path) -> None:
    need_binaries("espeak-ng", "sox")
    tone = (3000 * np.sin(np.arange(RATE_HZ // 2) * 2 * np.pi * 440 / RATE_HZ)).astype(np.int16)
    raw = tmp_path / "tone.raw"
    raw.write_bytes(tone.astype("<i2").tobytes())
    wav = tmp_path / "tone.wav"
    subprocess.run(
        [
            "sox",
            "-t",
            "raw",
            "-r",
            "16000",
            "-c",
            "1",
            "-b",
            "16",
            "-e",
            "signed-integer",
            str(raw),
            str(wav),
        ],
        check=True,
    )
    assert np.array_equal(load_pcm(wav), tone)
    speech = speech_pcm("Hello there.", pad_s=0.5)
    assert speech.dtype == np.int16 and speech.ndim == 1
    assert not speech[: RATE_HZ // 2].any() and speech.any()
    assert 0.8 < len(speech) / RATE_HZ < 3
