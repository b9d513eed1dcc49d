"""Is there speech in this recording? Silero VAD (shipped in faster-whisper), as ingest uses."""

from __future__ import annotations

import numpy as np
from faster_whisper.vad import VadOptions, get_speech_timestamps

SAMPLE_RATE = 16000


def speech_seconds(pcm: np.ndarray, threshold: float = 0.5) -> float:
    """Seconds of speech VAD finds in int16 mono 16 kHz `pcm` (no padding added)."""
    audio = pcm.astype(np.float32) / 32768.0
    regions = get_speech_timestamps(audio, VadOptions(threshold=threshold, speech_pad_ms=0))
    return sum(r["end"] - r["start"] for r in regions) / SAMPLE_RATE
