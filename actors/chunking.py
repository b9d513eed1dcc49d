"""Chunk planning: Silero VAD (shipped in faster-whisper) finds speech; regions are merged
into contiguous chunks of at most `max_chunk_s`, cut in silence, and silences longer than
`max_gap_s` are skipped. VAD runs block by block over a memory-mapped int16 file, so a
10-hour file never sits in RAM; a speech region that touches a block's end is re-read with
the next block, so a block edge never cuts a word. Deterministic: the same audio and
options give the same plan, which lets a re-sent plan be merged with a stored one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from faster_whisper.vad import VadOptions, get_speech_timestamps

SAMPLE_RATE = 16000
BATCH_CHUNKS = 16  # later chunks are sent in batches to spare the store's commits


@dataclass(frozen=True)
class PlanOptions:
    max_chunk_s: float = 30.0
    max_gap_s: float = 5.0
    vad_threshold: float = 0.5
    vad_min_silence_ms: int = 300
    vad_speech_pad_ms: int = 200
    vad_block_s: float = 120.0


def speech_regions(pcm: np.ndarray, opts: PlanOptions) -> Iterator[tuple[int, int]]:
    """Yield (start, end) speech regions in samples, in order, without overlap."""
    vad = VadOptions(
        threshold=opts.vad_threshold,
        min_silence_duration_ms=opts.vad_min_silence_ms,
        speech_pad_ms=opts.vad_speech_pad_ms,
        max_speech_duration_s=opts.max_chunk_s,
    )
    total = int(pcm.shape[0])
    block = max(int(opts.vad_block_s * SAMPLE_RATE), int(opts.max_chunk_s * SAMPLE_RATE) * 2)
    edge = int((opts.vad_speech_pad_ms + opts.vad_min_silence_ms) * SAMPLE_RATE / 1000)
    pos, last_end = 0, 0
    while pos < total:
        end = min(pos + block, total)
        audio = pcm[pos:end].astype(np.float32) / 32768.0
        regions = [(pos + r["start"], pos + r["end"]) for r in get_speech_timestamps(audio, vad)]
        next_pos = end
        if end < total and regions and regions[-1][1] >= end - edge and regions[-1][0] > pos:
            next_pos = regions.pop()[0]  # touches the block edge: read it again with the next block
        for start, stop in regions:
            start = max(start, last_end)
            if stop > start:
                yield start, stop
                last_end = stop
        pos = next_pos


def plan_chunks(pcm: np.ndarray, opts: PlanOptions) -> Iterator[list[tuple[int, int]]]:
    """Yield lists of finished chunks (start, end) as the VAD advances; the last list may be empty."""
    max_len = int(opts.max_chunk_s * SAMPLE_RATE)
    max_gap = int(opts.max_gap_s * SAMPLE_RATE)
    current: list[int] | None = None
    done: list[tuple[int, int]] = []
    batch = 1  # the first chunk goes out alone, so transcription starts at once
    for start, stop in speech_regions(pcm, opts):
        if current and stop - current[0] <= max_len and start - current[1] <= max_gap:
            current[1] = stop
            continue
        if current:
            done.append((current[0], current[1]))
            if len(done) >= batch:
                yield done
                done, batch = [], BATCH_CHUNKS
        current = [start, min(stop, start + max_len)]
    if current:
        done.append((current[0], current[1]))
    yield done
