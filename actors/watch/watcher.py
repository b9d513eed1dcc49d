"""Watcher actor: transcribes what lands in inbox folders, exactly once (SPEC.md 13).

watchdog (inotify on Linux) reports files created, written or moved into the inboxes; a
file is taken once complete (actors/watch/inbox.py), identified by its SHA-256, submitted at low
priority, and followed through the scheduler's events with job-status polls as a safety
net. On completion the transcript is written to the outbox in every configured format,
atomically and under a stem recorded before the first byte, and the source moves to
`done/`; on failure it moves to `failed/` with `NAME.error.txt`. The watcher's own SQLite
file (actors/watch/watchstore.py) makes all of this survive restarts of any actor.
"""

from __future__ import annotations

import hashlib
import os
import queue
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import zmq

from actors.media.formats import parse_formats, write_atomic, write_outputs
from actors.runtime import process
from actors.runtime.client import CallFailed, Client, ClientError, queued_events
from actors.runtime.config import Config
from actors.runtime.endpoint import Endpoint
from actors.runtime.reactor import Member
from actors.watch.inbox import Inbox, Settler, free_path, globs, wanted
from actors.watch.watchstore import WatchedFile, WatchStore
from protocol import ErrorCode
from protocol.control import FetchResult, JobOptions, JobStatus, ListJobs, Reply, Report, SubmitFile
from protocol.ptt import WATCH_ACTIONS, Watch
from protocol.vocab import FINAL_STATES, Priority, Role

TICK_S = 0.2
POLL_JOBS_S = 5.0
HASH_BLOCK = 1 << 20


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


