"""Deliver actor: puts each completed push-to-talk text where the user wants it.

Subscribes to `job.completed`; for a job with source `ptt` and text it copies the text to the
clipboard (actors/ptt/clipboard.py: xclip, xsel or wl-copy) and, per `deliver.mode`, also types
it at the cursor or pastes it and restores the previous clipboard. Then it sends REPORT
`delivered` with its `delivered` mark, so the scheduler completes the job's latency record
on its member link (SPEC.md 5.3). Delivery runs in a thread, so typing a long text never
stops heartbeats.
Jobs that complete while this actor is down are not delivered late (that text would land at
a surprising moment); they are in `sottovoce history`.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from typing import Any

import zmq

from actors.ptt.clipboard import Clipboard, ClipboardError, Typist
from actors.runtime import process
from actors.runtime.client import queued_events
from actors.runtime.config import Config
from actors.runtime.reactor import Member
from protocol import decode, encode
from protocol.control import Report
from protocol.events import Event
from protocol.vocab import Role

MODES = ("clipboard", "type", "paste")
HEALTH_POLL_MS = 250


class DeliverActor(Member):
    ROLE = Role.DELIVER

    def __init__(self, cfg: Config, log: Any) -> None:
        super().__init__(cfg, log)
        self.mode = cfg.get("deliver.mode")
        if self.mode not in MODES:
            raise ValueError(f"deliver.mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        self.restore_after_s = int(cfg.get("deliver.restore_after_ms")) / 1000
        self.max_age_s = float(cfg.get("deliver.max_age_s"))
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        self.sub: zmq.Socket | None = None
        self._reports_addr = f"inproc://deliver-reports-{id(self)}"
        self.reports = self.ctx.socket(zmq.PULL)
        """REPORTs from the delivery thread, for the main loop to send on the member link."""
        self.reports.bind(self._reports_addr)
        self.todo: queue.Queue[Event | None] = queue.Queue()
        self.clipboard: Clipboard | None = None
        self.typist: Typist | None = None
        self.health_seen: tuple[str, str] | None = None
        """Set by the delivery thread; the main loop passes it to the link (not thread-safe)."""
        self.thread = threading.Thread(target=self._deliver_loop, name="deliver", daemon=True)

    def setup_outputs(self) -> None:
        """Find the clipboard tool (and keyboard); degraded health says what is missing."""
        try:
            self.clipboard = Clipboard(tool=self.cfg.get("deliver.clipboard_tool"))
            if self.mode in ("type", "paste"):
                self.typist = Typist(paste_chord=self.cfg.get("deliver.paste_keys"))
        except (ClipboardError, ValueError) as exc:
            self.log.warning("delivery_unavailable", reason=str(exc))
            self.link.set_health("degraded", f"cannot deliver: {exc}")
            return
        self.link.set_health("ok")
        self.log.info("delivering", mode=self.mode, clipboard=self.clipboard.name)

    def subscribe(self) -> zmq.Socket:
        sub = self.ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.SUBSCRIBE, b"job.completed")
        sub.connect(self.cfg.endpoint("events"))  # connects even before the scheduler binds
        return sub

    # --- delivery thread -------------------------------------------------------------------

    def _deliver_loop(self) -> None:
        reports = self.ctx.socket(zmq.PUSH)  # created and used in this thread only
        reports.setsockopt(zmq.LINGER, 0)
        reports.connect(self._reports_addr)
        while (event := self.todo.get()) is not None:
            try:
                report = self.deliver(event)
            except Exception:
                self.log.exception("deliver_crashed", job=event.job_id)
                continue
            if report is not None:
                reports.send(encode(report, self.link.name))
        reports.close()

    def deliver(self, event: Event) -> Report | None:
        """Put one text where it belongs; the REPORT to send if it got there."""
        text = str(event.data.get("text", "")).strip()
        if not text:
            return None
        if self.clipboard is None:
            self.log.warning("not_delivered", job=event.job_id, reason=self.link.detail)
            return None
        mode = self.mode
        marks = event.data.get("marks") or {}
        age = time.time() - float(marks.get("key_up", time.time()))
        if mode != "clipboard" and age > self.max_age_s:  # typing into whatever has focus now: no
            self.log.warning("too_late_to_type", job=event.job_id, age_s=round(age, 1))
            mode = "clipboard"
        delivered: list[float] = []
        try:
            if mode == "paste" and self.typist is not None:
                self.typist.paste(
                    text,
                    self.clipboard,
                    self.restore_after_s,
                    on_pasted=lambda: delivered.append(time.time()),
                )
            else:
                self.clipboard.set(text)
                if mode == "type" and self.typist is not None:
                    self.typist.type(text)
        except (ClipboardError, OSError) as exc:
            self.log.warning("not_delivered", job=event.job_id, reason=str(exc))
            self.health_seen = ("degraded", f"cannot deliver: {exc}")
            if not delivered:
                return None
        delivered.append(time.time())
        self.health_seen = ("ok", "")
        self.log.info("delivered", job=event.job_id, mode=mode, chars=len(text))
        return Report(
            kind="delivered",
            job_id=event.job_id,
            data={"mode": mode, "chars": len(text), "marks": {"delivered": delivered[0]}},
        )

    # --- loop ------------------------------------------------------------------------------

    def on_event(self) -> None:
        assert self.sub is not None
        for event in queued_events(self.sub):
            if event.kind == "completed" and event.data.get("source") == "ptt":
                self.todo.put(event)

    def send_reports(self) -> None:
        while True:
            try:
                _, report = decode(self.reports.recv(zmq.NOBLOCK))
            except zmq.Again:
                return
            if not self.link.send(report):
                self.log.warning(
                    "report_failed", job=getattr(report, "job_id", ""), reason="no scheduler connected"
                )

    # --- the member's hooks ---------------------------------------------------------------

    def on_start(self) -> None:
        self.sub = self.subscribe()
        self.setup_outputs()
        self.thread.start()
        self.watch(self.sub, self.on_event)
        self.watch(self.reports, self.send_reports)

    def poll_ms(self) -> int:
        return HEALTH_POLL_MS

    def on_turn(self) -> None:
        if self.health_seen is not None and self.clipboard is not None:
            health, self.health_seen = self.health_seen, None
            self.link.set_health(*health)

    def on_stop(self) -> None:
        self.todo.put(None)
        self.thread.join(5.0)
        self.send_reports()  # what the thread finished while stopping
        if self.sub is not None:
            self.sub.close(linger=0)
        self.reports.close(linger=0)


def main(argv: list[str] | None = None) -> int:
    cfg, log = process.start("deliver", __doc__, argv)
    try:
        actor = DeliverActor(cfg, log)
    except ValueError as exc:
        print(f"sottovoce deliver: {exc}", file=sys.stderr)
        return 2
    actor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
