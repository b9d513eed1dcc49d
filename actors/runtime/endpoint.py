"""A member's own request endpoint (the audio actor's `ptt`, the watcher's `watch`): a ROUTER
bound on an ipc file, and the answer to one request behind the same barrier as the
scheduler's control socket: a bad frame or a crashing handler is answered, never fatal."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq

from actors.runtime.config import Config
from protocol import ErrorCode, ProtocolError, decode, encode
from protocol.codec import peek_id
from protocol.control import Reply
from protocol.records import Record


class Endpoint:
    def __init__(self, cfg: Config, name: str, log: Any) -> None:
        self.log = log
        self.path = Path(cfg.endpoint(name).removeprefix("ipc://"))
        self.socket: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.path.unlink(missing_ok=True)  # a stale file from a crashed run
        self.socket.bind(cfg.endpoint(name))

    def serve(self, kind: type[Record], handle: Callable[[Any], Reply], sender: str, most: int = 100) -> None:
        """Answer up to `most` queued requests of type `kind` with `handle`."""
        for _ in range(most):
            try:
                frames = self.socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self.answer(frames, kind, handle, sender)

    def answer(
        self, frames: list[bytes], kind: type[Record], handle: Callable[[Any], Reply], sender: str
    ) -> None:
        identity, route, payload = frames[0], frames[1:-1], frames[-1]
        parent = ""
        try:
            if len(frames) < 2 or len(route) > 1:  # frames as on control (SPEC.md 3.3)
                raise ProtocolError(ErrorCode.BAD_FRAME, f"expected 1 payload frame, got {len(frames) - 1}")
            envelope, record = decode(payload)
            parent = envelope.id
            if not isinstance(record, kind):
                raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"{envelope.type} is not a {kind.TYPE} request")
            reply = handle(record)
        except ProtocolError as exc:
            parent = parent or peek_id(payload)
            reply = Reply(status="error", code=exc.code, reason=exc.reason)
        except Exception as exc:  # the barrier: reply, keep serving
            self.log.exception("request_crashed", type=kind.TYPE)
            reply = Reply(status="error", code=ErrorCode.INTERNAL, reason=f"{type(exc).__name__}: {exc}")
        self.socket.send_multipart([identity, *route, encode(reply, sender, parent=parent)])

    def close(self) -> None:
        self.socket.close(linger=0)
        self.path.unlink(missing_ok=True)
