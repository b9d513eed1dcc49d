"""Transcriber actor: holds the Whisper model for exactly one chunk per request.

Socket: one DEALER to the scheduler's work endpoint (actors/runtime/worker.py). Implements SPEC.md
"Work: transcriber": READY, then CHUNK -> CHUNK_RESULT (with the continuation) or
CHUNK_ERROR. A model that fails to load leaves the worker up, answering every chunk with
`model_unavailable`, so the scheduler can fail the job with that reason.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np

from actors.runtime import pausepoint, process
from actors.runtime.config import Config
from actors.runtime.worker import Emit, Worker
from actors.workers.model import WhisperBackend
from protocol.codec import Envelope
from protocol.errors import ErrorCode
from protocol.records import Record
from protocol.vocab import SAMPLE_RATE, Role
from protocol.work import Chunk, ChunkError, ChunkResult, Continuation, Ready, Segment

RESOLVED_OPTIONS = ("task", "beam_size", "word_timestamps", "condition_on_previous_text")
"""Options a CHUNK must carry set (`language` None means detect, `initial_prompt` None none)."""


class Transcriber(Worker):
    ROLE = Role.TRANSCRIBER
    TASKS = (Chunk,)

    def __init__(self, cfg: Config, backend: Any, log: Any | None = None) -> None:
        super().__init__(cfg, log)
        self.backend = backend
        self.load_error = ""
        self.pause_file = str(cfg.get("testing.pause_file"))

    def load(self) -> None:
        try:
            self.backend.load()
            self.log.info("model_loaded", model=self.backend.model_name)
        except Exception as exc:
            self.load_error = str(exc)
            self.log.error("model_load_failed", reason=self.load_error)

    def ready_message(self) -> Ready:
        return Ready(
            role=self.ROLE,
            name=self.name,
            pid=os.getpid(),
            model=self.backend.model_name,
            health="degraded" if self.load_error else "ok",
            detail=self.load_error,
        )

    def failure(self, record: Record, reason: str) -> Record:
        assert isinstance(record, Chunk)
        return ChunkError(record.job_id, record.index, ErrorCode.INTERNAL, reason)

    def perform(self, record: Record, envelope: Envelope, emit: Emit) -> None:
        assert isinstance(record, Chunk)
        if self.load_error:
            emit(
                ChunkError(record.job_id, record.index, ErrorCode.MODEL_UNAVAILABLE, self.load_error),
                envelope.id,
            )
            return
        if record.sample_rate != SAMPLE_RATE or len(record.pcm) % 2:
            emit(
                ChunkError(
                    record.job_id, record.index, ErrorCode.BAD_MESSAGE, "chunk PCM must be 16 kHz int16"
                ),
                envelope.id,
            )
            return
        options = record.options.to_wire()
        unresolved = [k for k in RESOLVED_OPTIONS if options.get(k) is None]
        if unresolved:  # the scheduler resolves every option (SPEC.md 5.4): no defaults here
            reason = f"chunk options not resolved: {', '.join(unresolved)}"
            emit(ChunkError(record.job_id, record.index, ErrorCode.BAD_MESSAGE, reason), envelope.id)
            return
        audio = np.frombuffer(record.pcm, dtype="<i2").astype(np.float32) / 32768.0
        conditioning = bool(options["condition_on_previous_text"])
        prompt = record.context if (conditioning and record.context) else options["initial_prompt"]
        self.log.info("chunk_start", job=record.job_id, chunk=record.index)
        pausepoint.maybe_pause(self.pause_file, "window", record.job_id, record.index, self.log)
        try:
            out = self.backend.transcribe(
                audio, record.start / record.sample_rate, options, prompt, mel_max=record.mel_max
            )
        except Exception as exc:
            self.log.exception("chunk_failed", job=record.job_id, chunk=record.index)
            emit(
                ChunkError(
                    record.job_id, record.index, ErrorCode.CHUNK_FAILED, f"{type(exc).__name__}: {exc}"
                ),
                envelope.id,
            )
            return
        segments = [Segment.from_wire(s) for s in out.segments]
        text = " ".join(s.text.strip() for s in segments).strip()
        emit(
            ChunkResult(
                job_id=record.job_id,
                index=record.index,
                segments=segments,
                continuation=Continuation(
                    job_id=record.job_id,
                    next_index=record.index + 1,
                    next_start=record.start + out.consumed,
                    context=text if conditioning else "",
                ),
                language=out.language,
                compute_s=out.compute_s,
                audio_s=len(audio) / SAMPLE_RATE,
            ),
            envelope.id,
        )
        self.log.info(
            "chunk_done",
            job=record.job_id,
            chunk=record.index,
            audio_s=round(len(audio) / SAMPLE_RATE, 2),
            consumed_s=round(out.consumed / SAMPLE_RATE, 2),
            ms=round(out.compute_s * 1000),
            repairs=out.repairs,
            repair_ms=round(out.repair_s * 1000),
        )


def main(argv: list[str] | None = None) -> int:
    cfg, log = process.start("transcriber", __doc__, argv)
    backend = WhisperBackend(
        model=cfg.get("transcriber.model"),
        device=cfg.get("transcriber.device"),
        compute_type=cfg.get("transcriber.compute_type"),
        threads=cfg.get("transcriber.threads"),
        seed=cfg.get("transcriber.seed"),
        allow_download=cfg.get("transcriber.allow_download"),
        repair_vad_threshold=float(cfg.get("transcriber.repair_vad_threshold")),
    )
    worker = Transcriber(cfg, backend, log)
    worker.load()
    worker.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
