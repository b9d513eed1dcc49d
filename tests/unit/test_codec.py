"""Codec: every message type round-trips; malformed frames raise ProtocolError, never else."""

from __future__ import annotations

import contextlib

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import PROTOCOL_VERSION, ErrorCode, ProtocolError, decode, encode
from protocol.codec import TYPES
from protocol.control import (
    AppendAudio,
    Cancel,
    ClearHistory,
    FetchResult,
    JobOptions,
    JobStatus,
    ListHistory,
    ListJobs,
    Pause,
    Ping,
    Reply,
    Report,
    Resume,
    SetPriority,
    Stats,
    SubmitAudio,
    SubmitFile,
)
from protocol.events import Event
from protocol.ptt import Ptt, Watch
from protocol.work import (
    Chunk,
    ChunkError,
    ChunkResult,
    Continuation,
    Decode,
    DecodeError,
    Disconnect,
    Heartbeat,
    Hold,
    Plan,
    Ready,
    Segment,
)

SEGMENT = Segment(
    start=0.0,
    end=1.5,
    text=" Hello.",
    avg_logprob=-0.2,
    no_speech_prob=0.01,
    words=[{"start": 0.0, "end": 0.5, "word": " Hello.", "probability": 0.9}],
)

EXAMPLES = [
    SubmitFile(
        path="/a/b.flac",
        priority="low",
        options=JobOptions(language="en", beam_size=1),
        label="b.flac",
        source="watcher",
    ),
    SubmitAudio(pcm=b"\x00\x01" * 100, priority="high", options=JobOptions(word_timestamps=True)),
    SubmitAudio(pcm=b"\x00\x01", source="ptt", marks={"key_up": 1.5, "submitted": 2.0}, mel_max=1.25),
    SubmitAudio(pcm=b"\x00\x01", open=True, hold="u1", member="audio@h:1"),
    AppendAudio(job_id="j", pcm=b"\x00\x01", offset=160000, final=True, marks={"key_up": 3.0}),
    Hold(hold_id="u1"),
    Hold(hold_id="u1", active=False, max_s=5.0),
    Report(kind="delivered", job_id="abc", data={"mode": "clipboard", "marks": {"delivered": 3.0}}),
    ListHistory(search="hello", limit=0),
    ClearHistory(),
    Ptt(action="stop", at=12.5, origin="hotkey"),
    Ptt(action="cancel", reason="tap"),
    Watch(action="add", path="/home/me/inbox"),
    JobStatus(job_id="abc"),
    Cancel(job_id="abc"),
    Pause(job_id="abc"),
    Resume(job_id="abc"),
    FetchResult(job_id="abc"),
    SetPriority(job_id="abc", priority="high"),
    ListJobs(states=["running"], limit=5),
    Ping(actor="transcriber"),
    Stats(),
    Reply(status="error", code="not_found", reason="no job"),
    Reply(status="ok", data={"job": {"id": "x", "n": [1, 2]}}),
    Ready(role="transcriber", name="t@h:1", pid=1, model="tiny.en", health="degraded", detail="x"),
    Heartbeat(busy=True),
    Heartbeat(health="degraded", detail="no display"),
    Disconnect(reason="who?"),
    Chunk(
        job_id="j",
        index=3,
        start=200000,
        pcm=b"\x01\x00" * 10,
        options=JobOptions(language="en"),
        context="previous",
    ),
    ChunkResult(
        job_id="j",
        index=3,
        segments=[SEGMENT],
        continuation=Continuation(job_id="j", next_index=4, next_start=200010, context="c"),
        language="en",
        compute_s=1.25,
        audio_s=29.0,
    ),
    ChunkError(job_id="j", index=3, code="chunk_failed", reason="boom"),
    Decode(job_id="j", path="/x.mp3", cache_path="/c/j.pcm", first_index=2),
    Plan(
        job_id="j",
        first_index=0,
        spans=[[0, 16000], [20000, 40000]],
        final=True,
        samples=40000,
        decode_s=0.5,
    ),
    DecodeError(job_id="j", code="decode_failed", reason="not audio"),
    Event(kind="completed", job_id="j", data={"wall_s": 1.0}),
]


