"""Window planning: the audio is cut into windows of at most `max_chunk_s` (30 s) that tile
it, each cut in a pause, so a window rarely ends inside a sentence and nothing audible is
left out. Silero VAD (shipped in faster-whisper) only says where the pauses are: speech it
misses (whispers, falsetto) is still inside a window. The one thing skipped is silence: a
stretch of at least `max_gap_s` whose samples all stay below `silence_dbfs`.

From a window's start, the cut goes in the longest pause (capped at PAUSE_RANK_CAP_S; the
later one wins a tie) that ends the window at least `min_window_s` after its start, else in
the longest pause at all, else at `max_chunk_s`. A window ends at most CUT_INTO_PAUSE_S into
its pause, or in its middle if the pause is shorter than twice that.

VAD runs block by block over the int16 cache (`pcm` is an array or an
actors.media.audiofile.PcmFile, sliced one block at a time), so a 10-hour file never sits in RAM;
a region that touches a block's end is read again with the next block, so a block edge
never cuts a word. A window is sent once it is decided, which needs the audio up to
PAUSE_RANK_CAP_S past its longest possible end. Deterministic: the same audio and options
give the same windows, so a re-sent plan agrees with a stored one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from faster_whisper.vad import VadOptions, get_speech_timestamps

from protocol.vocab import SAMPLE_RATE

FRAME = 160  # 10 ms: silence is judged frame by frame
CUT_INTO_PAUSE_S = 1.0
PAUSE_RANK_CAP_S = 3.0


@dataclass(frozen=True)
class PlanOptions:
    max_chunk_s: float = 30.0
    min_window_s: float = 15.0
    max_gap_s: float = 5.0
    silence_dbfs: float = -80.0
    vad_threshold: float = 0.5
    vad_min_silence_ms: int = 300
    vad_speech_pad_ms: int = 200
    vad_block_s: float = 120.0


def region_blocks(pcm: Any, opts: PlanOptions) -> Iterator[tuple[list[tuple[int, int]], int]]:
    """Yield, per VAD block, the (start, end) speech regions in samples, in order, no overlap,
    and how far the regions are final (later blocks add regions only after it)."""
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
        yield out, next_pos
        pos, size = next_pos, block


def speech_regions(pcm: Any, opts: PlanOptions) -> Iterator[tuple[int, int]]:
    """All speech regions, in order."""
    for regions, _ in region_blocks(pcm, opts):
        yield from regions


class WindowCutter:
    """Decides windows as VAD regions and audio arrive (see the module docstring)."""

    def __init__(self, pcm: Any, opts: PlanOptions) -> None:
        self.pcm = pcm
        self.total = int(pcm.shape[0])
        self.max = int(opts.max_chunk_s * SAMPLE_RATE)
        self.min = min(int(opts.min_window_s * SAMPLE_RATE), self.max)
        self.gap = int(opts.max_gap_s * SAMPLE_RATE)
        self.floor = 32768 * 10 ** (opts.silence_dbfs / 20)
        self.cut_into = int(CUT_INTO_PAUSE_S * SAMPLE_RATE)
        self.rank_cap = int(PAUSE_RANK_CAP_S * SAMPLE_RATE)
        self.regions: list[tuple[int, int]] = []  # regions that may still matter, in order
        self.known = 0  # regions are final up to here
        self.silences: list[tuple[int, int]] = []  # skipped stretches not yet passed
        self.quiet_from: int | None = None  # start of the silent run going on at `scanned`
        self.scanned = 0  # audio judged for silence up to here (whole frames)
        self.start = 0  # where the next window starts

    def feed(self, regions: list[tuple[int, int]], known: int) -> None:
        self.regions += regions
        self.known = known
        self._scan(known)

    def _scan(self, until: int) -> None:
        """Find silent runs of at least max_gap in [scanned, until)."""
        end = until if until >= self.total else until // FRAME * FRAME
        if end <= self.scanned:
            return
        block = np.abs(self.pcm[self.scanned : end].astype(np.int32))
        frames = -(-len(block) // FRAME)
        padded = np.zeros(frames * FRAME, np.int32)
        padded[: len(block)] = block
        quiet = padded.reshape(frames, FRAME).max(axis=1) < self.floor
        for k, q in enumerate(quiet):
            at = self.scanned + k * FRAME
            if q and self.quiet_from is None:
                self.quiet_from = at
            elif not q and self.quiet_from is not None:
                self._silence(self.quiet_from, at)
                self.quiet_from = None
        self.scanned = end
        if end >= self.total and self.quiet_from is not None:
            self._silence(self.quiet_from, self.total)
            self.quiet_from = None

    def _silence(self, start: int, end: int) -> None:
        if end - start >= self.gap:
            self.silences.append((start, end))

    def cut(self, final: bool) -> list[list[int]]:
        """The windows decided since the last call; with `final`, all the rest."""
        out: list[list[int]] = []
        while self.start < self.total:
            if self.silences and self.silences[0][0] <= self.start:
                self.start = max(self.start, self.silences.pop(0)[1])
                continue
            if self._in_silence(self.start):
                break  # skipped up to where the sound comes back, which is not known yet
            end = self._window_end(final)
            if end is None:
                break
            out.append([self.start, end])
            self.start = end
            self.regions = [r for r in self.regions if r[1] > end]
        return out

    def _in_silence(self, at: int) -> bool:
        """`at` is inside the silent run still going on, already long enough to be skipped."""
        return (
            self.quiet_from is not None
            and self.quiet_from <= at
            and self.scanned - self.quiet_from >= self.gap
        )

    def _window_end(self, final: bool) -> int | None:
        start, limit = self.start, self.start + self.max
        audible_end = self.silences[0][0] if self.silences else None
        if audible_end is None and self.quiet_from is not None and self._in_silence(self.quiet_from):
            audible_end = self.quiet_from
        if audible_end is None and (final or self.known >= self.total):
            audible_end = self.total
        if audible_end is not None and audible_end - start <= self.max:
            return audible_end
        if not final and self.known < min(limit + max(self.rank_cap, self.gap), self.total):
            return None  # the pauses and silences that could end this window are not all known yet
        best: tuple[int, int] | None = None  # (rank, cut)
        fallback: tuple[int, int] | None = None
        bounds = [r for r in self.regions if r[1] > start]
        for here, after in zip(bounds, [*bounds[1:], (self.total, self.total)], strict=True):
            pause_start, pause_end = max(here[1], start), after[0]
            if pause_start >= limit:
                break
            cut = pause_start + min((pause_end - pause_start) // 2, self.cut_into)
            if not start < cut <= limit:
                continue
            option = (min(pause_end - pause_start, self.rank_cap), cut)
            fallback = max(fallback, option) if fallback else option
            if cut - start >= self.min:
                best = max(best, option) if best else option
        choice = best or fallback
        return choice[1] if choice else limit


def plan_spans(pcm: Any, opts: PlanOptions) -> Iterator[tuple[int, list[list[int]]]]:
    """Yield (first_index, windows) updates: windows[k] is window first_index + k, [start, end),
    each decided for good."""
    cutter = WindowCutter(pcm, opts)
    sent = 0
    for regions, known in region_blocks(pcm, opts):
        cutter.feed(regions, known)
        windows = cutter.cut(final=known >= cutter.total)
        if windows:
            yield sent, windows
            sent += len(windows)
    rest = cutter.cut(final=True)
    if rest:
        yield sent, rest
