"""Ingest actor: decodes media into the per-job PCM cache and plans its windows.

Socket: one DEALER to the scheduler's work endpoint (actors/runtime/worker.py). Implements SPEC.md
"Work: ingest": DECODE -> PLAN* (the last with final=true) or DECODE_ERROR. The cache file
is raw int16 mono 16 kHz, written once (temp file, then rename) and memory-mapped for VAD,
so neither decoding nor planning holds a whole file in RAM, and a job whose cache exists is
never decoded again.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from actors.media.audiofile import DecodeFailure, PcmFile, decode_to_file
from actors.media.loudness import mel_reference
from actors.runtime import pausepoint, process
from actors.runtime.config import Config
from actors.runtime.worker import Emit, Worker
from actors.workers.chunking import PlanOptions, plan_spans
from protocol.codec import Envelope
from protocol.errors import ErrorCode
from protocol.records import Record
from protocol.vocab import SAMPLE_RATE, Role
from protocol.work import Decode, DecodeError, Plan


class Ingest(Worker):
    ROLE = Role.INGEST
    TASKS = (Decode,)

    def __init__(self, cfg: Config, log: Any | None = None) -> None:
        super().__init__(cfg, log)
        self.plan_options = PlanOptions(
            max_chunk_s=cfg.get("ingest.max_chunk_s"),
            min_window_s=cfg.get("ingest.min_window_s"),
            max_gap_s=cfg.get("ingest.max_gap_s"),
            silence_dbfs=cfg.get("ingest.silence_dbfs"),
            vad_threshold=cfg.get("ingest.vad_threshold"),
            vad_min_silence_ms=cfg.get("ingest.vad_min_silence_ms"),
            vad_speech_pad_ms=cfg.get("ingest.vad_speech_pad_ms"),
            vad_block_s=cfg.get("ingest.vad_block_s"),
        )
        self.min_samples = int(cfg.get("ingest.min_duration_s") * SAMPLE_RATE)
        self.pause_file = str(cfg.get("testing.pause_file"))

    def failure(self, record: Record, reason: str) -> Record:
        assert isinstance(record, Decode)
        return DecodeError(record.job_id, ErrorCode.INTERNAL, reason)

    def perform(self, record: Record, envelope: Envelope, emit: Emit) -> None:
        assert isinstance(record, Decode)
        job = record.job_id
        started = time.perf_counter()
        try:
            if record.path and not os.path.exists(record.cache_path):
                report = decode_to_file(record.path, record.cache_path)
                self.log.info(
                    "decoded",
                    job=job,
                    samples=report.samples,
                    ms=round((time.perf_counter() - started) * 1000),
                )
            elif not os.path.exists(record.cache_path):
                raise DecodeFailure("the audio cache for this job is missing")
            samples = os.path.getsize(record.cache_path) // 2
            if samples < self.min_samples:
                raise DecodeFailure(
                    f"the audio is {samples / SAMPLE_RATE:.2f} s long; at least "
                    f"{self.min_samples / SAMPLE_RATE:.2f} s is needed"
                )
        except DecodeFailure as exc:
            self.log.warning("decode_failed", job=job, reason=str(exc))
            emit(DecodeError(job, ErrorCode.DECODE_FAILED, str(exc)), envelope.id)
            return
        except Exception as exc:
            self.log.exception("decode_crashed", job=job)
            emit(DecodeError(job, ErrorCode.DECODE_FAILED, f"{type(exc).__name__}: {exc}"), envelope.id)
            return
        decode_s = time.perf_counter() - started
        pcm = PcmFile(record.cache_path)
        mel_max = mel_reference(pcm)  # before any window may run: every window uses it
        spans = 0
        for batch, (first, update) in enumerate(plan_spans(pcm, self.plan_options)):
            if batch:
                pausepoint.maybe_pause(self.pause_file, "plan", job, batch, self.log)
            spans = first + len(update)
            if spans > record.first_index:  # earlier spans are stored for good already
                skip = max(0, record.first_index - first)
                emit(Plan(job, first + skip, update[skip:], final=False, mel_max=mel_max), envelope.id)
        emit(
            Plan(job, spans, [], final=True, samples=samples, decode_s=decode_s, mel_max=mel_max),
            envelope.id,
        )
        self.log.info(
            "planned",
            job=job,
            spans=spans,
            audio_s=round(samples / SAMPLE_RATE, 1),
            ms=round((time.perf_counter() - started) * 1000),
        )


def main(argv: list[str] | None = None) -> int:
    cfg, log = process.start("ingest", __doc__, argv)
    Ingest(cfg, log).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
