"""A malformed frame never crashes an actor: the real scheduler process answers each bad
request with an error (code and reason) and keeps serving; workers count and skip them."""

from __future__ import annotations

import os
from collections.abc import Iterator

import msgpack
import pytest
import zmq

from actors.runtime.config import Config
from actors.runtime.worker import Worker
from protocol import decode, encode
from protocol.control import Ping, Reply, Stats, SubmitAudio
from protocol.work import Heartbeat
from tests.support.harness import Stack

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def scheduler() -> Iterator[Stack]:
    with Stack() as s:
        s.start("scheduler")
        s.wait_ready(roles=())
        yield s


def raw_request(stack: Stack, frames: list[bytes], timeout_ms: int = 5000) -> Reply:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(stack.cfg.endpoint("control"))
    try:
        sock.send_multipart(frames)
        assert sock.poll(timeout_ms), "no reply: the scheduler must answer malformed requests"
        reply = decode(sock.recv_multipart()[-1])[1]
        assert isinstance(reply, Reply)
        return reply
    finally:
        sock.close()


def envelope(**overrides) -> bytes:
    data = {"v": 1, "type": "ping", "id": "abcd", "parent": "", "sender": "t", "time": 0.0, "body": {}}
    data.update(overrides)
    return msgpack.packb(data)


BAD = {
    "random bytes": ([b"", os.urandom(64)], "bad_frame"),
    "not msgpack": ([b"", b"\xc1"], "bad_frame"),
    "a list": ([b"", msgpack.packb([1, 2])], "bad_frame"),
    "truncated": ([b"", encode(SubmitAudio(pcm=b"\x00" * 1000), "t")[:-200]], "bad_frame"),
    "unknown version": ([b"", envelope(v=2)], "unsupported_version"),
    "unknown type": ([b"", envelope(type="format_disk")], "unknown_type"),
    "work message on control": ([b"", encode(Heartbeat(), "t")], "unknown_type"),
    "wrong field type": ([b"", envelope(type="job_status", body={"job_id": 5})], "bad_message"),
    "missing field": ([b"", envelope(type="cancel", body={})], "bad_message"),
    "two payload frames": ([b"", envelope(), envelope()], "bad_frame"),
    "bad priority": (
        [b"", encode(SubmitAudio(pcm=b"\x00\x00" * 8000, priority="asap"), "t")],
        "invalid_argument",
    ),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_requests_get_error_replies(scheduler: Stack, name: str) -> None:
    frames, code = BAD[name]
    reply = raw_request(scheduler, frames)
    assert (reply.status, reply.code) == ("error", code)
    assert reply.reason
    assert scheduler.client.call(Ping())["actor"] == "scheduler"  # still serving


def test_error_reply_names_the_request(scheduler: Stack) -> None:
    reply_frames = raw_request(scheduler, [b"", envelope(v=9, id="feedbeef")])
    assert reply_frames.code == "unsupported_version"


def test_garbage_on_the_work_endpoint_is_counted_not_fatal(scheduler: Stack) -> None:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(scheduler.cfg.endpoint("work"))
    before = scheduler.client.call(Stats())["scheduler"]["bad_frames"]
    for _ in range(20):
        sock.send_multipart([b"", os.urandom(32)])
    sock.send_multipart([b"", encode(Heartbeat(), "stranger")])  # unknown worker: told to reconnect
    assert sock.poll(5000)
    assert decode(sock.recv_multipart()[-1])[0].type == "disconnect"
    sock.close()
    after = scheduler.client.call(Stats())["scheduler"]["bad_frames"]
    assert after - before == 20
    assert scheduler.procs["scheduler"].poll() is None


def test_worker_skips_malformed_frames(tmp_path) -> None:
    cfg = Config.load(path=tmp_path / "none.toml", overrides=[f"paths.runtime_dir={tmp_path}/r"])
    worker = Worker(cfg)
    worker.link.handle_frame(b"\x00garbage")
    worker.link.handle_frame(encode(Ping(), "s"))  # not a work message
    assert worker.link.bad_frames == 2
    assert worker.pending == 0
