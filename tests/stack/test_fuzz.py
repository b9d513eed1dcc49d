"""Fuzzing the sockets (issue 5): random and mutated frames on the scheduler's `control` and
`work` endpoints and on the members' `ptt` and `watch` endpoints never crash or hang an actor.
Every frame on a REPLY endpoint (control, ptt, watch) is answered within a deadline by one
decodable REPLY, `ok` or `error` with a code from protocol/errors.py and never `internal`
(Sections 3.3, 4.3, 5.1, 16.1, 17); afterwards the same scheduler process (same pid) still
serves requests and completes a real job with the right text.

Reproducing: every fuzz test runs Hypothesis with `derandomize=True` (the same examples on
every run, no example database); a failure prints the minimal frames. SOTTOVOCE_FUZZ_SCALE=N
(default 1) multiplies the example counts for a longer soak.

Fake workers: a fuzzed READY on `work` registers the fuzzing socket as a worker, which the
scheduler may then give a real task. Each work example ends with a probe READY of an unknown
role from the same socket: the scheduler drops the registration (a task it held goes back to
the queue: 10.7) and answers DISCONNECT, so no fake worker outlives its example, and the answer
tells the test that every frame of the example has been handled.

Worker replies: replies that do not answer the worker's current task are stale and dropped
before any handler looks at them, so a second, scheduler-only stack has this test as its only
ingest and only transcriber: it takes the DECODE and CHUNK tasks it is given and answers them
with fuzzed PLAN, DECODE-ERROR, CHUNK-RESULT and CHUNK-ERROR messages that carry the right
parent, which reaches the handlers and the store behind them.

Left out on purpose (see `Target.harmless`): WATCH `add` outside the test's
folder (the watcher creates the folder; the tests run as root), SUBMIT-FILE of an existing file
outside the test's folder (a device file would be read), and `beam_size` above 8 (a
CTranslate2 beam of 100000 allocates gigabytes: see the report of issue 5).
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import tempfile
import time
import types
import typing
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

import msgpack
import pytest
import zmq
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from protocol import ErrorCode, ProtocolError, decode, encode
from protocol.codec import MAX_FRAME_BYTES, TYPES, new_id, peek_id
from protocol.control import (
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
from protocol.ptt import Ptt, Watch
from protocol.records import Record
from protocol.vocab import FINAL_STATES
from protocol.work import (
    Chunk,
    ChunkError,
    ChunkResult,
    Continuation,
    Decode,
    DecodeError,
    Disconnect,
    Heartbeat,
    Plan,
    Ready,
    Segment,
    Word,
)
from tests.support.harness import Stack, pcm16, poll

pytestmark = pytest.mark.stack

SCALE = int(os.environ.get("SOTTOVOCE_FUZZ_SCALE", "1"))
REPLY_TIMEOUT_MS = 5000
PROBE_ROLE = "fuzz-probe"
CODES = {code.value for code in ErrorCode}
TYPE_ERRORS = {
    ErrorCode.BAD_FRAME,
    ErrorCode.UNKNOWN_TYPE,
    ErrorCode.UNSUPPORTED_VERSION,
    ErrorCode.BAD_MESSAGE,
}
CRASHES = (
    "handler_crashed",
    "work_handler_crashed",
    "heartbeat_duty_failed",
    "request_build_failed",
    "fail_failed",
    "request_crashed",
    "task_crashed",
)
"""Log events of a barrier catching an exception: each is a bug."""
SENT: Counter[str] = Counter()
"""Frames sent per endpoint, for the summary."""


def fuzz(examples: int) -> Callable[[Any], Any]:
    return settings(
        max_examples=examples * SCALE,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.large_base_example,
        ],
    )


# --- values ---------------------------------------------------------------------------------


def deep(depth: int, leaf: Any = 1) -> Any:
    """`depth` nested arrays around `leaf`."""
    for _ in range(depth):
        leaf = [leaf]
    return leaf


ODD_INTS = [0, -1, 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, -(2**63)]
ODD_FLOATS = [0.0, -0.0, -1.0, math.nan, math.inf, -math.inf, 1e308, -1e308, 5e-324]
ODD_STRS = ["", " ", "\x00", "é\u2028", "../..", "x" * 70_000]
ODD_BYTES = [b"", b"\x00", b"\x00" * 9, b"\x01" * 8001]
ODD_LISTS = [[], [None], [[]], [b"\x00"], [math.nan], deep(400)]
ODD_MAPS = [{}, {"": None}, {b"k": 1}, {"k": b"\x00"}, {"k": math.nan}, {"k": deep(400)}]


def fresh(containers: list[Any]) -> st.SearchStrategy[Any]:
    """One of `containers`, a new copy each draw: a later mutation in the same example may
    change it, and a shared one would then differ in the next example."""
    packed = [msgpack.packb(c, use_bin_type=True) for c in containers]
    return st.sampled_from(packed).map(lambda b: msgpack.unpackb(b, raw=False, strict_map_key=False))


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.sampled_from(ODD_INTS),
    st.floats(),
    st.text(max_size=16),
    st.binary(max_size=32),
)
keys = st.one_of(st.text(max_size=8), st.binary(max_size=4), st.integers(-3, 3))
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
    max_leaves=12,
)
TYPE_NAMES = sorted(TYPES)
FIELD_NAMES = sorted(
    {f.name for cls in (*TYPES.values(), JobOptions, Segment, Word, Continuation) for f in fields(cls)}
)


def odd_like(value: Any) -> st.SearchStrategy[Any]:
    """Values of the same wire type as `value` that a handler may not expect."""
    if isinstance(value, bool):
        return st.just(not value)
    if isinstance(value, int):
        return st.sampled_from(ODD_INTS)
    if isinstance(value, float):
        return st.sampled_from(ODD_FLOATS)
    if isinstance(value, str):
        return st.sampled_from(ODD_STRS) | st.text(max_size=12)
    if isinstance(value, bytes):
        return st.sampled_from(ODD_BYTES) | st.binary(max_size=40)
    if isinstance(value, list):
        return fresh(ODD_LISTS)
    if isinstance(value, dict):
        return fresh(ODD_MAPS)
    return values


def pack(obj: Any) -> bytes:
    try:
        return msgpack.packb(obj, use_bin_type=True)
    except (ValueError, OverflowError, TypeError):  # deeper or bigger than msgpack writes
        reject()
        raise  # unreachable: reject() raises


def wire(record: Record, parent: str = "", sender: str = "fuzz") -> dict[str, Any]:
    """A valid frame of `record`, as the decoded map it is on the wire."""
    return dict(msgpack.unpackb(encode(record, sender, parent=parent), raw=False))


# --- strategies -----------------------------------------------------------------------------

random_envelopes = st.fixed_dictionaries(
    {
        "v": st.just(1) | values,
        "type": st.sampled_from(TYPE_NAMES) | values,
        "id": st.text(max_size=16) | values,
        "sender": st.just("fuzz") | values,
    },
    optional={
        "parent": st.text(max_size=16) | values,
        "time": st.floats() | values,
        "body": st.dictionaries(st.sampled_from(FIELD_NAMES) | keys, values, max_size=6) | values,
        "extra": values,
    },
)
random_payloads = st.one_of(
    st.binary(max_size=200),
    values.map(pack),
    random_envelopes.map(pack),
)
routes: st.SearchStrategy[list[bytes]] = st.one_of(
    st.just([b""]),
    st.just([]),
    st.lists(st.binary(max_size=8), min_size=1, max_size=3),
)
"""Frames before the payload: a DEALER's empty delimiter, none, or any (more than one is
answered bad_frame)."""


@st.composite
def mutated_bytes(draw: st.DrawFn, seed: bytes) -> bytes:
    """`seed` after 1 to 4 bit flips, truncations, insertions, deletions or overwrites, mostly
    near its head (the envelope) or tail (the body's last fields)."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            data.extend(draw(st.binary(min_size=1, max_size=8)))
            continue
        n = len(data)  # positions are drawn apart from n: the same draws fit frames of any length
        where, offset = draw(st.sampled_from(("head", "tail", "any"))), draw(st.integers(0, 2**20))
        i = min(offset % 64, n - 1) if where == "head" else max(n - 1 - offset % 64, 0)
        if where == "any":
            i = offset % n
        op = draw(st.sampled_from(("flip", "truncate", "insert", "delete", "overwrite")))
        if op == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "truncate":
            del data[i:]
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=9))
        elif op == "delete":
            del data[i : i + draw(st.integers(1, 16))]
        else:
            data[i] = draw(st.integers(0, 255))
    return bytes(data)


