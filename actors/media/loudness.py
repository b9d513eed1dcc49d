"""Whisper's log-mel reference level for a whole recording.

Whisper's feature extractor clamps the log-mel spectrogram to 8 (log10 units) below its
maximum. Bare faster-whisper computes features once for the whole file, so every window is
clamped against the file's loudest frame; a window computed on its own would be clamped
against its own maximum instead, and transcribe slightly differently. Ingest measures the
file's maximum once (block by block, bounded memory) and every window of the job is clamped
against it (actors/workers/model.py), which makes windowed transcription match bare faster-whisper.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from protocol.vocab import SAMPLE_RATE

BLOCK_SAMPLES = 60 * SAMPLE_RATE  # one minute at a time: about 100 MiB peak for the STFT


def mel_reference(pcm: Any) -> float | None:
    """The maximum log10 mel power over int16 `pcm` (an array or a PcmFile), or None."""
    from faster_whisper.feature_extractor import FeatureExtractor

    extractor = FeatureExtractor()
    top: float | None = None
    for start in range(0, int(pcm.shape[0]), BLOCK_SAMPLES):
        block = pcm[start : start + BLOCK_SAMPLES].astype(np.float32) / 32768.0
        # the extractor returns (clamped + 4) / 4, whose maximum is (max + 4) / 4
        level = 4.0 * float(extractor(block).max()) - 4.0
        top = level if top is None else max(top, level)
    return top
