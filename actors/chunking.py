"""Chunk planning: Silero VAD (shipped in faster-whisper) finds speech, and speech regions
separated by less than `max_gap_s` of silence are merged into spans; longer silences are
skipped. The transcriber then walks each span in windows of at most 30 s, continuing where
Whisper's own timestamps say the last complete segment ended (see actors/model.py), so a
window never wastes a decoding pass on a cut-off tail.

VAD runs block by block over the int16 cache (`pcm` is an array or an
actors.audiofile.PcmFile, sliced one block at a time), so a 10-hour file never sits in RAM;
a region that touches a block's end is read again with the next block, so a block edge
never cuts a word. Spans stream out as the VAD advances: the last span of an update may
still grow and is sent again, with the same index, in the next update. Deterministic: the
same audio and options give the same spans, so a re-sent plan merges with a stored one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from faster_whisper.vad import VadOptions, get_speech_timestamps

SAMPLE_RATE = 16000


@dataclass(frozen=True)
class PlanOptions:
    max_chunk_s: float = 30.0
    max_gap_s: float = 5.0
    vad_threshold: float = 0.5
    vad_min_silence_ms: int = 300
    vad_speech_pad_ms: int = 200
    vad_block_s: float = 120.0


def region_blocks(pcm: Any, opts: PlanOptions) -> Iterator[list[tuple[int, int]]]:
    """Yield, per VAD block, the (start, end) speech regions in samples, in order, no overlap."""
    vad = VadOptions(
        threshold=opts.vad_threshold,
        min_silence_duration_ms=opts.vad_min_silence_ms,
        speech_pad_ms=opts.vad_speech_pad_ms,
        max_speech_duration_s=opts.max_chunk_s,
    )
    total = int(pcm.shape[0])
    first_block = int(opts.max_chunk_s * SAMPLE_RATE) * 2  # small first block: start sooner
    block = max(int(opts.vad_block_s * SAMPLE_RATE), first_block)
    edge = int((opts.vad_speech_pad_ms + opts.vad_min_silence_ms) * SAMPLE_RATE / 1000)
    pos, last_end, size = 0, 0, first_block
    while pos < total:
        end = min(pos + size, total)
        audio = pcm[pos:end].astype(np.float32) / 32768.0
        regions = [(pos + r["start"], pos + r["end"]) for r in get_speech_timestamps(audio, vad)]
        next_pos = end
        if end < total and regions and regions[-1][1] >= end - edge and regions[-1][0] > pos:
            next_pos = regions.pop()[0]  # touches the block edge: read it again with the next block
        out = []
        for start, stop in regions:
            start = max(start, last_end)
            if stop > start:
                out.append((start, stop))
                last_end = stop
        yield out
        pos, size = next_pos, block


def speech_regions(pcm: Any, opts: PlanOptions) -> Iterator[tuple[int, int]]:
    """All speech regions, in order."""
    for regions in region_blocks(pcm, opts):
        yield from regions


def plan_spans(pcm: Any, opts: PlanOptions) -> Iterator[tuple[int, list[list[int]]]]:
    """Yield (first_index, spans) updates; spans[k] is span first_index + k, [start, end)."""
    max_gap = int(opts.max_gap_s * SAMPLE_RATE)
    spans: list[list[int]] = []
    sent = 0  # first span that may still change
    sent_end = -1  # end of span `sent` when it was last sent
    for regions in region_blocks(pcm, opts):
        for start, stop in regions:
            if spans and start - spans[-1][1] <= max_gap:
                spans[-1][1] = stop
            else:
                spans.append([start, stop])
        if len(spans) > sent + 1 or (len(spans) == sent + 1 and spans[sent][1] != sent_end):
            yield sent, [list(s) for s in spans[sent:]]
            sent, sent_end = len(spans) - 1, spans[-1][1]
