"""Is there speech in this recording? Silero VAD (shipped in faster-whisper), as ingest uses."""

from __future__ import annotations

import itertools

import numpy as np
from faster_whisper.vad import VadOptions, get_speech_timestamps

from protocol.vocab import SAMPLE_RATE

MIN_PAUSE_MS = 300
"""A silence at least this long is a pause a long dictation may be cut in (SPEC.md 12.4)."""


def speech_regions(pcm: np.ndarray, threshold: float = 0.5) -> list[tuple[int, int]]:
    """[start, end) samples of speech VAD finds in int16 mono 16 kHz `pcm` (no padding), with
    silences of at least MIN_PAUSE_MS between them."""
    audio = pcm.astype(np.float32) / 32768.0
    options = VadOptions(threshold=threshold, speech_pad_ms=0, min_silence_duration_ms=MIN_PAUSE_MS)
    return [(r["start"], r["end"]) for r in get_speech_timestamps(audio, options)]


def speech_seconds(pcm: np.ndarray, threshold: float = 0.5) -> float:
    """Seconds of speech VAD finds in int16 mono 16 kHz `pcm` (no padding added)."""
    audio = pcm.astype(np.float32) / 32768.0
    regions = get_speech_timestamps(audio, VadOptions(threshold=threshold, speech_pad_ms=0))
    return sum(r["end"] - r["start"] for r in regions) / SAMPLE_RATE


CUT_INTO_PAUSE_MS = 250
"""A piece ends this far into the pause it is cut in, or in its middle if the pause is shorter
than twice this: the same place whenever the pause is looked at (SPEC.md 12.4)."""


def cut_point(pcm: np.ndarray, min_samples: int, max_samples: int, threshold: float = 0.5) -> int | None:
    """Where to cut the next piece off the front of `pcm` (the unsent part of a recording),
    or None to wait for more (SPEC.md 12.4): in the first pause that ends after
    `min_samples`; once `pcm` reaches `max_samples`, in the longest pause before it, or at
    `max_samples` itself.

    A silence still going on at the end of `pcm` counts as a pause only once it is long enough
    that its cut point is final (before `max_samples`), so the cut does not depend on how
    much of the pause had been recorded when it was looked at."""
    if len(pcm) < min_samples:
        return None
    head = pcm[:max_samples]
    at_max = len(head) == max_samples
    regions = speech_regions(head, threshold)
    pauses = [(end, start) for (_, end), (start, _) in itertools.pairwise(regions)]
    if regions:  # the silence after the last speech
        tail_start = regions[-1][1]
        needed = MIN_PAUSE_MS if at_max else 2 * CUT_INTO_PAUSE_MS
        if len(head) - tail_start >= needed * SAMPLE_RATE // 1000:
            pauses.append((tail_start, len(head)))
    for start, end in pauses:
        if end > min_samples:
            return _into(start, end)
    if not at_max:
        return None
    if pauses:
        return _into(*max(pauses, key=lambda p: p[1] - p[0]))
    return max_samples


def _into(start: int, end: int) -> int:
    """The cut point of the pause [start, end)."""
    return start + min((end - start) // 2, CUT_INTO_PAUSE_MS * SAMPLE_RATE // 1000)
