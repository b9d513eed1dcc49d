"""Work family: the scheduler's work endpoint and its workers, ingest and transcriber
(SPEC.md, "Work"). Heartbeats flow both ways on the same socket."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from protocol.control import JobOptions
from protocol.records import Record
from protocol.vocab import SAMPLE_RATE


@dataclass(frozen=True)
class Ready(Record):
    """Worker to scheduler: I can take work of this role."""

    TYPE = "ready"
    role: str
    """A role of protocol.vocab's ROSTER: transcriber or ingest (workers), or a member: audio,
    hotkey, deliver, watcher, warden."""
    name: str
    """Human-readable worker name (host:pid)."""
    pid: int
    """Process id, for status displays."""
    model: str = ""
    """Transcriber: the model it serves."""
    health: str = "ok"
    """ok or degraded."""
    detail: str = ""
    """Why degraded, in plain words."""
    rss: int = 0
    """Resident memory in bytes; 0: unknown (SPEC.md 6.2)."""


@dataclass(frozen=True)
class Heartbeat(Record):
    """Either way: I am alive."""

    TYPE = "heartbeat"
    busy: bool = False
    """Worker: a task is in progress."""
    health: str = ""
    """Member: ok or degraded; empty: unchanged."""
    detail: str = ""
    """Member: why degraded."""
    rss: int = 0
    """Worker or member: resident memory in bytes; 0: unknown."""


@dataclass(frozen=True)
class Disconnect(Record):
    """Scheduler to worker: I do not know you; reconnect and say READY. Worker to scheduler:
    I am stopping; the scheduler's DISCONNECT back acknowledges it (SPEC.md 6.5)."""

    TYPE = "disconnect"
    reason: str = ""
    """Why."""
    abandon: bool = False
    """Worker to scheduler: I drop my task; dispatch it again now (SPEC.md 6.5)."""


@dataclass(frozen=True)
class Hold(Record):
    """Audio to scheduler: an utterance is being recorded; start no file window until it is
    done (SPEC.md 6.4)."""

    TYPE = "hold"
    hold_id: str
    """The utterance id."""
    active: bool = True
    """true: take the hold; false: release it."""
    max_s: float = 60.0
    """The hold ends by itself this long after it arrived."""


@dataclass(frozen=True)
class Chunk(Record):
    """Scheduler to transcriber: transcribe exactly this window, then reply."""

    TYPE = "chunk"
    job_id: str
    """The job."""
    index: int
    """Window index within the job (windows committed before this one)."""
    start: int
    """Sample where the window starts in the job's audio; segment times are offset by it."""
    pcm: bytes
    """Little-endian int16 mono samples at sample_rate, at most 30 s."""
    options: JobOptions = field(default_factory=JobOptions)
    """Resolved options."""
    context: str = ""
    """Previous window's text when conditioning on previous text."""
    sample_rate: int = SAMPLE_RATE
    """Always 16000 in version 1."""
    mel_max: float | None = None
    """The job's log-mel reference level (actors/media/loudness.py); None: the window's own."""


@dataclass(frozen=True)
class Word(Record):
    """One word with its timing."""

    start: float
    end: float
    word: str
    probability: float


@dataclass(frozen=True)
class Segment(Record):
    """One Whisper segment, times in seconds from the start of the job's audio."""

    start: float
    end: float
    text: str
    avg_logprob: float
    no_speech_prob: float
    words: list[Any] = field(default_factory=list)
    """Word maps (start, end, word, probability) when word timestamps were asked."""


@dataclass(frozen=True)
class Continuation(Record):
    """What the scheduler needs to go on with the job after this window."""

    job_id: str
    next_index: int
    next_start: int
    """Sample where the next window starts: the end of the last complete segment (Whisper's
    own seek), or the window's end when its last segment was complete."""
    context: str = ""
    """Context text for the next window (empty when not conditioning)."""


@dataclass(frozen=True)
class ChunkResult(Record):
    """Transcriber to scheduler: the chunk's segments and the continuation."""

    TYPE = "chunk_result"
    job_id: str
    index: int
    segments: list[Segment]
    continuation: Continuation
    language: str = ""
    compute_s: float = 0.0
    """Seconds the model took."""
    audio_s: float = 0.0
    """Seconds of audio in the chunk."""


@dataclass(frozen=True)
class ChunkError(Record):
    """Transcriber to scheduler: this chunk could not be transcribed."""

    TYPE = "chunk_error"
    job_id: str
    index: int
    code: str
    reason: str


@dataclass(frozen=True)
class Decode(Record):
    """Scheduler to ingest: decode `path` into `cache_path`, then plan speech spans."""

    TYPE = "decode"
    job_id: str
    path: str
    """Source media; empty when the PCM is already in cache_path (plan only)."""
    cache_path: str
    """Where the int16 PCM goes (or already is)."""
    first_index: int = 0
    """Spans before this index are stored for good; send this one and later ones."""


@dataclass(frozen=True)
class Plan(Record):
    """Ingest to scheduler: planned speech spans, [start, end) in samples."""

    TYPE = "plan"
    job_id: str
    first_index: int
    """spans[k] is span first_index + k; it replaces a stored span of that index (which only
    ever grows), and spans after it are dropped."""
    spans: list[list[int]]
    final: bool
    """No more spans will follow, and the last one is closed."""
    samples: int = 0
    """With final: total decoded samples."""
    mel_max: float | None = None
    """The recording's log-mel reference level (actors/media/loudness.py), in every update."""
    decode_s: float = 0.0
    """With final: seconds spent decoding."""


@dataclass(frozen=True)
class DecodeError(Record):
    """Ingest to scheduler: the file is not usable audio."""

    TYPE = "decode_error"
    job_id: str
    code: str
    reason: str


WORK_MESSAGES: tuple[type[Record], ...] = (
    Ready,
    Heartbeat,
    Disconnect,
    Hold,
    Chunk,
    ChunkResult,
    ChunkError,
    Decode,
    Plan,
    DecodeError,
)
