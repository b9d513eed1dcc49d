"""The microphone: one sounddevice InputStream, 16 kHz mono int16, kept open.

PortAudio calls back in its own thread with 10 ms blocks, each stamped with the wall-clock
time of its capture; they wait in a queue until the audio actor's loop reads them.
`problem()` says when the device has failed: the stream ended (PortAudio's finished
callback, as when PulseAudio loses the source) or no frames arrived for `stall_s` (a device
moved or gone quiet). A failed open is retried by the actor; every retry after a failure
rescans PortAudio's device list, so a device plugged in later, or back, is found without a
restart. Stopping is `abort()` then `close()`, never `stop()`, which waits for data a stalled
device never sends; if even that hangs, the stream is abandoned and PortAudio is not
re-initialised under it.
"""

from __future__ import annotations

import functools
import queue
import threading
import time
from typing import Any

import numpy as np

from protocol.vocab import SAMPLE_RATE

BLOCK = 160  # 10 ms
CLOSE_TIMEOUT_S = 2.0


class MicrophoneError(RuntimeError):
    """The device cannot be opened; the message says why and lists what exists."""


def _sounddevice() -> Any:
    try:
        import sounddevice
    except OSError as exc:  # the PortAudio library is missing
        raise MicrophoneError(f"PortAudio is not installed ({exc}); install libportaudio2") from exc
    return sounddevice


def resolve_device(sd: Any, spec: str) -> int | None:
    """`audio.device` -> a PortAudio input device index (None: the default device)."""
    spec = spec.strip()
    inputs = [(i, d["name"]) for i, d in enumerate(sd.query_devices()) if d["max_input_channels"] > 0]
    if not inputs:
        raise MicrophoneError("no audio input device found")
    if not spec:
        return None
    if spec.isdigit():
        index = int(spec)
        if any(i == index for i, _ in inputs):
            return index
    else:
        for i, name in inputs:
            if spec.lower() in name.lower():
                return i
    listing = "; ".join(f"{i}: {name}" for i, name in inputs)
    raise MicrophoneError(f"no input device {spec!r}; inputs are {listing}")


class Microphone:
    def __init__(self, device: str = "", stall_s: float = 1.0) -> None:
        self.device_spec = device
        self.stall_s = stall_s
        self.blocks: queue.SimpleQueue[tuple[np.ndarray, float]] = queue.SimpleQueue()
        self.stream: Any = None
        self.name = ""
        self.last_frame = 0.0
        self.error = ""
        self.opened = 0
        self.attempts = 0
        self.flags = 0
        self.close_hung = False
        self.frames_since_open = 0

    @property
    def is_open(self) -> bool:
        return self.stream is not None

    def open(self) -> None:
        """Open and start the stream, rescanning devices after the first time."""
        sd = _sounddevice()
        self.attempts += 1
        try:
            if self.attempts > 1 and not self.close_hung:
                sd._terminate()  # forget the old device list; a returned device has a new entry
                sd._initialize()
            device = resolve_device(sd, self.device_spec)
            stream = sd.InputStream(
                samplerate=SAMPLE_RATE,
                channels=1,
                dtype="int16",
                blocksize=BLOCK,
                device=device,
                callback=self._callback,
                finished_callback=functools.partial(self._finished, self.opened + 1),
            )
            stream.start()
        except MicrophoneError:
            raise
        except Exception as exc:  # PortAudioError and friends
            raise MicrophoneError(f"cannot open the microphone: {exc}") from exc
        try:
            name = str(sd.query_devices(stream.device)["name"])
        except Exception:
            name = str(stream.device)
        self.stream, self.name, self.error = stream, name, ""
        self.last_frame = time.monotonic()
        self.frames_since_open = 0
        self.opened += 1

    def _callback(self, indata: np.ndarray, frames: int, _time: Any, status: Any) -> None:
        self.blocks.put((indata[:, 0].copy(), time.time()))
        self.last_frame = time.monotonic()
        self.frames_since_open += frames
        if status:  # overflows lose a few ms; not a device failure
            self.flags += 1

    def _finished(self, generation: int) -> None:
        if generation == self.opened and self.stream is not None:  # not an old, closed stream
            self.error = "the audio stream ended"

    def read(self) -> list[tuple[np.ndarray, float]]:
        """Every (block, capture time of its last sample) since the last call."""
        out = []
        while True:
            try:
                out.append(self.blocks.get_nowait())
            except queue.Empty:
                return out

    def problem(self) -> str:
        """Why the open stream is not delivering audio, or "" when it is."""
        if self.stream is None:
            return "the microphone is closed"
        if self.error:
            return self.error
        if not self.stream.active:
            return "the audio stream stopped"
        quiet = time.monotonic() - self.last_frame
        if quiet > self.stall_s:
            return f"no audio from {self.name!r} for {quiet:.1f} s"
        return ""

    def close(self) -> None:
        """Stop and close the stream; a PortAudio call that hangs is abandoned after a timeout."""
        stream, self.stream = self.stream, None
        if stream is None:
            return
        self.error = ""

        def shut() -> None:
            try:
                stream.abort()
                stream.close()
            except Exception:
                pass

        closer = threading.Thread(target=shut, name="mic-close", daemon=True)
        closer.start()
        closer.join(CLOSE_TIMEOUT_S)
        self.close_hung = self.close_hung or closer.is_alive()