def slots(obj: Any, most: int = 300) -> list[tuple[Any, Any]]:
    """Every (container, key) of a decoded frame, nested ones included, for mutation."""
    out: list[tuple[Any, Any]] = []
    todo = [obj]
    while todo and len(out) < most:
        container = todo.pop()
        for key, value in list(container.items() if isinstance(container, dict) else enumerate(container)):
            out.append((container, key))
            if isinstance(value, dict | list):
                todo.append(value)
    return out


MAP_OPS = ("delete", "replace", "odd", "odd", "add", "bytes_key", "wrap", "v", "type")


@st.composite
def mutated_map(draw: st.DrawFn, seed: dict[str, Any], ops: tuple[str, ...] = MAP_OPS) -> dict[str, Any]:
    """`seed` after 1 to 3 structural mutations: a field deleted, replaced by a random value or
    an odd one of its own type, an unknown field added, a key made bytes, a value wrapped, the
    version or the type name changed."""
    obj = copy.deepcopy(seed)
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(ops))
        if op == "v":
            obj["v"] = draw(st.sampled_from([0, 2, -1, 2**64 - 1, True, 1.0, "1", None]))
            continue
        if op == "type":
            obj["type"] = draw(st.sampled_from(TYPE_NAMES) | st.sampled_from(["PING", "ping ", ""]) | values)
            continue
        found = slots(obj)
        if not found:
            break
        container, key = found[draw(st.integers(0, 2**16)) % len(found)]
        if op == "delete":
            del container[key]
        elif op == "replace":
            container[key] = draw(values)
        elif op == "odd":
            container[key] = draw(odd_like(container[key]))
        elif op == "add":
            if isinstance(container, dict):
                container[draw(st.sampled_from(FIELD_NAMES) | st.text(max_size=8))] = draw(values)
            else:
                container.append(draw(values))
        elif op == "bytes_key":
            if isinstance(container, dict) and isinstance(key, str):
                container[key.encode()] = container.pop(key)
        elif draw(st.booleans()):
            container[key] = [container[key]]
        else:
            container[key] = {"value": container[key]}
    return obj


def mutations(seeds: list[dict[str, Any]]) -> st.SearchStrategy[bytes]:
    """Mutated valid frames: structure-level, odd values of the right types only (these get
    past the codec into the handlers), or byte-level."""
    seed = st.sampled_from(seeds)
    return st.one_of(
        seed.flatmap(mutated_map).map(pack),
        seed.flatmap(lambda s: mutated_map(s, ("odd",))).map(pack),
        seed.map(pack).flatmap(mutated_bytes),
    )


# --- talking to the endpoints --------------------------------------------------------------