class Watcher(Member):
    ROLE = Role.WATCHER

    def __init__(self, cfg: Config, log: Any) -> None:
        super().__init__(cfg, log)
        self.formats = parse_formats(cfg.get("watch.formats"))
        self.include, self.exclude = globs(cfg.get("watch.include")), globs(cfg.get("watch.exclude"))
        self.move_done = bool(cfg.get("watch.move_done"))
        self.recursive = bool(cfg.get("watch.recursive"))
        self.language = cfg.get("watch.language") or None
        self.settler = Settler(float(cfg.get("watch.settle_s")))
        self.store = WatchStore(cfg.data_dir / "watcher.sqlite3")
        folders = {str(Path(f).expanduser().resolve()): True for f in cfg.get("watch.inboxes")}
        folders.update(self.store.inbox_changes())  # added and removed at run time
        self.inboxes = [Inbox.from_config(cfg, f) for f, watched in folders.items() if watched]
        self.watches: dict[Path, Any] = {}
        """Each inbox's watchdog watch, to unschedule on remove."""
        self.client = Client(cfg, timeout_s=10.0, name="watcher")
        self.changes: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()
        self.following: dict[str, WatchedFile] = {}
        """Unfinished rows by job id."""
        self.twins: dict[str, list[Path]] = {}
        """Files whose content is already in progress, by hash: exported with it."""
        self.sub: zmq.Socket | None = None
        self.observer: Any = None
        self.handler: Any = None
        self.endpoint = Endpoint(cfg, "watch", log)

    # --- finding files ----------------------------------------------------------------------

    def inbox_of(self, path: Path) -> Inbox | None:
        for inbox in self.inboxes:
            if path.parent == inbox.path or (self.recursive and inbox.path in path.parents):
                return inbox
        return None

    def consider(self, path: Path, moved: bool = False) -> None:
        if path.is_file() and wanted(path.name, self.include, self.exclude) and self.inbox_of(path):
            self.settler.note(path, moved)

    def scan(self, inboxes: list[Inbox] | None = None) -> None:
        """Files already in the inboxes, in `watch.order`."""
        found = []
        for inbox in self.inboxes if inboxes is None else inboxes:
            pattern = "**/*" if self.recursive else "*"
            found += [p for p in inbox.path.glob(pattern) if p.is_file()]
        key = (lambda p: p.stat().st_mtime_ns) if self.cfg.get("watch.order") == "mtime" else str
        for path in sorted(found, key=key):
            self.consider(path)

    def start_observer(self) -> None:
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers import Observer

        changes = self.changes

        class Forward(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                if event.is_directory:
                    return
                if event.event_type == "moved":
                    changes.put(("moved", os.fsdecode(event.dest_path)))
                elif event.event_type in ("created", "modified", "closed"):
                    changes.put(("changed", os.fsdecode(event.src_path)))

        self.handler = Forward()
        self.observer = Observer()
        for inbox in self.inboxes:
            self.watches[inbox.path] = self.observer.schedule(
                self.handler, str(inbox.path), recursive=self.recursive
            )
        self.observer.start()

    # --- the watch endpoint -----------------------------------------------------------------

    def handle(self, req: Watch) -> Reply:
        if req.action not in WATCH_ACTIONS:
            return Reply(
                status="error", code=ErrorCode.INVALID_ARGUMENT, reason=f"unknown action {req.action!r}"
            )
        if req.action != "status":
            if not os.path.isabs(req.path):
                return Reply(
                    status="error",
                    code=ErrorCode.INVALID_ARGUMENT,
                    reason=f"path must be absolute, got {req.path!r}",
                )
            try:
                folder = Path(req.path).resolve()
            except (ValueError, OSError) as exc:  # a NUL byte, a loop of links
                return Reply(status="error", code=ErrorCode.INVALID_ARGUMENT, reason=f"bad path: {exc}")
            current = [i for i in self.inboxes if i.path == folder]
            if req.action == "add" and not current:
                inbox = Inbox.from_config(self.cfg, str(folder))
                try:
                    inbox.create()
                except OSError as exc:  # a name too long, no permission, a file in the way
                    return Reply(
                        status="error",
                        code=ErrorCode.INVALID_ARGUMENT,
                        reason=f"cannot watch {folder}: {exc.strerror or exc}",
                    )
                self.inboxes.append(inbox)
                self.watches[folder] = self.observer.schedule(
                    self.handler, str(folder), recursive=self.recursive
                )
                self.store.set_inbox(str(folder), True)
                self.scan([inbox])
                self.log.info("inbox_added", path=str(folder))
            elif req.action == "remove":
                if not current:
                    return Reply(status="error", code=ErrorCode.NOT_FOUND, reason=f"{folder} is not watched")
                self.inboxes.remove(current[0])
                self.observer.unschedule(self.watches.pop(folder))
                self.settler.files = {p: c for p, c in self.settler.files.items() if p.parent != folder}
                self.store.set_inbox(str(folder), False)
                self.log.info("inbox_removed", path=str(folder))
        return Reply(status="ok", data={"inboxes": [self.describe(i) for i in self.inboxes]})

    def describe(self, inbox: Inbox) -> dict[str, Any]:
        rows = {r.path: r for r in self.store.all() if r.inbox == str(inbox.path)}
        files = []
        for path in sorted(p for p in inbox.path.iterdir() if p.is_file()):
            row = rows.pop(str(path), None)
            state = row.state if row else "settling" if path in self.settler.files else "waiting"
            if not wanted(path.name, self.include, self.exclude):
                state = "ignored"
            files.append({"name": path.name, "state": state})
        for row in sorted(rows.values(), key=lambda r: r.seen)[-50:]:  # finished, moved away
            files.append({"name": Path(row.path).name, "state": row.state, "job_id": row.job_id})
        return {
            "path": str(inbox.path),
            "outbox": str(inbox.outbox),
            "done": str(inbox.done),
            "failed": str(inbox.failed),
            "files": files,
        }

    # --- submitting -------------------------------------------------------------------------

    def take(self, path: Path) -> None:
        """A complete file: submit its content unless that content is already known."""
        inbox = self.inbox_of(path)
        if inbox is None or not path.exists():
            return
        try:
            digest = sha256_of(path)
        except OSError as exc:
            self.log.warning("unreadable", path=str(path), reason=str(exc))
            return
        self.report("file_seen", path=str(path), sha256=digest)
        known = self.store.get(digest)
        if known is not None:
            ended = known.state in ("exported", "failed")
            if known.path == str(path) and (not ended or not self.move_done):
                return  # the file itself, seen again (a restart, a touch): already handled
            self.log.info("same_content", path=str(path), as_path=known.path, state=known.state)
            if ended:
                self.finish_twin(known, path, inbox)
            else:
                self.twins.setdefault(digest, []).append(path)
            return
        row = WatchedFile(sha256=digest, inbox=str(inbox.path), path=str(path), state="submitting")
        self.store.add(row)  # first: a crash after the submit must not submit again
        self.submit(row)

    def submit(self, row: WatchedFile) -> None:
        try:
            job = self.client.call(
                SubmitFile(
                    path=row.path,
                    priority=Priority.LOW,
                    options=JobOptions(language=self.language),
                    label=Path(row.path).name,
                    source="watcher",
                )
            )["job"]
        except ClientError as exc:
            self.log.warning("submit_failed", path=row.path, reason=str(exc))
            return  # stays `submitting`: tried again by reconcile
        row.job_id, row.state = job["id"], "submitted"
        self.store.update(row.sha256, job_id=row.job_id, state="submitted")
        self.following[row.job_id] = row
        self.log.info("submitted", path=row.path, job=row.job_id)
        self.report("file_submitted", row.job_id, path=row.path, sha256=row.sha256)

    # --- finishing --------------------------------------------------------------------------

    def reconcile(self) -> None:
        """Every row not finished: adopt its job, submit it again, or finish it now."""
        for row in self.store.unfinished() + [e for e in self.store.all() if e.state == "submitting"]:
            if row.state == "submitting":
                jobs = self.client.call(ListJobs(limit=1000))["jobs"]
                match = [j for j in jobs if j["source"] == "watcher" and j["path"] == row.path]
                if match:
                    row.job_id, row.state = match[-1]["id"], "submitted"
                    self.store.update(row.sha256, job_id=row.job_id, state="submitted")
                else:
                    self.submit(row)
                    continue
            self.following[row.job_id] = row
            self.check(row)

    def check(self, row: WatchedFile) -> None:
        try:
            job = self.client.call(JobStatus(job_id=row.job_id))["job"]
        except CallFailed as exc:  # the job is gone (a new store): fail it, saying so
            self.fail(row, f"the job {row.job_id} is unknown to the scheduler: {exc.reason}")
            return
        if job["state"] == "completed":
            self.export(row)
        elif job["state"] in ("failed", "cancelled"):
            self.fail(row, job["error"] or f"the job was {job['state']}")

    def export(self, row: WatchedFile) -> None:
        inbox = self.inbox_for(row)
        result = self.client.call(FetchResult(job_id=row.job_id))
        if not row.stem:  # chosen once, stored before any output exists
            row.stem = self.free_stem(inbox, Path(row.path).stem)
            self.store.update(row.sha256, stem=row.stem, state="exporting")
        outputs = write_outputs(result, inbox.outbox / row.stem, self.formats)
        self.retire(Path(row.path), inbox.done if self.move_done else None)
        row.state, row.outputs = "exported", [str(p) for p in outputs]
        self.store.update(row.sha256, state="exported", outputs=row.outputs, finished=time.time())
        self.following.pop(row.job_id, None)
        self.log.info("exported", path=row.path, outputs=row.outputs)
        self.report("file_exported", row.job_id, path=row.path, outputs=row.outputs)
        for twin in self.twins.pop(row.sha256, []):
            self.finish_twin(row, twin, inbox)

    def fail(self, row: WatchedFile, reason: str) -> None:
        inbox = self.inbox_for(row)
        source = Path(row.path)
        self.write_error(inbox, source.name, reason)
        self.retire(source, inbox.failed)
        row.state, row.error = "failed", reason
        self.store.update(row.sha256, state="failed", error=reason, finished=time.time())
        self.following.pop(row.job_id, None)
        self.log.warning("failed", path=row.path, reason=reason)
        self.report("file_failed", row.job_id, path=row.path, reason=reason)
        for twin in self.twins.pop(row.sha256, []):
            self.finish_twin(row, twin, inbox)

    def finish_twin(self, known: WatchedFile, path: Path, inbox: Inbox) -> None:
        """A file with content already done: the same result under its own name."""
        if not path.exists():
            return
        if known.state == "failed":
            self.write_error(inbox, path.name, known.error)
            self.retire(path, inbox.failed)
            return
        result = self.client.call(FetchResult(job_id=known.job_id))
        outputs = write_outputs(result, inbox.outbox / self.free_stem(inbox, path.stem), self.formats)
        self.retire(path, inbox.done if self.move_done else None)
        self.report("file_exported", known.job_id, path=str(path), outputs=[str(p) for p in outputs])

    def write_error(self, inbox: Inbox, name: str, reason: str) -> None:
        text = f"{name} could not be transcribed.\n\nReason: {reason}\n"
        write_atomic(free_path(inbox.failed, f"{name}.error.txt"), text)

    def free_stem(self, inbox: Inbox, stem: str) -> str:
        """`stem`, or `stem-2`, ... so that no output of any format exists yet."""
        n, candidate = 1, stem
        while any((inbox.outbox / f"{candidate}.{fmt}").exists() for fmt in self.formats):
            n += 1
            candidate = f"{stem}-{n}"
        return candidate

    def retire(self, source: Path, folder: Path | None) -> None:
        if folder is None or not source.exists():
            return
        shutil.move(str(source), str(free_path(folder, source.name)))

    def inbox_for(self, row: WatchedFile) -> Inbox:
        for inbox in self.inboxes:
            if str(inbox.path) == row.inbox:
                return inbox
        inbox = Inbox.from_config(self.cfg, row.inbox)  # an inbox no longer watched
        inbox.create()
        return inbox

    def report(self, kind: str, job_id: str = "", **data: Any) -> None:
        self.link.send(Report(kind=kind, job_id=job_id, data=data))

    # --- loop -------------------------------------------------------------------------------

    def on_events(self, sub: zmq.Socket) -> None:
        for event in queued_events(sub):
            row = self.following.get(event.job_id)
            if row is not None and event.kind in FINAL_STATES:
                self.guarded(self.check, row)

    def guarded(self, action: Any, *args: Any) -> None:
        """Run one step; a scheduler that is away is retried by the next poll, not fatal."""
        try:
            action(*args)
        except ClientError as exc:
            self.log.warning("scheduler_unavailable", reason=str(exc))
        except OSError as exc:
            self.log.error("file_error", reason=str(exc))

    # --- the member's hooks ---------------------------------------------------------------

    def on_start(self) -> None:
        for inbox in self.inboxes:
            inbox.create()
        sub: zmq.Socket = zmq.Context.instance().socket(zmq.SUB)
        self.sub = sub
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.SUBSCRIBE, b"job.")
        sub.connect(self.cfg.endpoint("events"))  # connects even before the scheduler binds
        self.start_observer()
        self.guarded(self.reconcile)
        self.scan()
        self.watch(sub, lambda: self.on_events(sub))
        self.watch(self.endpoint.socket, lambda: self.endpoint.serve(Watch, self.handle, self.link.name))
        # events are best effort: poll the scheduler now and then
        self.every(POLL_JOBS_S, lambda: self.guarded(self.reconcile), first_in_s=POLL_JOBS_S)
        self.log.info("watching", inboxes=[str(i.path) for i in self.inboxes], formats=self.formats)

    def poll_ms(self) -> int:
        return int(TICK_S * 1000)

    def on_turn(self) -> None:
        while True:
            try:
                kind, raw = self.changes.get_nowait()
            except queue.Empty:
                break
            self.consider(Path(raw), moved=kind == "moved")
        for path in self.settler.ready():
            self.guarded(self.take, path)

    def on_stop(self) -> None:
        if self.observer is not None:
            self.observer.stop()
            self.observer.join(5)
        if self.sub is not None:
            self.sub.close(linger=0)
        self.endpoint.close()
        self.client.close()
        self.store.close()


def main(argv: list[str] | None = None) -> int:
    cfg, log = process.start("watcher", __doc__, argv)
    lock = process.sole_instance(cfg.data_dir / "watcher.lock")
    if lock is None:  # one watcher per data dir: two would submit and export the same files
        print("sottovoce watcher: another watcher already runs for this data dir", file=sys.stderr)
        return 1
    try:
        watcher = Watcher(cfg, log)
    except ValueError as exc:
        print(f"sottovoce watcher: {exc}", file=sys.stderr)
        return 2
    watcher.run()
    lock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
