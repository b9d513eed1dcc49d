"""Control family: requests from clients (CLI probe, watcher, audio) to the scheduler's
control endpoint, and the one `reply` record that answers every request (SPEC.md, "Control")."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from protocol.records import Record
from protocol.vocab import SAMPLE_RATE


@dataclass(frozen=True)
class JobOptions(Record):
    """Per-job decoding options; None means the scheduler's configured default."""

    language: str | None = None
    """ISO code, or None to auto-detect (English-only models always say "en")."""
    task: str | None = None
    """"transcribe" or "translate" (to English)."""
    beam_size: int | None = None
    """Beam width; 1 is greedy."""
    initial_prompt: str | None = None
    """Prompt for every chunk (names, spelling, style); with condition_on_previous_text
    only the first chunk gets it, later ones get the previous chunk's text."""
    word_timestamps: bool | None = None
    """Also return per-word timings."""
    condition_on_previous_text: bool | None = None
    """Feed each chunk the previous chunk's text as context."""


@dataclass(frozen=True)
class SubmitFile(Record):
    """Transcribe a file that the ingest actor can read."""

    TYPE = "submit_file"
    path: str
    """Absolute path of the media file."""
    priority: str = "normal"
    """One of high, normal, low."""
    options: JobOptions = field(default_factory=JobOptions)
    """Decoding options."""
    label: str = ""
    """Free text shown in listings (the CLI puts the file name)."""
    source: str = "cli"
    """Who submitted: cli, watcher, ptt, ..."""


@dataclass(frozen=True)
class SubmitAudio(Record):
    """Transcribe PCM carried in the message (push-to-talk utterances)."""

    TYPE = "submit_audio"
    pcm: bytes
    """Little-endian signed 16-bit mono samples."""
    sample_rate: int = SAMPLE_RATE
    """Must be 16000."""
    priority: str = "high"
    """One of high, normal, low."""
    options: JobOptions = field(default_factory=JobOptions)
    """Decoding options."""
    label: str = ""
    """Free text shown in listings."""
    source: str = "cli"
    """Who submitted."""
    marks: dict[str, float] = field(default_factory=dict)
    """Latency marks so far (SPEC.md 12.6), epoch seconds."""
    mel_max: float | None = None
    """The recording's log-mel reference level; None: each window's own."""
    open: bool = False
    """More audio follows with APPEND-AUDIO (SPEC.md 12.4)."""
    hold: str = ""
    """The drain hold this utterance fulfils: it lasts until the job ends (SPEC.md 6.4)."""
    member: str = ""
    """The sender's member name on `work`: an open job is closed if that member goes away."""


@dataclass(frozen=True)
class AppendAudio(Record):
    """The next piece of an open audio job (SPEC.md 12.4)."""

    TYPE = "append_audio"
    job_id: str
    pcm: bytes
    """Little-endian int16 mono 16 kHz samples that follow the job's audio."""
    offset: int
    """Sample where this piece starts: the job's audio length when it was cut. A piece already
    applied (sent again after a timeout) is acknowledged without change."""
    final: bool = False
    """The last piece."""
    marks: dict[str, float] = field(default_factory=dict)
    """Latency marks to add."""
    mel_max: float | None = None
    """The log-mel reference level of all audio so far."""


@dataclass(frozen=True)
class JobRef(Record):
    """Base for requests that name one job."""

    job_id: str
    """The job's id as returned by a submit."""


@dataclass(frozen=True)
class JobStatus(JobRef):
    """Ask for one job's state and progress."""

    TYPE = "job_status"


@dataclass(frozen=True)
class Cancel(JobRef):
    """Cancel a queued, running or paused job."""

    TYPE = "cancel"


@dataclass(frozen=True)
class Pause(JobRef):
    """Stop dispatching a job's chunks; the chunk in flight still commits."""

    TYPE = "pause"


@dataclass(frozen=True)
class Resume(JobRef):
    """Let a paused job run again from its first uncommitted chunk."""

    TYPE = "resume"


@dataclass(frozen=True)
class FetchResult(JobRef):
    """Get a completed job's segments and text."""

    TYPE = "fetch_result"


@dataclass(frozen=True)
class SetPriority(Record):
    """Move a job to another priority class (keeps its place in submission order)."""

    TYPE = "set_priority"
    job_id: str
    """The job."""
    priority: str
    """One of high, normal, low."""


@dataclass(frozen=True)
class ListJobs(Record):
    """List jobs, newest first."""

    TYPE = "list_jobs"
    states: list[str] = field(default_factory=list)
    """Only these states; empty means all."""
    limit: int = 50
    """At most this many."""


@dataclass(frozen=True)
class Ping(Record):
    """Liveness of the scheduler, or of a named actor it knows."""

    TYPE = "ping"
    actor: str = "scheduler"
    """scheduler, or any other role of protocol.vocab's ROSTER."""


@dataclass(frozen=True)
class Stats(Record):
    """Queue depths, counters and timing percentiles."""

    TYPE = "stats"


@dataclass(frozen=True)
class Report(Record):
    """A member asks the scheduler to publish an event (SPEC.md 5.3)."""

    TYPE = "report"
    kind: str
    """One of protocol.vocab's REPORTED_KINDS: recording, dropped, device, delivered, the
    watcher's kinds, or killed (the warden)."""
    job_id: str = ""
    """The job, for delivered."""
    data: dict[str, Any] = field(default_factory=dict)
    """The event's data."""


@dataclass(frozen=True)
class ListHistory(Record):
    """Push-to-talk history, newest first."""

    TYPE = "list_history"
    search: str = ""
    """Case-insensitive substring of the text; empty: all."""
    limit: int = 50
    """At most this many; 0: all."""


@dataclass(frozen=True)
class ClearHistory(Record):
    """Delete every history entry."""

    TYPE = "clear_history"


@dataclass(frozen=True)
class Reply(Record):
    """The answer to every control request."""

    TYPE = "reply"
    status: str
    """ok, error or pending."""
    data: dict[str, Any] = field(default_factory=dict)
    """The request's result (see SPEC.md per request)."""
    code: str = ""
    """With status error: a code from the errors table."""
    reason: str = ""
    """With status error: what went wrong, for people."""


REQUESTS: tuple[type[Record], ...] = (
    SubmitFile,
    SubmitAudio,
    AppendAudio,
    JobStatus,
    ListJobs,
    Cancel,
    Pause,
    Resume,
    SetPriority,
    FetchResult,
    Ping,
    Stats,
    Report,
    ListHistory,
    ClearHistory,
)
