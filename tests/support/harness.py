"""Run the real actors as real processes in a private temp dir, for tests and benchmarks.

Each Stack gets its own short runtime dir (ipc paths are limited to 107 characters) and data
dir, and speaks to the actors through the real control/events sockets. Waiting is always
polling a condition until a deadline, never a blind sleep.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from actors.runtime import pausepoint, roster
from actors.runtime.client import Client, ClientError, read_events
from actors.runtime.config import Config
from protocol import ProtocolError, decode
from protocol.control import FetchResult, JobOptions, JobStatus, Ping, Report, SubmitAudio, SubmitFile
from protocol.events import Event
from protocol.vocab import FINAL_STATES

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = Path(os.environ.get("SOTTOVOCE_SHARED_DATA", REPO.parent / "shared" / "data"))
SPEECH = SHARED_DATA / "speech"
LONG_FLAC = SPEECH / "long" / "ljspeech_LJ001_0001-0032_consecutive.flac"
ACTORS = ("scheduler", "ingest", "transcriber")
PAUSE_FILE = "pause-window"
"""Where a test arms the actors' pause points (actors/runtime/pausepoint.py), in the stack's root."""

T = TypeVar("T")


def poll(condition: Callable[[], T], timeout_s: float, interval_s: float = 0.02, what: str = "") -> T:
    """Call `condition` until it returns something truthy; raise TimeoutError at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s} s waiting for {what or condition}")
        time.sleep(interval_s)


