"""Client side of the control protocol (SPEC.md, "Control"): one DEALER per client, requests
matched to replies by message id, a finite timeout on every call. Used by the CLI probe and
by actors that submit work (watcher, audio)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import zmq

from actors.runtime.config import Config
from protocol import ProtocolError, decode, encode
from protocol.codec import new_id
from protocol.control import Reply
from protocol.events import Event
from protocol.records import Record

DEFAULT_TIMEOUT_S = 10.0
ACTOR_OF = {"control": "scheduler", "ptt": "audio actor", "watch": "watcher"}
RUN_HINT = "start the stack with `sottovoce run` (or `sottovoce up` under supervisord)"


class ClientError(Exception):
    """A call that did not succeed; str() says why and what to do."""


class StackNotRunning(ClientError):
    pass


class CallTimeout(ClientError):
    pass


class CallFailed(ClientError):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{reason} [{code}]")
        self.code = code
        self.reason = reason


class Client:
    def __init__(
        self, cfg: Config, timeout_s: float = DEFAULT_TIMEOUT_S, name: str = "cli", endpoint: str = "control"
    ) -> None:
        """`endpoint`: the scheduler's `control`, or the audio actor's `ptt` (same dialog)."""
        self.cfg = cfg
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self.name = f"{name}-{os.getpid()}"
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        self._sock: zmq.Socket | None = None

    def _socket(self) -> zmq.Socket:
        if self._sock is None:
            endpoint = self.cfg.endpoint(self.endpoint)
            if not Path(endpoint.removeprefix("ipc://")).exists():
                who = "the stack is" if self.endpoint == "control" else f"the {ACTOR_OF[self.endpoint]} is"
                raise StackNotRunning(f"{who} not running (no socket at {endpoint}); {RUN_HINT}")
            self._sock = self.ctx.socket(zmq.DEALER)
            self._sock.setsockopt(zmq.LINGER, 0)
            self._sock.connect(endpoint)
        return self._sock

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None

    def request(self, record: Record, timeout_s: float | None = None) -> Reply:
        """Send one request and return its reply (any status)."""
        sock = self._socket()
        msg_id = new_id()
        sock.send_multipart([b"", encode(record, self.name, msg_id=msg_id)])
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        while (left := deadline - time.monotonic()) > 0:
            if not sock.poll(int(left * 1000)):
                break
            frames = sock.recv_multipart()
            try:
                envelope, reply = decode(frames[-1])
            except ProtocolError:
                continue
            if envelope.parent == msg_id and isinstance(reply, Reply):
                return reply
        # a late reply would confuse the next call on this socket: start afresh
        self.close()
        raise CallTimeout(
            f"no reply to {record.TYPE} within {timeout_s or self.timeout_s:.0f} s; "
            f"is the {ACTOR_OF.get(self.endpoint, self.endpoint)} running? {RUN_HINT}"
        )

    def call(self, record: Record, timeout_s: float | None = None) -> dict[str, Any]:
        """Send one request; return the reply's data or raise CallFailed."""
        reply = self.request(record, timeout_s)
        if reply.status != "ok":
            raise CallFailed(reply.code, reply.reason)
        return reply.data

    def subscribe(self, prefix: bytes = b"job.") -> zmq.Socket:
        """A SUB socket on the events endpoint (the caller closes it)."""
        endpoint = self.cfg.endpoint("events")
        if not Path(endpoint.removeprefix("ipc://")).exists():
            raise StackNotRunning(f"the stack is not running (no socket at {endpoint}); {RUN_HINT}")
        sub = self.ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.SUBSCRIBE, prefix)
        sub.connect(endpoint)
        return sub


def queued_events(sub: zmq.Socket) -> Iterator[Event]:
    """The events already queued on `sub`, without waiting (malformed ones are skipped)."""
    while True:
        try:
            frames = sub.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return
        try:
            _, record = decode(frames[-1])
        except ProtocolError:
            continue
        if isinstance(record, Event):
            yield record


def read_events(sub: zmq.Socket, timeout_s: float) -> Iterator[Event]:
    """Events arriving within `timeout_s` (malformed ones are skipped)."""
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0 and sub.poll(int(left * 1000)):
        yield from queued_events(sub)
