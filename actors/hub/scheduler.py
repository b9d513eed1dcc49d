"""Scheduler actor, the hub: a priority queue of jobs, one chunk at a time per worker.

Sockets (SPEC.md): binds `control` (ROUTER) for client requests, `work` (ROUTER) for ingest
and transcriber workers, and `events` (PUB). The loop polls with a finite timeout,
dispatches by message type to `handle_*` methods, then does its periodic duties
(heartbeats, expiring silent workers) and dispatches work. Slow work never runs here:
decoding and planning belong to ingest, the model to the transcriber; the loop only reads
one chunk's PCM from the cache (about 1 MB) and commits results to SQLite.
"""

from __future__ import annotations

import fcntl
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import zmq

from actors import __version__
from actors.hub.jobbook import JobBook
from actors.hub.store import Store
from actors.runtime import process, procinfo
from actors.runtime.config import Config
from actors.runtime.procinfo import rss_bytes
from protocol import PROTOCOL_VERSION, ErrorCode, ProtocolError, decode, encode
from protocol.codec import Envelope, peek_id
from protocol.control import (
    AppendAudio,
    Cancel,
    ClearHistory,
    FetchResult,
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
from protocol.records import Record
from protocol.vocab import BYTES_PER_S, MEMBER_ROLES, PRIORITY_RANK, WORKER_ROLES, Priority
from protocol.work import (
    ChunkError,
    ChunkResult,
    DecodeError,
    Disconnect,
    Heartbeat,
    Hold,
    Plan,
    Ready,
)

SENDER = "scheduler"
"""Members say READY and heartbeat so their health is known; they never get tasks."""
R = TypeVar("R")


class SchedulerRunning(RuntimeError):
    """Another scheduler owns this runtime dir or this store."""


def take_lock(path: Path, what: str) -> Any:
    """An exclusive flock on `path` (holding our pid) for as long as the process lives."""
    lock = path.open("a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        raise SchedulerRunning(
            f"another scheduler (pid {lock.read().strip() or '?'}) already uses {what} ({lock.name})"
        ) from None
    lock.seek(0)
    lock.truncate()
    lock.write(str(os.getpid()))
    lock.flush()
    return lock


@dataclass
class Task:
    """What a worker is doing for us."""

    kind: str  # chunk or decode
    job_id: str
    index: int
    msg_id: str
    sent: float


@dataclass
class WorkerInfo:
    identity: bytes
    role: str
    name: str
    pid: int
    model: str = ""
    health: str = "ok"
    detail: str = ""
    rss: int = 0
    last_seen: float = field(default_factory=time.monotonic)
    connected: float = field(default_factory=time.time)
    task: Task | None = None
    leaving: bool = False
    """It sent DISCONNECT while holding a task: no new task; forgotten when this one ends."""
    started: int | None = None
    """Its process's start time, if it runs on this machine: its exit is then noticed at the
    next heartbeat tick instead of after `heartbeat_liveness` missed beats (SPEC.md 14.1)."""

    @property
    def host(self) -> str:
        return self.name.partition("@")[2].rpartition(":")[0]


class Scheduler:
    """The hub's sockets and loop; job bookkeeping lives in JobBook."""

    def __init__(self, cfg: Config, store: Store, log: Any) -> None:
        self.cfg = cfg
        self.log = log
        self.book = JobBook(cfg, store, log, self.publish)
        self.streams = self.book.streams
        """Holds and streamed dictations (SPEC.md 12), called directly, not through the book."""
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        self.interval_s = float(cfg.get("scheduler.heartbeat_interval_s"))
        self.liveness = int(cfg.get("scheduler.heartbeat_liveness"))
        self.workers: dict[bytes, WorkerInfo] = {}
        self.idle: dict[str, deque[bytes]] = {role: deque() for role in WORKER_ROLES}
        self.running = True
        self.stop_deadline: float | None = None
        self.stop_announced = False  # stop_requested logged
        self.abandon_on_stop = cfg.get("scheduler.on_stop") == "abandon"
        self.stop_timeout_s = float(cfg.get("scheduler.stop_timeout_s"))
        self.started = time.time()
        self.counters = {"bad_frames": 0, "errors_replied": 0, "requests": 0}
        self.control = self._bind(zmq.ROUTER, "control")
        self.work = self._bind(zmq.ROUTER, "work")
        self.events = self._bind(zmq.PUB, "events")
        book, views = self.book, self.book.views
        self.control_handlers: dict[type[Record], Callable[[Any], Reply]] = {
            # the one table of control requests (SPEC.md, "Control"): request -> reply
            SubmitFile: book.submit_file,
            SubmitAudio: book.submit_audio,
            AppendAudio: self.streams.append,
            JobStatus: lambda req: views.status(req.job_id),
            ListJobs: lambda req: views.list_jobs(req.states, req.limit),
            Cancel: lambda req: book.cancel(req.job_id),
            Pause: lambda req: book.pause(req.job_id),
            Resume: lambda req: book.resume(req.job_id),
            SetPriority: lambda req: book.set_priority(req.job_id, req.priority),
            FetchResult: lambda req: views.result(req.job_id),
            Report: book.report,
            ListHistory: lambda req: views.list_history(req.search, req.limit),
            ClearHistory: lambda _req: book.clear_history(),
            Ping: self.handle_ping,
            Stats: self.handle_stats,
        }
        self.work_handlers: dict[type[Record], Callable[[bytes, Envelope, Any], None]] = {
            Ready: self.handle_ready,
            Heartbeat: self.handle_heartbeat,
            Disconnect: self.handle_disconnect,
            Hold: self.handle_hold,
            Report: self.handle_member_report,
            ChunkResult: self.handle_chunk_result,
            ChunkError: self.handle_chunk_error,
            Plan: self.handle_plan,
            DecodeError: self.handle_decode_error,
        }

    def _bind(self, kind: int, name: str) -> zmq.Socket:
        sock = self.ctx.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        endpoint = self.cfg.endpoint(name)
        path = Path(endpoint.removeprefix("ipc://"))
        path.unlink(missing_ok=True)  # a stale socket from a crashed run
        sock.bind(endpoint)
        return sock

    # --- loop -------------------------------------------------------------------------

    def stop(self, *_: Any) -> None:
        """SIGTERM/SIGINT: stop dispatching; finish (or abandon) the windows in flight (18.3)."""
        if self.stop_deadline is None:
            self.stop_deadline = time.monotonic() + (0.0 if self.abandon_on_stop else self.stop_timeout_s)

    def _windows_in_flight(self) -> list[WorkerInfo]:
        return [w for w in self.workers.values() if w.task is not None and w.task.kind == "chunk"]

    def _stopped(self) -> bool:
        """True once a requested stop may end the loop."""
        if self.stop_deadline is None:
            return False
        in_flight = self._windows_in_flight()
        if in_flight and time.monotonic() < self.stop_deadline:
            return False
        self.log.info("stopping", abandoned=[w.task.job_id for w in in_flight if w.task])
        return True

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        self.book.recover()
        poller = zmq.Poller()
        poller.register(self.control, zmq.POLLIN)
        poller.register(self.work, zmq.POLLIN)
        wakeup = process.signal_wakeup()
        poller.register(wakeup, zmq.POLLIN)
        heartbeat_at = time.monotonic() + self.interval_s
        self.log.info("started", pid=os.getpid(), jobs=len(self.book.queue))
        while self.running and not self._stopped():
            timeout_ms = max(0.0, heartbeat_at - time.monotonic()) * 1000
            if self.stop_deadline is not None:
                timeout_ms = min(timeout_ms, 100.0)
            try:
                ready = dict(poller.poll(timeout=int(timeout_ms)))
            except zmq.ZMQError:
                if self.stop_deadline is not None:
                    continue
                raise
            if process.readable(wakeup, ready):
                process.drain_wakeup(wakeup)
            if self.stop_deadline is not None and not self.stop_announced:
                self.stop_announced = True
                on_stop = self.cfg.get("scheduler.on_stop")
                self.log.info("stop_requested", on_stop=on_stop, in_flight=len(self._windows_in_flight()))
            if self.work in ready:
                for _ in range(100):  # drain, but let control in between
                    try:
                        frames = self.work.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    self.on_work(frames)
            if self.control in ready:
                for _ in range(100):
                    try:
                        frames = self.control.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    self.on_control(frames)
            if time.monotonic() >= heartbeat_at:
                heartbeat_at = time.monotonic() + self.interval_s
                try:
                    self.beat_and_expire()
                except Exception:
                    self.log.exception("heartbeat_duty_failed")
            if self.stop_deadline is None:
                self.dispatch()
        self.close()

    def close(self) -> None:
        for sock, name in ((self.control, "control"), (self.work, "work"), (self.events, "events")):
            sock.close(linger=0)
            Path(self.cfg.endpoint(name).removeprefix("ipc://")).unlink(missing_ok=True)
        self.book.store.close()
        self.log.info("stopped")

    def publish(self, event: Event) -> None:
        self.events.send_multipart([event.topic, encode(event, SENDER)])

    # --- control endpoint -------------------------------------------------------------

    def on_control(self, frames: list[bytes]) -> None:
        """One request: decode, dispatch, reply; never raises."""
        identity, route, payload = frames[0], frames[1:-1], frames[-1]
        self.counters["requests"] += 1
        parent = ""
        try:
            if len(frames) < 2 or len(route) > 1:
                raise ProtocolError(ErrorCode.BAD_FRAME, f"expected 1 payload frame, got {len(frames) - 1}")
            envelope, record = decode(payload)
            parent = envelope.id
            handler = self.control_handlers.get(type(record))
            if handler is None:
                raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"{envelope.type} is not a control request")
            reply = handler(record)
        except ProtocolError as exc:
            self.counters["bad_frames"] += 1
            parent = parent or peek_id(payload)
            self.log.warning("bad_request", code=str(exc.code), reason=exc.reason, msg_id=parent)
            reply = Reply(status="error", code=exc.code, reason=exc.reason)
        except Exception as exc:  # the barrier: log, reply, keep serving
            self.log.exception("handler_crashed", msg_id=parent)
            reply = Reply(status="error", code=ErrorCode.INTERNAL, reason=f"{type(exc).__name__}: {exc}")
        if reply.status == "error":
            self.counters["errors_replied"] += 1
        try:
            payload = encode(reply, SENDER, parent=parent)
        except Exception as exc:  # a reply that cannot be encoded must not stop the hub
            self.log.exception("reply_unencodable", msg_id=parent)
            reason = f"the reply could not be encoded: {type(exc).__name__}"
            failure = Reply(status="error", code=ErrorCode.INTERNAL, reason=reason)
            payload = encode(failure, SENDER, parent=parent)
        self.control.send_multipart([identity, *route, payload])

    def handle_ping(self, req: Ping) -> Reply:
        if req.actor == "scheduler":
            return Reply(
                status="ok",
                data={
                    "actor": "scheduler",
                    "pid": os.getpid(),
                    "version": __version__,
                    "protocol": PROTOCOL_VERSION,
                    "uptime_s": round(time.time() - self.started, 3),
                },
            )
        if req.actor not in (*WORKER_ROLES, *MEMBER_ROLES):
            return Reply(
                status="error",
                code=ErrorCode.INVALID_ARGUMENT,
                reason=f"unknown actor {req.actor!r}; ping scheduler, "
                + ", ".join((*WORKER_ROLES, *MEMBER_ROLES)),
            )
        workers = [self._worker_view(w) for w in self.workers.values() if w.role == req.actor]
        if not workers:
            return Reply(
                status="error",
                code=ErrorCode.NOT_FOUND,
                reason=f"no {req.actor} actor is connected to the scheduler",
            )
        return Reply(status="ok", data={"actor": req.actor, "workers": workers})

    def handle_stats(self, _req: Stats) -> Reply:
        data = self.book.views.stats()
        data["workers"] = [self._worker_view(w) for w in self.workers.values()]
        data["scheduler"] = {
            **self.counters,
            "uptime_s": round(time.time() - self.started, 3),
            "pid": os.getpid(),
            "rss_bytes": rss_bytes(),
        }
        return Reply(status="ok", data=data)

    def _worker_view(self, w: WorkerInfo) -> dict[str, Any]:
        return {
            "role": w.role,
            "name": w.name,
            "pid": w.pid,
            "model": w.model,
            "health": w.health,
            "detail": w.detail,
            "busy": w.task is not None,
            "leaving": w.leaving,
            "rss_bytes": w.rss,
            "last_heartbeat_s": round(time.monotonic() - w.last_seen, 3),
            "uptime_s": round(time.time() - w.connected, 3),
        }

    # --- work endpoint ----------------------------------------------------------------

    def on_work(self, frames: list[bytes]) -> None:
        identity, payload = frames[0], frames[-1]
        try:
            envelope, record = decode(payload)
        except ProtocolError as exc:
            self.counters["bad_frames"] += 1
            self.log.warning("bad_work_frame", code=str(exc.code), reason=exc.reason)
            return
        worker = self.workers.get(identity)
        if worker is None and isinstance(record, Disconnect):
            return  # a peer we already forgot is leaving: answering would loop (18.2)
        if worker is None and not isinstance(record, Ready):
            self.send_worker(identity, Disconnect(reason="unknown worker; say READY"))
            return
        if worker is not None:
            worker.last_seen = time.monotonic()
        handler = self.work_handlers.get(type(record))
        if handler is None:
            self.counters["bad_frames"] += 1
            self.log.warning("unexpected_work_message", type=envelope.type)
            return
        try:
            handler(identity, envelope, record)
        except Exception as exc:
            self.log.exception("work_handler_crashed", type=envelope.type, msg_id=envelope.id)
            job_id = getattr(record, "job_id", "")
            if job_id in self.book.queue:  # never leave the job waiting for a task nobody holds
                try:
                    self.book.fail(job_id, f"internal error: {type(exc).__name__}: {exc}")
                except Exception:
                    self.log.exception("fail_failed", job=job_id)

    def send_worker(self, identity: bytes, record: Record) -> str:
        msg_id = os.urandom(8).hex()
        self.work.send_multipart([identity, b"", encode(record, SENDER, msg_id=msg_id)])
        return msg_id

    def handle_ready(self, identity: bytes, _env: Envelope, msg: Ready) -> None:
        if identity in self.workers:
            self.drop_worker(identity, "re-registered")
        if msg.role not in (*WORKER_ROLES, *MEMBER_ROLES):
            self.send_worker(identity, Disconnect(reason=f"unknown role {msg.role!r}"))
            return
        worker = WorkerInfo(identity, msg.role, msg.name, msg.pid, msg.model, msg.health, msg.detail, msg.rss)
        worker.started = procinfo.actor_started_at(msg.pid, msg.role)
        self.workers[identity] = worker
        if msg.role in self.idle:
            self.idle[msg.role].append(identity)
        self.log.info("worker_ready", role=msg.role, worker=msg.name, health=msg.health)
        self.presence("joined", worker)

    def presence(self, kind: str, worker: WorkerInfo, **data: Any) -> None:
        """Publish worker.<kind> (SPEC.md 7.6)."""
        self.publish(
            Event(
                kind=kind,
                job_id="",
                data={
                    "role": worker.role,
                    "name": worker.name,
                    "pid": worker.pid,
                    "host": worker.host,
                    **data,
                },
            )
        )

    def handle_disconnect(self, identity: bytes, _env: Envelope, msg: Disconnect) -> None:
        """A worker or member is stopping (18.2): no new task; its task finishes or is lost."""
        worker = self.workers[identity]
        self.log.info("worker_leaving", role=worker.role, worker=worker.name, abandon=msg.abandon)
        self.presence("left", worker)
        if worker.task is None:
            self.forget(identity)
        elif msg.abandon:
            task = worker.task
            self.forget(identity)
            self.book.task_lost(task.kind, task.job_id, task.index, refund=True)
        else:
            worker.leaving = True
            if identity in self.idle.get(worker.role, ()):
                self.idle[worker.role].remove(identity)

    def forget(self, identity: bytes) -> None:
        """Drop a leaving peer and acknowledge its DISCONNECT."""
        worker = self.workers.pop(identity)
        if identity in self.idle.get(worker.role, ()):
            self.idle[worker.role].remove(identity)
        if worker.task is not None and worker.task.kind == "chunk":
            self.streams.window_ended(identity)
        self.send_worker(identity, Disconnect(reason="goodbye"))
        self._gone(identity, worker)

    def _gone(self, identity: bytes, worker: WorkerInfo) -> None:
        """No hold and no open utterance survives its sender (SPEC.md 12)."""
        again = any(w.name == worker.name for w in self.workers.values())
        self.streams.member_gone(identity, worker.name, name_still_registered=again)

    def handle_hold(self, identity: bytes, _env: Envelope, msg: Hold) -> None:
        if msg.active:
            self.streams.take_hold(msg.hold_id, identity, msg.max_s)
        else:
            self.streams.release_hold(msg.hold_id)

    def handle_member_report(self, identity: bytes, env: Envelope, msg: Report) -> None:
        """REPORT on the member's own link (SPEC.md 5.3): no reply; a refusal is logged."""
        reply = self.book.report(msg)
        if reply.status != "ok":
            self.log.warning("report_refused", sender=env.sender, kind=msg.kind, reason=reply.reason)

    def handle_heartbeat(self, identity: bytes, _env: Envelope, msg: Heartbeat) -> None:
        """last_seen is refreshed for every message; here: a worker idle while we think it
        busy has lost its task (a reply went missing), so the task is dispatched again."""
        worker = self.workers[identity]
        if msg.rss:
            worker.rss = msg.rss
        if msg.health and (msg.health, msg.detail) != (worker.health, worker.detail):
            worker.health, worker.detail = msg.health, msg.detail
            self.log.info("health_changed", role=worker.role, worker=worker.name, health=msg.health)
        if worker.task and not msg.busy and time.monotonic() - worker.task.sent > 2 * self.interval_s:
            task = worker.task
            self.log.warning("task_vanished", worker=worker.name, kind=task.kind, job=task.job_id)
            self._release(identity)
            self.book.task_lost(task.kind, task.job_id, task.index)

    def _take_task(self, identity: bytes, env: Envelope, kind: str, job_id: str) -> bool:
        """True if this reply answers the worker's current task (else it is stale)."""
        worker = self.workers[identity]
        task = worker.task
        if task is None or task.kind != kind or task.msg_id != env.parent or task.job_id != job_id:
            self.log.warning("stale_reply", kind=kind, job=job_id, worker=worker.name)
            return False
        return True

    def _release(self, identity: bytes) -> None:
        worker = self.workers[identity]
        if worker.task is not None and worker.task.kind == "chunk":
            self.streams.window_ended(identity)
        worker.task = None
        if worker.leaving:
            self.forget(identity)
        elif worker.role in self.idle:
            self.idle[worker.role].append(identity)

    def handle_chunk_result(self, identity: bytes, env: Envelope, msg: ChunkResult) -> None:
        if not self._take_task(identity, env, "chunk", msg.job_id):
            return
        task = self.workers[identity].task
        assert task is not None
        self.book.overhead_s.append(time.monotonic() - task.sent - msg.compute_s)
        model = self.workers[identity].model
        self._release(identity)
        self.book.chunk_done(msg, model=model)

    def handle_chunk_error(self, identity: bytes, env: Envelope, msg: ChunkError) -> None:
        if not self._take_task(identity, env, "chunk", msg.job_id):
            return
        self._release(identity)
        self.book.chunk_failed(msg.job_id, msg.index, f"{msg.code}: {msg.reason}")

    def handle_plan(self, identity: bytes, env: Envelope, msg: Plan) -> None:
        if not self._take_task(identity, env, "decode", msg.job_id):
            return
        if msg.final:
            self._release(identity)
        self.book.planned(msg)

    def handle_decode_error(self, identity: bytes, env: Envelope, msg: DecodeError) -> None:
        if not self._take_task(identity, env, "decode", msg.job_id):
            return
        self._release(identity)
        self.book.decode_failed(msg.job_id, msg.reason)

    # --- periodic duties and dispatch -------------------------------------------------

    def beat_and_expire(self) -> None:
        self.streams.tick()
        deadline = time.monotonic() - self.interval_s * self.liveness
        for identity, worker in list(self.workers.items()):
            if worker.last_seen < deadline:
                self.drop_worker(identity, "missed heartbeats")
            elif worker.started is not None and procinfo.has_exited(worker.pid, worker.started):
                self.drop_worker(identity, "process exited")
            else:
                self.send_worker(identity, Heartbeat())

    def drop_worker(self, identity: bytes, why: str) -> None:
        worker = self.workers.pop(identity)
        if identity in self.idle.get(worker.role, ()):
            self.idle[worker.role].remove(identity)
        self.log.warning(
            "worker_lost",
            role=worker.role,
            worker=worker.name,
            why=why,
            task=worker.task.kind if worker.task else None,
        )
        self.presence("lost", worker, why=why)
        self._gone(identity, worker)
        if worker.task is not None:
            if worker.task.kind == "chunk":
                self.streams.window_ended(identity)
            self.book.task_lost(worker.task.kind, worker.task.job_id, worker.task.index)

    def _next_idle(self, role: str) -> bytes | None:
        queue = self.idle[role]
        while queue:
            identity = queue.popleft()
            if identity in self.workers and self.workers[identity].task is None:
                return identity
        return None

    def _build(self, builder: Callable[[str], R | None], job_id: str) -> R | None:
        """Build a work request; a job whose request cannot be built fails, the loop goes on."""
        try:
            return builder(job_id)
        except Exception as exc:
            self.log.exception("request_build_failed", job=job_id)
            try:
                self.book.fail(job_id, f"internal error: {type(exc).__name__}: {exc}")
            except Exception:
                self.log.exception("fail_failed", job=job_id)
                self.book.queue.remove(job_id)
            return None

    def dispatch(self) -> None:
        """Give every idle worker the most urgent work it can do."""
        while self.idle["ingest"]:
            job = self.book.queue.next_decode()
            if job is None:
                break
            identity = self._next_idle("ingest")
            if identity is None:
                break
            request = self._build(self.book.decode_request, job.id)
            if request is None:
                self.idle["ingest"].appendleft(identity)
                continue
            msg_id = self.send_worker(identity, request)
            self.workers[identity].task = Task("decode", job.id, -1, msg_id, time.monotonic())
        lowest = Priority.HIGH if self.streams.holding else Priority.LOW
        max_rank = PRIORITY_RANK[lowest]
        while self.idle["transcriber"]:
            job = self.book.queue.next_chunk(max_rank)
            if job is None:
                break
            identity = self._next_idle("transcriber")
            if identity is None:
                break
            chunk = self._build(self.book.chunk_request, job.id)
            if chunk is None:
                self.idle["transcriber"].appendleft(identity)
                continue
            msg_id = self.send_worker(identity, chunk)
            worker = self.workers[identity]
            worker.task = Task("chunk", job.id, chunk.index, msg_id, time.monotonic())
            self.streams.window_started(identity, job.id)
            self.book.emit(
                "dispatched",
                job.id,
                chunk=chunk.index,
                worker=worker.name,
                audio_s=round(len(chunk.pcm) / BYTES_PER_S, 3),
            )


def main(argv: list[str] | None = None) -> int:
    cfg, log = process.start("scheduler", __doc__, argv)
    try:  # one scheduler per socket dir (it would steal the sockets) and per store
        locks = [
            take_lock(cfg.runtime_dir / "scheduler.lock", "this runtime dir"),
            take_lock(cfg.data_dir / "scheduler.lock", "this data dir"),
        ]
    except SchedulerRunning as exc:
        log.error("already_running", reason=str(exc))
        print(f"sottovoce scheduler: {exc}", file=sys.stderr)
        return 1
    scheduler = Scheduler(cfg, Store(cfg.store_path), log)
    from actors.hub import metrics  # prometheus_client's HTTP server; nothing listens when metrics.port = 0

    metrics.serve(cfg, log)
    scheduler.run()
    del locks
    return 0


if __name__ == "__main__":
    sys.exit(main())