class Peer:
    """A DEALER on one endpoint: the fuzzing side."""

    def __init__(self, endpoint: str, name: str) -> None:
        self.name = name
        self.sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)

    def send(self, frames: list[bytes]) -> None:
        self.sock.send_multipart(frames)
        SENT[self.name] += 1

    def recv(self, timeout_ms: int = REPLY_TIMEOUT_MS) -> list[bytes] | None:
        return self.sock.recv_multipart() if self.sock.poll(timeout_ms) else None

    def close(self) -> None:
        self.sock.close(linger=0)


def show(frames: list[bytes]) -> str:
    return repr([f[:120] + (b"...(%d bytes)" % len(f) if len(f) > 120 else b"") for f in frames])


def check_reply(frames: list[bytes], got: list[bytes] | None, where: str) -> Reply:
    """The one REPLY to `frames`: routing frames echoed, parent the request's id, a known
    status and code, and never `internal` (a handler raised)."""
    assert got is not None, f"{where}: no reply within {REPLY_TIMEOUT_MS} ms to {show(frames)}"
    assert got[:-1] == frames[:-1], f"{where}: the routing frames were not echoed"
    envelope, reply = decode(got[-1])
    assert isinstance(reply, Reply) and envelope.type == "reply"
    assert envelope.parent == peek_id(frames[-1]), (envelope.parent, show(frames))
    assert reply.status in ("ok", "error"), reply
    if reply.status == "error":
        assert reply.code in CODES and reply.reason, reply
        assert reply.code != ErrorCode.INTERNAL, (
            f"{where}: a handler raised ({reply.reason}) on {show(frames)}"
        )
    if len(frames) > 2:
        assert reply.code == ErrorCode.BAD_FRAME, (reply, show(frames))
    return reply


