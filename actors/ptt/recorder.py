"""One push-to-talk recording at a time, cut from a continuous microphone stream by time.

Every captured block arrives with the wall-clock time its last sample was captured, and every
start and stop carries the time the user pressed or released the key. The recorder cuts the
utterance from `start - preroll` to `stop + postroll` on that clock, so the first and last
words survive however late the actor's loop gets to a command (a busy loop only delays the
hand-over, never moves the cut). While idle it keeps the last `preroll + slack` of audio in a
ring. A recording reaching `max_samples` is closed there (`capped`). Pure logic over int16
blocks; actors/ptt/audio.py feeds it.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass

import numpy as np

from protocol.vocab import SAMPLE_RATE

SLACK_S = 5.0
"""Extra audio kept while idle, for a start the loop handles late."""


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
    def __init__(self, preroll_s: float, postroll_s: float, max_samples: int) -> None:
        self.preroll_s, self.postroll_s, self.max_samples = preroll_s, postroll_s, max_samples
        self.keep = int((preroll_s + SLACK_S) * SAMPLE_RATE)
        self.ring: deque[np.ndarray] = deque()
        self.ring_len = 0
        self.last_end: float | None = None
        """Capture time of the last sample fed."""
        self.parts: list[np.ndarray] = []
        self.length = 0
        self.t0 = 0.0
        """Capture time of the recording's first sample."""
        self.end_sample = 0
        self.state = "idle"  # idle, recording, tail
        self.id = ""
        self.key_down = self.key_up = 0.0
        self.origin = ""
        self.reopened = False

    def discontinuity(self) -> None:
        """The stream was reopened after an outage: the next block does not follow the last.
        (Without this, a late burst of blocks is taken as contiguous, which it is.)"""
        self.reopened = True

    @property
    def recording(self) -> bool:
        return self.state != "idle"

    @property
    def duration_s(self) -> float:
        return self.length / SAMPLE_RATE

    def start(self, at: float, origin: str) -> str:
        """Begin a recording `preroll` before `at` (as far as the ring reaches); returns its id."""
        ring = np.concatenate(list(self.ring)) if self.ring else np.zeros(0, np.int16)
        ring_t0 = (self.last_end if self.last_end is not None else at) - len(ring) / SAMPLE_RATE
        first = round((at - self.preroll_s - ring_t0) * SAMPLE_RATE)
        first = min(max(first, 0), len(ring))
        self.parts, self.length = [ring[first:]], len(ring) - first
        self.t0 = ring_t0 + first / SAMPLE_RATE
        self.ring.clear()
        self.ring_len = 0
        self.state, self.id = "recording", os.urandom(4).hex()
        self.key_down, self.key_up, self.origin = at, 0.0, origin
        return self.id

    def stop(self, at: float) -> Utterance | None:
        """End the recording `postroll` after `at`; the utterance comes now if that audio is
        already here, else from a later feed."""
        if self.state != "recording":
            return None
        self.state, self.key_up = "tail", at
        self.end_sample = max(1, round((at + self.postroll_s - self.t0) * SAMPLE_RATE))
        return self._close(self.end_sample, capped=False) if self.length >= self.end_sample else None

    def recorded(self, start: int = 0) -> np.ndarray:
        """The current recording from sample `start` on (pre-roll included), for streaming
        pieces while it goes on (SPEC.md 12.4); the parts are joined once, here."""
        if len(self.parts) > 1:
            self.parts = [np.concatenate(self.parts)]
        return self.parts[0][start:] if self.parts else np.zeros(0, np.int16)

    def cancel(self) -> None:
        self.parts, self.length, self.state = [], 0, "idle"

    def finish_now(self) -> Utterance | None:
        """Hand over a stopped recording without waiting for the rest of its post-roll."""
        if self.state != "tail":
            return None
        return self._close(min(self.length, self.end_sample), capped=False)

    def feed(self, block: np.ndarray, t_end: float) -> Utterance | None:
        """Add captured samples (the last captured at `t_end`); returns a completed utterance."""
        gap = 0.0
        if self.reopened and self.last_end is not None:
            gap = max(0.0, t_end - len(block) / SAMPLE_RATE - self.last_end)
        self.reopened = False
        self.last_end = t_end
        if self.state == "idle":
            if gap:  # the ring's clock does not hold across an outage
                self.ring.clear()
                self.ring_len = 0
            self._to_ring(block)
            return None
        self.t0 += gap  # sample counts stay consistent with the clock after an outage
        if len(block):
            self.parts.append(block)
            self.length += len(block)
        if self.state == "tail" and self.length >= self.end_sample:
            return self._close(self.end_sample, capped=False)
        if self.length >= self.max_samples:
            return self._close(self.max_samples, capped=True)
        return None

    def _to_ring(self, block: np.ndarray) -> None:
        if not len(block):
            return
        self.ring.append(block)
        self.ring_len += len(block)
        while self.ring and self.ring_len - len(self.ring[0]) >= self.keep:
            self.ring_len -= len(self.ring.popleft())

    def _close(self, end: int, capped: bool) -> Utterance:
        """The first `end` samples become the utterance; the rest starts the next ring."""
        full = np.concatenate(self.parts) if self.parts else np.zeros(0, np.int16)
        end = min(end, self.max_samples, len(full))
        utterance = Utterance(self.id, full[:end], self.key_down, self.key_up, self.origin, capped)
        self.parts, self.length, self.state = [], 0, "idle"
        self._to_ring(full[end:])
        return utterance