def test_every_message_type_has_an_example() -> None:
    assert {type(m).TYPE for m in EXAMPLES} == set(TYPES)


@pytest.mark.parametrize("record", EXAMPLES, ids=lambda r: r.TYPE)
def test_round_trip(record) -> None:
    frame = encode(record, "tester", parent="p1")
    envelope, decoded = decode(frame)
    assert decoded == record
    assert (envelope.type, envelope.parent, envelope.sender, envelope.version) == (
        record.TYPE,
        "p1",
        "tester",
        PROTOCOL_VERSION,
    )
    assert len(envelope.id) == 16


def _frame(**overrides) -> bytes:
    data = {
        "v": 1,
        "type": "job_status",
        "id": "i",
        "parent": "",
        "sender": "s",
        "time": 1.0,
        "body": {"job_id": "abc"},
    }
    data.update(overrides)
    return msgpack.packb({k: v for k, v in data.items() if v is not ...})


def test_unknown_fields_are_ignored() -> None:
    frame = _frame(body={"job_id": "abc", "future": [1, 2]}, extra=1)
    assert decode(frame)[1] == JobStatus(job_id="abc")


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"", ErrorCode.BAD_FRAME),
        (b"\xc1\xff garbage", ErrorCode.BAD_FRAME),
        (msgpack.packb([1, 2, 3]), ErrorCode.BAD_FRAME),
        (_frame(v=...), ErrorCode.BAD_FRAME),
        (_frame(v=99), ErrorCode.UNSUPPORTED_VERSION),
        (_frame(v="1"), ErrorCode.BAD_FRAME),
        (_frame(type=7), ErrorCode.BAD_FRAME),
        (_frame(type="launch_missiles"), ErrorCode.UNKNOWN_TYPE),
        (_frame(body={"job_id": 12}), ErrorCode.BAD_MESSAGE),
        (_frame(body={}), ErrorCode.BAD_MESSAGE),
        (_frame(body=[1]), ErrorCode.BAD_MESSAGE),
        (_frame(time="noon"), ErrorCode.BAD_FRAME),
        (encode(SubmitAudio(pcm=b"\x00\x00"), "s")[:-1], ErrorCode.BAD_FRAME),  # truncated
    ],
    ids=lambda x: x if isinstance(x, str) else None,
)
def test_malformed_frames_raise_protocol_errors(frame: bytes, code: ErrorCode) -> None:
    with pytest.raises(ProtocolError) as info:
        decode(frame)
    assert info.value.code == code
    assert info.value.reason


def test_nested_records_are_checked() -> None:
    body = ChunkResult(
        job_id="j", index=0, segments=[SEGMENT], continuation=Continuation("j", 1, 5)
    ).to_wire()
    body["segments"][0]["start"] = "zero"
    with pytest.raises(ProtocolError, match="start"):
        decode(_frame(type="chunk_result", body=body))


def test_bool_is_not_an_int() -> None:
    with pytest.raises(ProtocolError):
        decode(_frame(type="list_jobs", body={"limit": True}))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_random_bytes_never_raise_anything_else(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode(data)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["v", "type", "id", "parent", "sender", "time", "body"]),
        st.one_of(
            st.none(),
            st.integers(-(2**63), 2**63 - 1),
            st.text(max_size=8),
            st.binary(max_size=8),
            st.sampled_from(sorted(TYPES)),
            st.dictionaries(st.text(max_size=6), st.integers(0, 9)),
        ),
    )
)
def test_mutated_envelopes_never_raise_anything_else(data: dict) -> None:
    with contextlib.suppress(ProtocolError):
        decode(msgpack.packb(data))
