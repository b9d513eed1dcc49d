"""Unit tests of the drain bookkeeping (actors/hub/holds.py, SPEC.md 6.4 and 12.6)."""

from __future__ import annotations

from actors.hub.holds import BusyLog, Holds
from actors.hub.streams import AudioStreams
from protocol.work import Segment


def test_a_hold_ends_on_release_job_end_sender_loss_or_expiry() -> None:
    holds = Holds()
    holds.take("a", b"audio-1", max_s=60, now=0.0)
    holds.take("b", b"audio-1", max_s=60, now=0.0)
    holds.take("c", b"audio-2", max_s=5, now=1.0)
    assert holds.active
    assert [r.why for r in holds.release("a", now=2.0)] == ["released"]
    assert holds.release("a", now=2.0) == [], "releasing twice changes nothing"
    holds.attach("b", "job-1")
    assert holds.job_ended("job-2", now=3.0) == []
    assert [(r.hold.hold_id, r.why, r.held_s) for r in holds.job_ended("job-1", now=3.0)] == [
        ("b", "job_ended", 3.0)
    ]
    assert holds.expire(now=5.9) == []
    assert [r.why for r in holds.expire(now=6.0)] == ["expired"]
    assert not holds.active


def test_a_hold_said_again_moves_to_the_new_socket() -> None:
    holds = Holds()
    holds.take("a", b"old", max_s=60, now=0.0)
    holds.take("a", b"new", max_s=60, now=1.0)
    assert holds.sender_lost(b"old") == [], "the old registration expiring does not end it"
    assert holds.holds["a"].since == 0.0, "the bound counts from the first HOLD"
    assert [r.why for r in holds.sender_lost(b"new")] == ["sender_lost"]


def test_busy_with_other_work_at_a_moment() -> None:
    log = BusyLog()
    log.started(b"t1", "file", at=10.0)
    log.ended(b"t1", at=12.0)
    log.started(b"t1", "utterance", at=12.5)
    assert log.busy_with_other(11.0, "utterance")
    assert not log.busy_with_other(12.2, "utterance"), "idle between windows"
    assert not log.busy_with_other(13.0, "utterance"), "its own window is not other work"
    log.started(b"t2", "file", at=12.8)  # still in flight
    assert log.busy_with_other(20.0, "utterance")


class _Book:
    """The two things AudioStreams.partial uses of the JobBook: the stored segments and emit."""

    def __init__(self, stored: list[str]) -> None:
        self.stored = stored
        self.emitted: list[tuple[str, str, dict[str, object]]] = []
        self.store = self
        self.cfg = {"scheduler.open_audio_timeout_s": 30.0}

    def segments(self, job_id: str) -> list[dict[str, str]]:
        return [{"text": t} for t in self.stored]

    def emit(self, kind: str, job_id: str, **data: object) -> None:
        self.emitted.append((kind, job_id, data))


def _segment(text: str) -> Segment:
    return Segment(start=0.0, end=1.0, text=text, avg_logprob=-0.1, no_speech_prob=0.0)


def test_partial_text_grows_by_each_window_and_is_read_once_after_a_restart() -> None:
    book = _Book([" Hello there.", " "])  # what a restarted scheduler finds committed
    jobs = AudioStreams(book)  # type: ignore[arg-type]
    jobs.partial("j", [_segment(" Hello there.")], chunks=1)
    book.stored = ["not read while the text is kept"]
    jobs.partial("j", [_segment(" How"), _segment(" "), _segment(" are you?")], chunks=2)
    jobs.partial("j", [], chunks=3)
    book.stored = ["Hello there.", "How are you?", "Fine."]
    jobs.partial("j", None, chunks=4)  # a window committed before: the store says what is there
    assert [d["text"] for _, _, d in book.emitted] == [
        "Hello there.",
        "Hello there. How are you?",
        "Hello there. How are you?",
        "Hello there. How are you? Fine.",
    ]
    jobs.job_ended("j")
    book.stored = ["read again"]
    jobs.partial("j", [], chunks=5)
    assert book.emitted[-1][2]["text"] == "read again", "an ended job's text is not kept"