class LogTail:
    """New records of an actor's JSON log since the last look."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0

    def crashes(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with self.path.open("rb") as log:
            log.seek(self.offset)
            text = log.read()
        end = text.rfind(b"\n") + 1
        self.offset += end
        found = []
        for line in text[:end].splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("event") in CRASHES:
                found.append(record)
        return found


# --- the stack and what the seeds refer to -------------------------------------------------


@dataclass
class Target:
    """A running stack and the things valid requests can name."""

    stack: Stack
    root: Path
    inboxes: Path
    pcm: bytes
    done_job: str
    paused_job: str
    pid: int
    counters: dict[str, int]
    cached: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def seeds(self, *families: str) -> list[dict[str, Any]]:
        """Valid frames (decoded) of these families, made once so examples replay exactly."""
        for family in families:
            if family not in self.cached:
                self.cached[family] = [wire(r) for r in SEEDS[family](self)]
        return [frame for family in families for frame in self.cached[family]]

    def harmless(self, payload: bytes) -> bool:
        """False for a frame this test must not send (see the module docstring)."""
        try:
            _, record = decode(payload)
        except ProtocolError:
            return True
        if isinstance(record, Watch) and record.action == "add" and os.path.isabs(record.path):
            return os.path.normpath(record.path).startswith(f"{self.inboxes}{os.sep}")
        if isinstance(record, SubmitFile) and os.path.exists(record.path):
            return os.path.normpath(record.path).startswith(f"{self.root}{os.sep}")
        if isinstance(record, SubmitFile | SubmitAudio):
            return (record.options.beam_size or 0) <= 8
        return True


def headless(stack: Stack) -> Stack:
    for name in ("DISPLAY", "WAYLAND_DISPLAY"):
        stack.env.pop(name, None)
    stack.env["PULSE_SERVER"] = "unix:/nonexistent/native"  # no sound server, no sound card
    return stack


@pytest.fixture(scope="module")
def target(utterance: tuple[Path, str]) -> Iterator[Target]:
    """Scheduler, ingest, transcriber, and the audio actor and watcher (headless: degraded,
    serving their endpoints), with one completed push-to-talk job and one paused job."""
    root = Path(tempfile.mkdtemp(prefix="sv", dir="/tmp"))
    inboxes = root / "watched"
    with headless(Stack({"watch.inboxes": inboxes / "inbox"}, root=root)) as s:
        s.start("scheduler", "ingest", "transcriber", "audio", "watcher")
        s.wait_ready(roles=("ingest", "transcriber", "audio", "watcher"))
        pcm = pcm16(utterance[0])
        now = time.time()
        done = s.client.call(
            SubmitAudio(pcm=pcm, source="ptt", marks={"key_down": now - 2, "key_up": now, "submitted": now})
        )["job"]["id"]
        s.wait_job(done, timeout_s=60)
        paused = s.client.call(SubmitAudio(pcm=bytes(2 * 16000 * 65), priority="low", label="paused"))
        s.client.call(Pause(job_id=paused["job"]["id"]))
        stats = s.client.call(Stats())["scheduler"]
        yield Target(
            stack=s,
            root=s.root,
            inboxes=inboxes,
            pcm=pcm,
            done_job=done,
            paused_job=paused["job"]["id"],
            pid=int(s.client.call(Ping())["pid"]),
            counters={k: int(stats[k]) for k in ("bad_frames", "errors_replied", "requests")},
        )


def control_seeds(t: Target) -> list[Record]:
    options = JobOptions(
        language="en",
        task="transcribe",
        beam_size=2,
        initial_prompt="Fuzz.",
        word_timestamps=True,
        condition_on_previous_text=True,
    )
    now = time.time()
    return [
        SubmitFile(
            path=str(t.root / "missing.wav"), priority="low", options=options, label="f", source="fuzz"
        ),
        SubmitAudio(
            pcm=t.pcm[: 2 * 16000],
            priority="low",
            options=options,
            label="a",
            source="ptt",
            marks={"key_down": now - 1, "key_up": now, "submitted": now},
            mel_max=1.5,
        ),
        JobStatus(job_id=t.done_job),
        ListJobs(states=["completed", "paused"], limit=5),
        Cancel(job_id=t.paused_job),
        Pause(job_id=t.paused_job),
        Resume(job_id=t.done_job),
        SetPriority(job_id=t.paused_job, priority="high"),
        FetchResult(job_id=t.done_job),
        Ping(actor="transcriber"),
        Stats(),
        Report(
            kind="delivered",
            job_id=t.done_job,
            data={"mode": "clipboard", "chars": 5, "marks": {"delivered": now}},
        ),
        Report(kind="recording", data={"state": "started", "utterance": "u1", "origin": "cli"}),
        ListHistory(search="open", limit=3),
        ClearHistory(),
    ]


def work_seeds(t: Target) -> list[Record]:
    job, pcm = t.paused_job, t.pcm[:3200]
    segment = Segment(
        0.0,
        0.1,
        " Fuzz.",
        -0.3,
        0.1,
        words=[{"start": 0.0, "end": 0.1, "word": " Fuzz.", "probability": 0.9}],
    )
    return [
        Ready(role="transcriber", name="transcriber@fuzz:1", pid=1, model="fuzz", rss=1),
        Ready(role="ingest", name="ingest@fuzz:1", pid=1),
        Ready(role="audio", name="audio@fuzz:1", pid=1, health="degraded", detail="fuzz"),
        Ready(role="watcher", name="watcher@fuzz:1", pid=1),
        Ready(role="warden", name="warden@fuzz:1", pid=1),
        Heartbeat(busy=True, health="degraded", detail="fuzz", rss=1),
        Disconnect(reason="stopping", abandon=True),
        Chunk(job_id=job, index=0, start=0, pcm=pcm),
        ChunkResult(job, 1, [segment], Continuation(job, 2, 480_000 + 1600, "Fuzz."), "en", 0.1, 0.1),
        ChunkError(job_id=job, index=1, code="chunk_failed", reason="fuzz"),
        Decode(job_id=job, path=str(t.root / "missing.wav"), cache_path=str(t.root / "x.pcm")),
        Plan(job_id=job, first_index=0, spans=[[0, 1600]], final=True, samples=1600, mel_max=1.0),
        DecodeError(job_id=job, code="decode_failed", reason="fuzz"),
    ]


def member_seeds(t: Target) -> list[Record]:
    return [
        *(
            Ptt(action=a, at=time.time(), origin="cli", reason="tap")
            for a in ("start", "stop", "toggle", "cancel", "status")
        ),
        Watch(action="status"),
        Watch(action="add", path=str(t.inboxes / "extra")),
        Watch(action="remove", path=str(t.inboxes / "extra")),
        Watch(action="remove", path=str(t.inboxes / "inbox")),
        Watch(action="add", path=str(t.inboxes / "inbox")),
        Ping(),
    ]


SEEDS: dict[str, Callable[[Target], list[Record]]] = {
    "control": control_seeds,
    "work": work_seeds,
    "member": member_seeds,
}


class Endpoint:
    """One REPLY endpoint under fuzz, with the logs of the actor behind it."""

    def __init__(self, t: Target, name: str, actor: str) -> None:
        self.t, self.name, self.actor = t, name, actor
        self.peer = Peer(t.stack.cfg.endpoint(name), name)
        self.log = LogTail(t.stack.cfg.log_dir / f"{actor}.log")

    def request(self, frames: list[bytes]) -> Reply:
        """Send `frames`; check the one reply and that the actor did not log a crash."""
        self.peer.send(frames)
        got = self.peer.recv()
        crashes = self.log.crashes()  # read now, so a crash is blamed on this example only
        try:
            reply = check_reply(frames, got, self.name)
        except AssertionError:
            self.reconnect()  # a late reply must not answer the next example
            raise
        assert self.t.stack.procs[self.actor].poll() is None, f"{self.actor} exited on {show(frames)}"
        assert not crashes, (crashes, show(frames))
        return reply

    def reconnect(self) -> None:
        self.peer.close()
        self.peer = Peer(self.t.stack.cfg.endpoint(self.name), self.name)


@pytest.fixture(scope="module")
def control(target: Target) -> Iterator[Endpoint]:
    endpoint = Endpoint(target, "control", "scheduler")
    yield endpoint
    endpoint.peer.close()


# --- control --------------------------------------------------------------------------------


@fuzz(400)
@given(data=st.data())
def test_control_answers_random_frames(control: Endpoint, data: st.DataObject) -> None:
    payload = data.draw(random_payloads, label="payload")
    frames = [*data.draw(routes, label="route"), payload]
    if not control.t.harmless(payload):
        reject()
    control.request(frames)


@fuzz(400)
@given(data=st.data())
def test_control_answers_mutated_requests(control: Endpoint, data: st.DataObject) -> None:
    payload = data.draw(mutations(control.t.seeds("control")), label="payload")
    if not control.t.harmless(payload):
        reject()
    control.request([*data.draw(routes, label="route"), payload])


def accepts(tp: Any, value: Any) -> bool:
    """SPEC.md 4.2, written apart from protocol/records.py: is `value` a `tp` on the wire?"""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(accepts(a, value) for a in args)
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if tp in (str, bytes):
        return isinstance(value, tp)
    if origin is list:
        return isinstance(value, list) and all(accepts(args[0], v) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(
            isinstance(k, str) and accepts(args[1], v) for k, v in value.items()
        )
    assert isinstance(tp, type) and issubclass(tp, Record), tp
    hints = typing.get_type_hints(tp)
    return isinstance(value, dict) and all(
        accepts(hints[f.name], value[f.name])
        if f.name in value
        else f.default is not MISSING or f.default_factory is not MISSING
        for f in fields(tp)  # type: ignore[arg-type]
    )


WRONG: list[Any] = [
    None,
    True,
    0,
    -1,
    2**64 - 1,
    -(2**63),
    1.5,
    math.nan,
    math.inf,
    "",
    "x",
    "\x00",
    b"",
    b"\x00\x01",
]
WRONG += [[], [1, "a"], [[0, 1]], {}, {"a": 1}, {b"k": 1}, msgpack.ExtType(5, b"x")]


def field_cases(t: Target) -> Iterator[tuple[str, bytes, bool]]:
    """For every field of every control request (JobOptions' fields too): the request with
    that field missing, and with each WRONG value; and whether it is still well typed."""
    for record in control_seeds(t):
        frame = wire(record)
        cls = type(record)
        paths: list[tuple[str, ...]] = [(f.name,) for f in fields(cls)]  # type: ignore[arg-type]
        if "options" in frame["body"]:
            paths += [("options", f.name) for f in fields(JobOptions)]
        for path in paths:
            for value in [MISSING, *WRONG]:
                obj = copy.deepcopy(frame)
                holder: Any = obj["body"]
                for step in path[:-1]:
                    holder = holder[step]
                if value is MISSING:
                    del holder[path[-1]]
                else:
                    holder[path[-1]] = value
                typed = accepts(cls, obj["body"])
                yield (
                    f"{cls.TYPE}.{'.'.join(path)}={value!r:.20}",
                    msgpack.packb(obj, use_bin_type=True),
                    typed,
                )
        for value in WRONG:  # unknown fields are ignored, whatever they hold
            obj = copy.deepcopy(frame)
            obj["body"]["fuzz_unknown"] = value
            obj["fuzz_unknown"] = value
            yield f"{cls.TYPE}+unknown={value!r:.20}", msgpack.packb(obj, use_bin_type=True), True


def test_control_checks_every_field_type(control: Endpoint) -> None:
    """A wrong type in any field is bad_message; a well-typed odd value is served or refused
    with a request error (invalid_argument, not_found, ...), never a type error."""
    wrong = []
    for case, payload, typed in field_cases(control.t):
        if not control.t.harmless(payload):
            continue
        reply = control.request([b"", payload])
        if (typed and reply.code in TYPE_ERRORS) or (not typed and reply.code != ErrorCode.BAD_MESSAGE):
            wrong.append((case, reply.code, reply.reason))
    assert not wrong


def envelope(**fields: Any) -> bytes:
    return msgpack.packb({"v": 1, "type": "ping", "id": "i", "sender": "s", **fields}, use_bin_type=True)


def report(data: Any) -> bytes:
    return envelope(type="report", body={"kind": "recording", "data": {"k": data}})


EDGE_FRAMES: dict[str, tuple[Callable[[], list[bytes]], str | None]] = {
    "only a delimiter": (lambda: [b""], "bad_frame"),
    "empty payload": (lambda: [b"", b""], "bad_frame"),
    "three delimiters": (lambda: [b"", b"", b"", encode(Ping(), "fuzz")], "bad_frame"),
    "a nil": (lambda: [b"", b"\xc0"], "bad_frame"),
    "an int key": (lambda: [b"", msgpack.packb({1: 1, "v": 1})], "bad_frame"),
    "invalid utf-8": (lambda: [b"", b"\x81\xa1v\xa2\xff\xfe"], "bad_frame"),
    "a bin type name": (lambda: [b"", envelope(type=b"ping")], "bad_frame"),
    "a huge version": (lambda: [b"", envelope(v=2**64 - 1)], "unsupported_version"),
    "a bool version": (lambda: [b"", envelope(v=True)], "bad_frame"),
    "an ext type": (lambda: [b"", envelope(v=msgpack.ExtType(1, b"x"))], "bad_frame"),
    "a reply sent as a request": (lambda: [b"", encode(Reply(status="ok"), "fuzz")], "unknown_type"),
    "a huge time": (lambda: [b"", envelope(time=2**64 - 1)], "ok"),
    "a huge list_jobs limit": (lambda: [b"", encode(ListJobs(limit=2**64 - 1), "fuzz")], "ok"),
    "a huge filtered list_jobs limit": (
        lambda: [b"", encode(ListJobs(states=["queued"], limit=2**62), "fuzz")],
        "ok",
    ),
    "a huge list_history limit": (lambda: [b"", encode(ListHistory(limit=2**64 - 1), "fuzz")], "ok"),
    "deep nesting, 100": (lambda: [b"", report(deep(100))], None),
    "deep nesting, 900": (lambda: [b"", report(deep(900))], None),
    "deep nesting, 1015": (lambda: [b"", report(deep(1015))], None),
    "deep nesting past msgpack's limit": (lambda: [b"", b"\x91" * 5000 + b"\x01"], "bad_frame"),
    "a map of 200000 keys": (
        lambda: [b"", envelope(type="stats", body={str(i): i for i in range(200_000)})],
        "ok",
    ),
    "a 20 MB unknown field": (lambda: [b"", envelope(pad="x" * 20_000_000)], "ok"),
    "a frame over MAX_FRAME_BYTES": (lambda: [b"", bytes(MAX_FRAME_BYTES + 1)], "bad_frame"),
    "a 2**32 array header": (lambda: [b"", b"\xdd\xff\xff\xff\xff"], "bad_frame"),
    "a 2**32 bin header": (lambda: [b"", b"\xc6\xff\xff\xff\xff"], "bad_frame"),
}


@pytest.mark.parametrize("name", list(EDGE_FRAMES))
def test_control_answers_edge_frames(control: Endpoint, name: str) -> None:
    make, code = EDGE_FRAMES[name]
    reply = control.request(make())
    if code is not None:
        assert (reply.code or reply.status) == code, reply


# --- work -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def work(target: Target) -> Iterator[Callable[[list[list[bytes]]], None]]:
    """Send an example's messages on `work`, then the probe; wait for the probe's DISCONNECT."""
    peer = Peer(target.stack.cfg.endpoint("work"), "work")
    log = LogTail(target.stack.cfg.log_dir / "scheduler.log")
    probe = [b"", encode(Ready(role=PROBE_ROLE, name="probe", pid=0), "fuzz")]

    def send(messages: list[list[bytes]]) -> None:
        for frames in messages:
            peer.send(frames)
        peer.sock.send_multipart(probe)
        deadline = time.monotonic() + REPLY_TIMEOUT_MS / 1000
        while True:
            got = peer.recv(max(1, int((deadline - time.monotonic()) * 1000)))
            assert got is not None, (
                f"the scheduler did not answer the probe after {[show(m) for m in messages]}"
            )
            _, record = decode(got[-1])
            if isinstance(record, Disconnect) and PROBE_ROLE in record.reason:
                break
        assert target.stack.procs["scheduler"].poll() is None, f"the scheduler exited on {messages}"
        assert not log.crashes(), [show(m) for m in messages]

    yield send
    peer.close()


@fuzz(300)
@given(data=st.data())
def test_work_survives_random_frames(target: Target, work: Callable[..., None], data: st.DataObject) -> None:
    messages = data.draw(
        st.lists(st.tuples(routes, random_payloads), min_size=1, max_size=3), label="messages"
    )
    work([[*route, payload] for route, payload in messages])


@fuzz(400)
@given(data=st.data())
def test_work_survives_mutated_messages(
    target: Target, work: Callable[..., None], data: st.DataObject
) -> None:
    """Each example registers (a valid or fuzzed READY), then sends mutated work messages."""
    seeds = target.seeds("work", "control")
    ready = data.draw(
        st.sampled_from([wire(r) for r in work_seeds(target)[:5]]).map(pack) | mutations(seeds[:5])
    )
    rest = data.draw(st.lists(mutations(seeds), min_size=1, max_size=2), label="messages")
    work([[b"", ready], *([b"", m] for m in rest)])


def test_work_survives_every_field_type(target: Target, work: Callable[..., None]) -> None:
    """Every field of every work message, missing or of each WRONG value, from a registered peer."""
    for record in work_seeds(target):
        frame = wire(record)
        ready = msgpack.packb(wire(Ready(role="transcriber", name="t@fuzz:1", pid=1)))
        for name in frame["body"]:
            for value in [MISSING, *WRONG]:
                obj = copy.deepcopy(frame)
                if value is MISSING:
                    del obj["body"][name]
                else:
                    obj["body"][name] = value
                work([[b"", ready], [b"", msgpack.packb(obj, use_bin_type=True)]])


# --- members: ptt and watch -----------------------------------------------------------------


@pytest.fixture(scope="module", params=[("ptt", "audio"), ("watch", "watcher")], ids=["ptt", "watch"])
def member(request: pytest.FixtureRequest, target: Target) -> Iterator[Endpoint]:
    name, actor = request.param
    endpoint = Endpoint(target, name, actor)
    yield endpoint
    endpoint.peer.close()


@fuzz(300)
@given(data=st.data())
def test_member_answers_random_and_mutated_frames(member: Endpoint, data: st.DataObject) -> None:
    payload = data.draw(random_payloads | mutations(member.t.seeds("member")), label="payload")
    if not member.t.harmless(payload):
        reject()
    member.request([*data.draw(routes, label="route"), payload])


@pytest.mark.parametrize("name", ["ptt", "watch"])
def test_member_answers_extra_routing_frames_with_bad_frame(target: Target, name: str) -> None:
    """Frames as on control (SPEC.md 12.1, 13.2): more than one frame before the payload is
    bad_frame (actors/runtime/endpoint.py answered such a request as if it were well framed)."""
    endpoint = Endpoint(target, name, "audio" if name == "ptt" else "watcher")
    request = Ptt(action="status") if name == "ptt" else Watch(action="status")
    try:
        assert endpoint.request([b"", b"", encode(request, "fuzz")]).code == ErrorCode.BAD_FRAME
        assert endpoint.request([b"", encode(request, "fuzz")]).status == "ok"
    finally:
        endpoint.peer.close()


# --- afterwards -----------------------------------------------------------------------------


def test_the_same_scheduler_still_serves_and_transcribes(target: Target, utterance: tuple[Path, str]) -> None:
    """After the fuzzing above: same pid, counters up, no crash logged, fake workers gone, and
    a valid job completes with the right text (unfinished fuzz-made jobs are cancelled first,
    so it does not wait behind them)."""
    s = target.stack
    if not SENT["control"] or not SENT["work"]:
        pytest.skip("checks what the fuzz tests above left behind: run the whole file, not this test alone")
    for name, proc in s.procs.items():
        assert proc.poll() is None, f"{name} exited: {s.output(name)[-2000:]}"
    assert s.client.call(Ping())["pid"] == target.pid == s.procs["scheduler"].pid
    counters = s.client.call(Stats())["scheduler"]
    assert counters["bad_frames"] > target.counters["bad_frames"]
    assert counters["errors_replied"] > target.counters["errors_replied"]
    assert counters["requests"] > target.counters["requests"]
    for actor in ("scheduler", "ingest", "transcriber", "audio", "watcher"):
        assert not [r for r in CRASHES for _ in s.log_events(actor, r)], actor
    for role in ("transcriber", "ingest", "audio", "watcher"):  # the probes dropped every fake
        workers = s.client.call(Ping(actor=role))["workers"]
        assert [w["pid"] for w in workers] == [s.procs[role].pid], workers

    unfinished = s.client.call(ListJobs(states=["queued", "decoding", "running", "paused"], limit=10_000))
    for job in unfinished["jobs"]:
        s.client.request(Cancel(job_id=job["id"]))  # invalid_state if it ended meanwhile
    wav, sentence = utterance
    file_job = s.submit_file(wav, priority="high")
    audio_job = s.submit_audio(pcm16(wav))
    for job_id in (file_job, audio_job):
        assert s.wait_job(job_id, timeout_s=60)["state"] == "completed"
        text = s.result(job_id)["text"]
        assert text.strip(" .").lower() == sentence.strip(" .").lower()
    for name, actor in (("ptt", "audio"), ("watch", "watcher")):
        payload = encode(Ptt(action="status") if name == "ptt" else Watch(action="status"), "fuzz")
        endpoint = Endpoint(target, name, actor)
        reply = endpoint.request([b"", payload])
        endpoint.peer.close()
        assert reply.status == "ok", reply
    print(f"\nframes sent per endpoint: {dict(SENT)}")


@pytest.mark.parametrize("folder", ["nul\x00byte", "n" * 300], ids=["a NUL byte", "a name over 255 bytes"])
def test_watch_refuses_a_folder_it_cannot_have(target: Target, folder: str) -> None:
    """WATCH add of an absolute folder that cannot exist (Path.resolve() raises ValueError on
    a NUL byte, mkdir raises OSError ENAMETOOLONG on a long name) is invalid_argument, with no
    crash logged."""
    endpoint = Endpoint(target, "watch", "watcher")
    try:
        frames = [b"", encode(Watch(action="add", path=str(target.inboxes / folder)), "fuzz")]
        endpoint.peer.send(frames)
        got = endpoint.peer.recv()
        assert check_reply(frames, got, "watch").code == ErrorCode.INVALID_ARGUMENT
        assert not endpoint.log.crashes()
    finally:
        endpoint.peer.close()


# --- worker replies: this test is the only ingest and transcriber ----------------------------


@pytest.fixture(scope="module")
def bare() -> Iterator[Stack]:
    with Stack() as s:
        s.start("scheduler")
        s.wait_ready(roles=())
        yield s


class FakeWorker:
    """The only worker of `role` on `bare`: registers, takes one task, answers it."""

    def __init__(self, stack: Stack, role: str) -> None:
        self.stack, self.role = stack, role
        self.name = f"{role}@fuzz:{os.getpid()}"
        self.peer = Peer(stack.cfg.endpoint("work"), "work (task replies)")
        self.log = LogTail(stack.cfg.log_dir / "scheduler.log")
        self.job = ""

    def send(self, record: Record, parent: str = "") -> None:
        self.peer.send([b"", encode(record, self.name, parent=parent)])

    def task(self, new_job: Callable[[], str], job_over: Callable[[dict[str, Any]], bool]) -> tuple[str, Any]:
        """Register again (a task still held goes back to the queue) and take the next task,
        submitting a job whenever the last one is over (it may end while we wait: a task
        dispatched too often fails its job instead)."""
        self.send(Ready(role=self.role, name=self.name, pid=os.getpid(), model="fuzz"))
        deadline = time.monotonic() + REPLY_TIMEOUT_MS / 1000
        while time.monotonic() < deadline:
            if not self.job or job_over(self.stack.job(self.job)):
                self.job = new_job()
            got = self.peer.recv(200)
            if got is None:
                if time.monotonic() > deadline - REPLY_TIMEOUT_MS / 2000:  # that job is stuck
                    self.job = ""
                continue
            envelope, record = decode(got[-1])
            if isinstance(record, Chunk | Decode):
                return envelope.id, record
        raise AssertionError(f"no task for the {self.role} (job {self.job}: {self.stack.job(self.job)})")

    def answer(self, payload: bytes) -> None:
        """Send a reply, then the probe; the probe's DISCONNECT says it was handled."""
        self.peer.send([b"", payload])
        self.send(Ready(role=PROBE_ROLE, name="probe", pid=0))
        while True:
            got = self.peer.recv()
            assert got is not None, f"the scheduler did not answer the probe after {show([payload])}"
            _, record = decode(got[-1])
            if isinstance(record, Disconnect) and PROBE_ROLE in record.reason:
                break
        assert self.stack.procs["scheduler"].poll() is None, f"the scheduler exited on {show([payload])}"
        assert not self.log.crashes(), show([payload])


@contextlib.contextmanager
def reported() -> Iterator[None]:
    """Print a failure before raising it: replaying an example against a scheduler whose state
    has moved on may not reproduce it, and Hypothesis then reports only that (Flaky...)."""
    try:
        yield
    except Exception as exc:
        print(f"example failed: {type(exc).__name__}: {str(exc)[:3000]}")
        raise


def reply_to(data: st.DataObject, worker: FakeWorker, parent: str, body: dict[str, Any], kind: str) -> bytes:
    """A reply with the task's parent, fuzzed: mostly the body, sometimes the envelope or bytes."""
    frame = {
        "v": 1,
        "type": kind,
        "id": new_id(),
        "parent": parent,
        "sender": worker.name,
        "time": time.time(),
    }
    how = data.draw(
        st.sampled_from(("valid", "typed", "typed", "body", "body", "frame", "bytes")), label="how"
    )
    if how == "valid":
        return pack({**frame, "body": body})
    if how == "typed":  # odd values of the right types: past the codec, into the handlers
        return pack({**frame, "body": data.draw(mutated_map(body, ("odd",)), label="body")})
    if how == "body":
        return pack({**frame, "body": data.draw(mutated_map(body), label="body")})
    if how == "frame":
        return pack(data.draw(mutated_map({**frame, "body": body}), label="frame"))
    return data.draw(mutated_bytes(pack({**frame, "body": body})), label="bytes")


@pytest.fixture(scope="module")
def fakes(bare: Stack) -> Iterator[dict[str, FakeWorker]]:
    workers = {role: FakeWorker(bare, role) for role in ("transcriber", "ingest")}
    yield workers
    for worker in workers.values():
        worker.peer.close()


@fuzz(300)
@given(data=st.data())
def test_chunk_replies_never_crash_the_scheduler(fakes: dict[str, FakeWorker], data: st.DataObject) -> None:
    with reported():
        chunk_reply_example(fakes["transcriber"], data)


def chunk_reply_example(transcriber: FakeWorker, data: st.DataObject) -> None:
    """Take a CHUNK; answer it with a CHUNK-RESULT or CHUNK-ERROR, fuzzed (`reply_to`)."""
    s = transcriber.stack
    seconds = data.draw(st.sampled_from([1, 45]), label="seconds of audio, if a new job is needed")
    result = data.draw(st.booleans(), label="result (else error)")
    consumed = data.draw(st.sampled_from([1.0, 0.5, 0.0]), label="part of the window consumed")

    def new_job() -> str:
        return s.submit_audio(bytes(2 * 16000 * seconds), priority="normal")

    parent, chunk = transcriber.task(new_job, lambda job: job["state"] in FINAL_STATES)
    n = len(chunk.pcm) // 2
    start_s, end_s = chunk.start / 16000, (chunk.start + n) / 16000
    segment = {
        "start": start_s,
        "end": end_s,
        "text": " Fuzz.",
        "avg_logprob": -0.3,
        "no_speech_prob": 0.1,
        "words": [{"start": start_s, "end": end_s, "word": " Fuzz.", "probability": 0.9}],
    }
    if result:
        body: dict[str, Any] = {
            "job_id": chunk.job_id,
            "index": chunk.index,
            "segments": [segment],
            "continuation": {
                "job_id": chunk.job_id,
                "next_index": chunk.index + 1,
                "next_start": chunk.start + max(1, int(n * consumed)),
                "context": "Fuzz.",
            },
            "language": "en",
            "compute_s": 0.1,
            "audio_s": n / 16000,
        }
        kind = "chunk_result"
    else:
        body, kind = (
            {"job_id": chunk.job_id, "index": chunk.index, "code": "chunk_failed", "reason": "fuzz"},
            "chunk_error",
        )
    transcriber.answer(reply_to(data, transcriber, parent, body, kind))


@fuzz(300)
@given(data=st.data())
def test_plans_never_crash_the_scheduler(fakes: dict[str, FakeWorker], data: st.DataObject) -> None:
    with reported():
        plan_example(fakes["ingest"], data)


def plan_example(ingest: FakeWorker, data: st.DataObject) -> None:
    """Take a DECODE; answer it with a PLAN or DECODE-ERROR, fuzzed (`reply_to`)."""
    s = ingest.stack
    plan = data.draw(st.booleans(), label="plan (else error)")
    final = data.draw(st.booleans(), label="final")

    def new_job() -> str:
        return s.submit_file(s.root / "missing.wav", priority="normal")

    parent, decode_task = ingest.task(new_job, lambda job: job["state"] in FINAL_STATES or job["plan_final"])
    first = decode_task.first_index
    if plan:
        body: dict[str, Any] = {
            "job_id": decode_task.job_id,
            "first_index": first,
            "spans": [[16000 * 60 * first + 8000, 16000 * 60 * first + 16000 * 50]],
            "final": final,
            "samples": 16000 * 60 * (first + 1),
            "decode_s": 0.5,
            "mel_max": 1.5,
        }
        kind = "plan"
    else:
        body, kind = {"job_id": decode_task.job_id, "code": "decode_failed", "reason": "fuzz"}, "decode_error"
    ingest.answer(reply_to(data, ingest, parent, body, kind))


def test_the_bare_scheduler_still_serves_every_job(bare: Stack, fakes: dict[str, FakeWorker]) -> None:
    """After the task-reply fuzzing: same process; every job it stored can be listed, looked
    at and fetched; and a job answered properly by the fake transcriber completes."""
    if not SENT["work (task replies)"]:
        pytest.skip("checks what the task-reply fuzz tests above left behind: run the whole file, not alone")
    pid = bare.client.call(Ping())["pid"]
    assert pid == bare.procs["scheduler"].pid and bare.procs["scheduler"].poll() is None
    control = Peer(bare.cfg.endpoint("control"), "control (bare)")
    jobs = bare.client.call(ListJobs(limit=100_000))["jobs"]
    assert jobs
    for job in jobs:
        for request in (JobStatus(job_id=job["id"]), FetchResult(job_id=job["id"])):
            frames = [b"", encode(request, "fuzz")]
            control.send(frames)
            check_reply(frames, control.recv(), "control")
    control.close()
    for job in jobs:
        if job["state"] not in FINAL_STATES:
            bare.client.request(Cancel(job_id=job["id"]))
    transcriber = fakes["transcriber"]
    transcriber.job = ""
    parent, chunk = transcriber.task(
        lambda: bare.submit_audio(bytes(32000)), lambda job: job["state"] in FINAL_STATES
    )
    n = len(chunk.pcm) // 2
    segment = Segment(0.0, n / 16000, " Still here.", -0.2, 0.1)
    result = ChunkResult(
        chunk.job_id, chunk.index, [segment], Continuation(chunk.job_id, 1, n), "en", 0.1, n / 16000
    )
    transcriber.answer(encode(result, transcriber.name, parent=parent))
    poll(lambda: bare.job(chunk.job_id)["state"] == "completed", 10, what="the job to complete")
    assert bare.result(chunk.job_id)["text"] == "Still here."
    assert not [r for r in CRASHES for _ in bare.log_events("scheduler", r)]
    print(f"\nframes sent per endpoint: {dict(SENT)}")
