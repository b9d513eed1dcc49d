"""One push-to-talk recording at a time, cut from a continuous microphone stream.

The stream stays open; while idle the last `preroll` samples are kept in a ring, so a
recording starts with the audio from just before the key went down and the first word is
never clipped. After a stop the recorder keeps `postroll` more samples so the last word is
not clipped either, then hands over the Utterance. A recording reaching `max_samples` is
closed there (`capped`). Pure logic over int16 blocks; actors/audio.py feeds it.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass
class Utterance:
    id: str
    pcm: np.ndarray
    """int16 mono 16 kHz, pre-roll and post-roll included."""
    key_down: float
    key_up: float
    origin: str
    capped: bool = False


class Recorder:
    def __init__(self, preroll: int, postroll: int, max_samples: int) -> None:
        self.preroll, self.postroll, self.max_samples = preroll, postroll, max_samples
        self.ring: deque[np.ndarray] = deque()
        self.ring_len = 0
        self.parts: list[np.ndarray] = []
        self.length = 0
        self.tail_left = 0
        self.state = "idle"  # idle, recording, tail
        self.id = ""
        self.key_down = self.key_up = 0.0
        self.origin = ""

    @property
    def recording(self) -> bool:
        return self.state != "idle"

    @property
    def duration_s(self) -> float:
        return self.length / 16000

    def start(self, at: float, origin: str) -> str:
        """Begin a recording with the pre-roll; returns its id."""
        ring = np.concatenate(list(self.ring)) if self.ring else np.zeros(0, np.int16)
        head = ring[-self.preroll :] if self.preroll else ring[:0]
        self.parts, self.length = [head], len(head)
        self.ring.clear()
        self.ring_len = 0
        self.state, self.id = "recording", os.urandom(4).hex()
        self.key_down, self.key_up, self.origin = at, 0.0, origin
        return self.id

    def stop(self, at: float) -> None:
        """Keep recording the post-roll, then the utterance is ready (from feed)."""
        if self.state == "recording":
            self.state, self.key_up, self.tail_left = "tail", at, self.postroll

    def cancel(self) -> None:
        self.parts, self.length, self.state = [], 0, "idle"

    def finish_now(self) -> Utterance | None:
        """Hand over what is recorded without waiting for the post-roll (the device is gone)."""
        if self.state != "tail":
            return None
        return self._close(capped=False)

    def feed(self, block: np.ndarray) -> Utterance | None:
        """Add captured samples; returns the utterance when one is complete."""
        if self.state == "idle":
            self._to_ring(block)
            return None
        room = self.max_samples - self.length
        if self.state == "tail":
            take = min(len(block), self.tail_left, room)
            self._append(block[:take])
            self.tail_left -= take
            if self.tail_left > 0 and self.length < self.max_samples:
                return None
            utterance = self._close(capped=False)
            self._to_ring(block[take:])
            return utterance
        take = min(len(block), room)
        self._append(block[:take])
        if self.length < self.max_samples:
            return None
        self.key_up = 0.0  # set by the actor: capped recordings end at capture time
        utterance = self._close(capped=True)
        self._to_ring(block[take:])
        return utterance

    def _append(self, block: np.ndarray) -> None:
        if len(block):
            self.parts.append(block)
            self.length += len(block)

    def _to_ring(self, block: np.ndarray) -> None:
        if not len(block) or not self.preroll:
            return
        self.ring.append(block)
        self.ring_len += len(block)
        while self.ring and self.ring_len - len(self.ring[0]) >= self.preroll:
            self.ring_len -= len(self.ring.popleft())

    def _close(self, capped: bool) -> Utterance:
        pcm = np.concatenate(self.parts) if self.parts else np.zeros(0, np.int16)
        utterance = Utterance(self.id, pcm, self.key_down, self.key_up, self.origin, capped)
        self.parts, self.length, self.state = [], 0, "idle"
        return utterance
