"""Where a long dictation is cut into pieces while it is being recorded (SPEC.md 12.4).

The audio actor's decisions as functions of the audio alone: it calls `next_cut` on the unsent
part every CUT_CHECK_S while the key is down and `last_piece` at the release; `cut_recording`
runs the same decisions over a whole recording, as the actor makes them while it is recorded,
for replays (tests/support/replay.py) that must measure the product and not a copy of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from actors.media.loudness import mel_reference
from actors.media.speech import cut_point, speech_seconds
from protocol.vocab import SAMPLE_RATE

WINDOW_SAMPLES = 30 * SAMPLE_RATE
"""Whisper's window: a piece is never longer, so the release finds at most one window left."""
CUT_CHECK_S = 0.5
"""How often a recording is looked at for a pause to cut a piece in."""


@dataclass(frozen=True)
class Piece:
    """[start, end) samples of a recording, and the log-mel reference of the audio up to `end`."""

    start: int
    end: int
    mel_max: float | None


@dataclass(frozen=True)
class PieceCutter:
    min_samples: int
    """A piece is cut at the first pause after this much unsent audio (`audio.stream_min_s`)."""
    max_samples: int
    """...and at the latest here, in the longest pause so far (`audio.stream_max_s`, one window)."""
    threshold: float
    """The speech detector's threshold (`audio.vad_threshold`)."""

    @classmethod
    def from_config(cls, cfg: Any) -> PieceCutter:
        window = min(int(float(cfg.get("ingest.max_chunk_s")) * SAMPLE_RATE), WINDOW_SAMPLES)
        return cls(
            min_samples=int(float(cfg.get("audio.stream_min_s")) * SAMPLE_RATE),
            max_samples=min(int(float(cfg.get("audio.stream_max_s")) * SAMPLE_RATE), window),
            threshold=float(cfg.get("audio.vad_threshold")),
        )

    def next_cut(self, unsent: np.ndarray) -> int | None:
        """Samples of `unsent` that make the next piece, or None to wait for more."""
        return cut_point(unsent, self.min_samples, self.max_samples, self.threshold)

    def last_end(self, recording: np.ndarray, sent: int) -> int:
        """At the release, where the final piece ends: the recording's end, or `sent` (an empty
        final piece) when pieces were cut and what is left holds no speech: the speaker paused
        before letting go, and a window of silence would cost latency and may become words."""
        rest = recording[sent:]
        if sent and len(rest) and not speech_seconds(rest, self.threshold):
            return sent
        return len(recording)


def cut_recording(recording: np.ndarray, cutter: PieceCutter, stream: bool = True) -> list[Piece]:
    """The pieces the audio actor sends for `recording`, looked at every CUT_CHECK_S while it
    is recorded (with streaming off: one piece at the release). The final piece may be empty."""
    step = int(CUT_CHECK_S * SAMPLE_RATE)
    pieces: list[Piece] = []
    sent = 0
    for now in range(step, len(recording) + 1, step) if stream else ():
        cut = cutter.next_cut(recording[sent:now])
        if cut is not None:
            pieces.append(Piece(sent, sent + cut, mel_reference(recording[: sent + cut])))
            sent += cut
    pieces.append(Piece(sent, cutter.last_end(recording, sent), mel_reference(recording)))
    return pieces