class Stack:
    """The core actors as child processes, with helpers to drive and observe them."""

    def __init__(self, settings: dict[str, Any] | None = None, root: Path | None = None) -> None:
        self.root = root or Path(tempfile.mkdtemp(prefix="sv", dir="/tmp"))
        self.env = {
            **os.environ,
            "SOTTOVOCE_CONFIG": str(self.root / "config.toml"),
            "SOTTOVOCE_PATHS_RUNTIME_DIR": str(self.root / "run"),
            "SOTTOVOCE_PATHS_DATA_DIR": str(self.root / "data"),
            "SOTTOVOCE_TESTING_PAUSE_FILE": str(self.root / PAUSE_FILE),
            "PYTHONUNBUFFERED": "1",
        }
        for name, value in (settings or {}).items():
            self.env[f"SOTTOVOCE_{name.replace('.', '_')}".upper()] = (
                str(value).lower() if isinstance(value, bool) else str(value)
            )
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        saved = {k: os.environ.get(k) for k in self.env if k.startswith("SOTTOVOCE_")}
        os.environ.update({k: v for k, v in self.env.items() if k.startswith("SOTTOVOCE_")})
        try:
            self.cfg = Config.load()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        self.client = Client(self.cfg, timeout_s=10.0, name="test")

    # --- processes --------------------------------------------------------------------

    def start(self, *names: str) -> Stack:
        """Start actors by module name; "transcriber#2" starts a second transcriber."""
        for name in names or ACTORS:
            out = open(self.root / f"{name}.out", "ab")  # noqa: SIM115 - closed with the process
            self.procs[name] = subprocess.Popen(
                roster.command(name.split("#")[0]),
                env=self.env,
                stdout=out,
                stderr=out,
                cwd=REPO,
            )
            out.close()
        return self

    def signal(self, name: str, sig: int = signal.SIGKILL) -> None:
        self.procs[name].send_signal(sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            self.procs[name].wait(timeout=30)

    def restart(self, name: str) -> None:
        proc = self.procs.get(name)
        if proc and proc.poll() is None:
            self.signal(name, signal.SIGKILL)
        self.start(name)

    def wait_ready(self, timeout_s: float = 60.0, roles: tuple[str, ...] = ("ingest", "transcriber")) -> None:
        """Until the scheduler answers and a worker of each role is connected."""

        def ready() -> bool:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}: {self.output(name)[-2000:]}")
            try:
                self.client.call(Ping(actor="scheduler"), timeout_s=1.0)
                for role in roles:
                    if role in self.procs:
                        self.client.call(Ping(actor=role), timeout_s=1.0)
                return True
            except ClientError:
                return False

        poll(ready, timeout_s, interval_s=0.05, what="the stack to be ready")

    def hold_window(self, job: str | None = None, chunk: int | None = None) -> HeldWork:
        """Arm the transcribers' pause point: the next window that matches (any, or of `job`,
        or with index `chunk`) is held in flight, its transcriber stopped, until released."""
        return HeldWork(self.root / PAUSE_FILE, "window", job, chunk)

    def hold_planning(self, job: str | None = None, batch: int = 1) -> HeldWork:
        """Arm ingest's pause point: planning stops before it sends batch `batch` of a job's
        speech spans (the earlier ones are with the scheduler), until released."""
        return HeldWork(self.root / PAUSE_FILE, "plan", job, batch)

    def output(self, name: str) -> str:
        path = self.root / f"{name}.out"
        return path.read_text(errors="replace") if path.exists() else ""

    def log_events(self, actor: str, event: str) -> list[dict[str, Any]]:
        """The structlog records named `event` in an actor's JSON log file."""
        import json

        path = self.cfg.log_dir / f"{actor}.log"
        if not path.exists():
            return []
        records = []
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("event") == event:
                records.append(record)
        return records

    def stop(self) -> None:
        """SIGTERM to every actor, the scheduler last, as supervisord stops them: a leaving
        worker is acknowledged at once by a live scheduler, instead of waiting out three
        missed heartbeats for one that is gone."""
        self.client.close()
        others = [proc for name, proc in self.procs.items() if name != "scheduler"]
        last = [self.procs["scheduler"]] if "scheduler" in self.procs else []
        for group in (others, last):
            for proc in group:
                if proc.poll() is None:
                    proc.terminate()
            for proc in group:
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

    def cleanup(self) -> None:
        self.stop()
        if not os.environ.get("SOTTOVOCE_KEEP_TEST_DIRS"):  # set it to inspect logs after a failure
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.cleanup()

    # --- requests ---------------------------------------------------------------------

    def submit_file(self, path: Path | str, priority: str = "normal", **options: Any) -> str:
        reply = self.client.call(
            SubmitFile(path=str(Path(path).resolve()), priority=priority, options=JobOptions(**options))
        )
        return str(reply["job"]["id"])

    def submit_audio(self, pcm: bytes, priority: str = "high", **options: Any) -> str:
        reply = self.client.call(SubmitAudio(pcm=pcm, priority=priority, options=JobOptions(**options)))
        return str(reply["job"]["id"])

    def job(self, job_id: str) -> dict[str, Any]:
        return dict(self.client.call(JobStatus(job_id=job_id))["job"])

    def wait_job(
        self, job_id: str, timeout_s: float = 300.0, states: tuple[str, ...] = FINAL_STATES
    ) -> dict[str, Any]:
        """Poll job_status until the job is in one of `states` (tolerates a restarting scheduler)."""

        def check() -> dict[str, Any] | None:
            try:
                job = self.job(job_id)
            except ClientError:
                return None
            return job if job["state"] in states else None

        return poll(check, timeout_s, interval_s=0.05, what=f"job {job_id} to be {'/'.join(states)}")

    def result(self, job_id: str) -> dict[str, Any]:
        return dict(self.client.call(FetchResult(job_id=job_id)))

    def cli(
        self, *args: str, timeout_s: float = 300.0, stdin: bytes | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run the real `sottovoce` CLI against this stack."""
        return subprocess.run(
            [sys.executable, "-m", "actors.cli", *args],
            env=self.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    def subscribe(self, prefix: bytes = b"job.", timeout_s: float = 10.0) -> Any:
        """A SUB socket that is known to be live: ZeroMQ registers a subscription with the
        publisher a little after connect (the slow joiner), and events published meanwhile
        are dropped; a test that stops the scheduler right after subscribing would lose the
        first events after it resumes. So a probe event is reported until it arrives; the
        probe's own topic is then unsubscribed (subscriptions are applied in order)."""
        import zmq

        sub = self.client.subscribe(prefix)
        probe_topic = b"watch.file_seen"
        probe = {"path": f"subscription-probe-{os.urandom(4).hex()}"}
        sub.setsockopt(zmq.SUBSCRIBE, probe_topic)

        def heard() -> bool:
            try:
                self.client.call(Report(kind="file_seen", data=probe), timeout_s=1.0)
            except ClientError:
                return False
            while sub.poll(50):  # up to the probe only: what follows it is the test's
                try:
                    _, record = decode(sub.recv_multipart()[-1])
                except ProtocolError:
                    continue
                if isinstance(record, Event) and record.kind == "file_seen" and record.data == probe:
                    return True
            return False

        poll(heard, timeout_s, interval_s=0.0, what="the subscription to be live")
        sub.setsockopt(zmq.UNSUBSCRIBE, probe_topic)
        return sub


class HeldWork:
    """Work held in flight by a pause point (a window in a transcriber, or planning in
    ingest): `wait()` until an actor has reached it and stopped, do what the test is about,
    then `release()` (SIGCONT). As a context manager it releases (or disarms) on the way out."""

    def __init__(self, armed: Path, at: str, job: str | None, index: int | None) -> None:
        self.armed = armed
        self.pid: int | None = None
        filters = {k: v for k, v in (("at", at), ("job", job), ("index", index)) if v is not None}
        staged = armed.with_name(armed.name + ".new")
        staged.write_text("".join(f"{k}={v}\n" for k, v in filters.items()))
        staged.rename(armed)  # an actor never reads a half-written file

    def wait(self, timeout_s: float = 120.0) -> int:
        """The pid of the actor holding the work, once it is stopped."""
        from actors.runtime import procinfo

        def held() -> int | None:
            stopped = [pid for pid, _ in pausepoint.holders(self.armed) if procinfo.state_of(pid) == "T"]
            return stopped[0] if stopped else None

        self.pid = poll(held, timeout_s, interval_s=0.005, what="an actor to hold the work")
        return self.pid

    def release(self) -> None:
        """Let the actor go on (it may have been killed meanwhile: nothing to do)."""
        for pid, claimed in pausepoint.holders(self.armed):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
            claimed.unlink()
        self.pid = None

    def __enter__(self) -> HeldWork:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.armed.unlink(missing_ok=True)
        self.release()


def as_in_a_terminal() -> None:
    """Popen's preexec_fn for a command a test stops with Ctrl+C (SIGINT): the signal at its
    default, as for a command typed in a terminal. A test run started in the background by a
    non-interactive shell (`bash .ci/run &`, a CI runner) has SIGINT ignored, and children
    inherit that, so Python would never raise KeyboardInterrupt in them."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def window_compute_s(stack: Stack, job_id: str) -> list[float]:
    """The model time of each committed window of a job, in order (from the store)."""
    import sqlite3

    with sqlite3.connect(stack.cfg.store_path) as db:
        rows = db.execute("SELECT compute_s FROM chunks WHERE job_id=? ORDER BY idx", (job_id,)).fetchall()
    return [float(r[0]) for r in rows]


def transcript(stack: Stack, job_id: str) -> list[tuple[float, float, str]]:
    """A completed job's segments as (start, end, text), for comparing runs."""
    return [(s["start"], s["end"], s["text"]) for s in stack.result(job_id)["segments"]]


def collect_events(sub: Any, until: Callable[[list[Any]], bool], timeout_s: float) -> list[Any]:
    """Read events until `until(events)` holds or the deadline passes (then TimeoutError)."""
    events: list[Any] = []
    deadline = time.monotonic() + timeout_s
    while not until(events):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"events so far: {[(e.kind, e.job_id) for e in events][-20:]}")
        events.extend(read_events(sub, min(left, 0.5)))
    return events


def espeak_wav(text: str, out: Path, pad_s: float = 0.2) -> Path:
    """Synthesise `text` with espeak-ng into a 16 kHz mono int16 WAV (padded with silence)."""
    raw = out.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "160", "-w", str(raw), text], check=True)
    subprocess.run(
        [
            "sox",
            "-D",  # no dither: the same text gives the same samples every time
            str(raw),
            "-r",
            "16000",
            "-c",
            "1",
            "-b",
            "16",
            "-e",
            "signed-integer",
            str(out),
            "pad",
            str(pad_s),
            str(pad_s),
        ],
        check=True,
    )
    raw.unlink()
    return out


def pcm16(path: Path) -> bytes:
    """A media file as 16 kHz mono int16 bytes (through the same decoder as the stack)."""
    from actors.media.audiofile import decode_to_array

    return decode_to_array(path).astype("<i2").tobytes()
