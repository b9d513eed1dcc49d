"""supervisord and the actors it runs, as the stack commands (actors/cli/stack.py) see them.

supervisord runs deploy/supervisord.conf: one program per actor (`python -m actors NAME`),
started in priority order, restarted with back-off when it exits, stopped in reverse order.
This module talks to supervisord over its XML-RPC interface on the unix socket
RUNTIME_DIR/supervisor.sock, with supervisor's own SupervisorTransport and a fresh proxy per
call (a failed call leaves a proxy unusable), and to the scheduler with Ping (SPEC.md,
"Control"): supervisord's RUNNING only says that a process exists, the scheduler says that
the actor is connected and how healthy it is. An actor is *up* when both hold for the same pid.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import time
import xmlrpc.client
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from supervisor.xmlrpc import Faults, SupervisorTransport, UnixStreamHTTPConnection

import actors
from actors.runtime import procinfo
from actors.runtime.client import Client, ClientError
from actors.runtime.config import Config
from protocol.control import Ping
from protocol.vocab import ROSTER

SOCKET_NAME = "supervisor.sock"
PIDFILE_NAME = "supervisord.pid"
OUTPUT_NAME = "supervisord.out"
"""supervisord's own stdout and stderr under `up`: where a config it cannot load says why."""
RPC_TIMEOUT_S = 5.0
PING_TIMEOUT_S = 1.0
POLL_S = 0.1
STOP_MARGIN_S = 10
"""stopwaitsecs of the scheduler, ingest and transcriber: scheduler.stop_timeout_s plus this."""


class SuperviseError(ClientError):
    """A lifecycle command that failed; str() says why and what to do."""


class NotRunning(SuperviseError):
    """No supervisord answers on the socket (none started, or a stale socket of a dead one)."""


class RpcFault(SuperviseError):
    """supervisord answered with a fault (supervisor.xmlrpc.Faults: NOT_RUNNING, SHUTDOWN_STATE...)."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code


# --- supervisord ----------------------------------------------------------------------------


def default_conf() -> Path:
    """deploy/supervisord.conf beside the `actors` package (a checkout or an editable install)."""
    return Path(actors.__file__).resolve().parent.parent / "deploy" / "supervisord.conf"


def conf_path(cfg: Config) -> Path:
    raw = cfg.get("supervisor.conf")
    path = Path(raw).expanduser() if raw else default_conf()
    if not path.is_file():
        where = "supervisor.conf" if raw else "the default (the install has no deploy/ directory?)"
        raise SuperviseError(f"no supervisord config at {path} ({where}); set supervisor.conf to one")
    return path.resolve()


def environment(cfg: Config) -> dict[str, str]:
    """What supervisord runs with: this environment, every setting as SOTTOVOCE_SECTION_KEY
    with the runtime and data dirs resolved (so every actor agrees with the CLI), and the
    variables deploy/supervisord.conf reads."""
    env = {**os.environ, **cfg.as_env()}
    env["SOTTOVOCE_PATHS_RUNTIME_DIR"] = str(cfg.runtime_dir)
    env["SOTTOVOCE_PATHS_DATA_DIR"] = str(cfg.data_dir)
    if cfg.path is not None:
        env["SOTTOVOCE_CONFIG"] = str(cfg.path)
    env["SOTTOVOCE_PYTHON"] = sys.executable
    env["SOTTOVOCE_LOG_DIR"] = str(cfg.log_dir)
    env["SOTTOVOCE_UID"] = str(os.getuid())
    env["SOTTOVOCE_STOP_WAIT_S"] = str(int(float(cfg.get("scheduler.stop_timeout_s"))) + STOP_MARGIN_S)
    return env


class _UnixConnection(UnixStreamHTTPConnection):
    """supervisor's unix-socket HTTP connection, with a timeout on connect and every read."""

    def __init__(self, path: str, timeout_s: float) -> None:
        super().__init__("localhost", timeout=timeout_s)
        self.socketfile = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socketfile)


class Supervisor:
    """supervisord's XML-RPC interface on RUNTIME_DIR/supervisor.sock."""

    def __init__(self, cfg: Config) -> None:
        self.socket = cfg.runtime_dir / SOCKET_NAME

    def call(self, method: str, *args: Any, timeout_s: float = RPC_TIMEOUT_S) -> Any:
        """One call on a fresh proxy; NotRunning if nothing listens, RpcFault for a fault."""
        if not self.socket.exists():
            raise NotRunning(f"supervisord is not running (no socket at {self.socket})")
        transport = SupervisorTransport(serverurl=f"unix://{self.socket}")
        transport._get_connection = lambda: _UnixConnection(str(self.socket), timeout_s)
        proxy = xmlrpc.client.ServerProxy("http://localhost", transport=transport)
        try:
            return getattr(proxy, method)(*args)
        except xmlrpc.client.Fault as exc:
            if exc.faultCode == Faults.SHUTDOWN_STATE:
                text = "supervisord is shutting down; `sottovoce status` says `not running` once it is gone"
            else:
                text = f"supervisord refused {method}{args}: {exc.faultString}"
            raise RpcFault(exc.faultCode, text) from exc
        except (ConnectionRefusedError, FileNotFoundError) as exc:
            raise NotRunning(f"supervisord is not running (stale socket {self.socket})") from exc
        except TimeoutError as exc:
            raise SuperviseError(f"supervisord did not answer {method} within {timeout_s:.0f} s") from exc
        except OSError as exc:  # reset or closed while it shuts down
            raise NotRunning(f"supervisord went away during {method}: {exc}") from exc
        finally:
            transport.close()

    def running(self) -> bool:
        try:
            return self.call("supervisor.getState")["statename"] == "RUNNING"
        except NotRunning:
            return False

    def processes(self) -> dict[str, dict[str, Any]]:
        """supervisord's view of each program, by name, in start order."""
        infos = self.call("supervisor.getAllProcessInfo")
        return {p["name"]: p for p in sorted(infos, key=lambda p: order_key(p["name"]))}

    def programs(self) -> list[dict[str, Any]]:
        """Each program's config (priority, stopwaitsecs, ...), in start (priority) order."""
        return sorted(self.call("supervisor.getAllConfigInfo"), key=lambda c: (c["group_prio"], c["name"]))


def order_key(name: str) -> tuple[int, str]:
    return (ROSTER.index(name) if name in ROSTER else len(ROSTER), name)


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (an orphan's zombie may linger unreaped)."""
    return procinfo.state_of(pid) not in (None, "Z")


def live_sockets(runtime_dir: Path) -> tuple[list[Path], list[Path]]:
    """Socket files in the runtime dir: (those something listens on, stale ones)."""
    live, stale = [], []
    for path in sorted(runtime_dir.iterdir()):
        try:
            if not stat.S_ISSOCK(path.lstat().st_mode):
                continue
        except FileNotFoundError:
            continue
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.settimeout(PING_TIMEOUT_S)
            probe.connect(str(path))
            live.append(path)
        except (ConnectionRefusedError, FileNotFoundError):
            stale.append(path)
        except OSError:
            live.append(path)  # cannot tell: leave it
        finally:
            probe.close()
    return live, stale


# --- what each actor is doing ---------------------------------------------------------------


@dataclass
class ActorView:
    """One actor as supervisord and the scheduler see it."""

    name: str
    state: str = "-"
    """supervisord's state (RUNNING, STARTING, BACKOFF, EXITED, FATAL, ...); "-" without it."""
    pid: int | None = None
    uptime_s: float | None = None
    connected: bool = False
    """The scheduler answers for this actor (with the same pid as supervisord's process)."""
    health: str = "-"
    detail: str = ""
    heartbeat_s: float | None = None
    """Seconds since the scheduler last heard from it."""
    why: str = ""
    """What keeps it from being up."""

    @property
    def up(self) -> bool:
        return self.connected and self.state in ("RUNNING", "-")


def ping_actor(client: Client, actor: str) -> dict[str, Any] | str:
    try:
        return client.call(Ping(actor=actor), timeout_s=PING_TIMEOUT_S)
    except ClientError as exc:
        return str(exc)


def survey(cfg: Config, procs: dict[str, dict[str, Any]] | None) -> list[ActorView]:
    """Every actor: supervisord's programs (or, without supervisord, the known actors) with
    what the scheduler says about each."""
    names = list(procs) if procs is not None else list(ROSTER)
    client = Client(cfg, timeout_s=PING_TIMEOUT_S, name="status")
    try:
        scheduler = ping_actor(client, "scheduler")
        return [_view(client, name, procs, scheduler) for name in names]
    finally:
        client.close()


def _view(
    client: Client, name: str, procs: dict[str, dict[str, Any]] | None, scheduler: dict[str, Any] | str
) -> ActorView:
    view = ActorView(name)
    if procs is not None:
        info = procs[name]
        view.state = info["statename"]
        view.pid = info["pid"] or None
        if view.state == "RUNNING":
            view.uptime_s = float(info["now"] - info["start"])
        else:
            view.why = f"{view.state}: {info['spawnerr'] or info['description'] or 'not running'}"
    if isinstance(scheduler, str):
        view.why = view.why or scheduler
        return view
    if name == "scheduler":
        seen = int(scheduler["pid"])
        view.health = "ok"
        view.uptime_s = view.uptime_s if view.uptime_s is not None else float(scheduler["uptime_s"])
        view.pid = view.pid or seen
        view.connected = view.pid == seen
        if not view.connected:
            view.why = view.why or f"the scheduler answering is pid {seen}, not supervisord's {view.pid}"
        return view
    data = ping_actor(client, name)
    if isinstance(data, str):
        view.why = view.why or data
        return view
    workers = data["workers"]
    mine = [w for w in workers if view.pid is None or w["pid"] == view.pid]
    if procs is not None and view.pid is None:
        mine = []  # a worker entry left by a process supervisord no longer runs
    if not mine:
        view.why = view.why or f"connected {name} pids {[w['pid'] for w in workers]} are not pid {view.pid}"
        return view
    worker = mine[0]
    view.pid = worker["pid"]
    view.connected = True
    view.health = worker["health"]
    view.detail = worker["detail"]
    view.heartbeat_s = float(worker["last_heartbeat_s"])
    if view.uptime_s is None:
        view.uptime_s = float(worker["uptime_s"])
    return view


def wait_up(
    cfg: Config,
    sup: Supervisor,
    timeout_s: float,
    spawned: subprocess.Popen[bytes] | None = None,
    old_pids: dict[str, int] | None = None,
) -> tuple[bool, list[ActorView]]:
    """Poll until every program is RUNNING and connected (with a pid other than `old_pids`
    says, for a restart) or the deadline passes; (all up, the last survey)."""
    deadline = time.monotonic() + timeout_s
    old = old_pids or {}
    while True:
        if spawned is not None and spawned.poll() is not None:
            out = (cfg.log_dir / OUTPUT_NAME).read_text(errors="replace").strip()
            raise SuperviseError(
                f"supervisord exited with {spawned.returncode}: {out[-2000:] or 'no output'}"
            )
        try:
            procs: dict[str, dict[str, Any]] | None = sup.processes()
        except NotRunning:
            procs = None  # not listening yet
        if procs is not None:
            views = survey(cfg, procs)
            if all(v.up and v.pid != old.get(v.name) for v in views):
                return True, views
        if time.monotonic() >= deadline:
            if procs is None:
                raise SuperviseError(
                    f"supervisord did not answer on {sup.socket} within {timeout_s:.0f} s; "
                    f"see {cfg.log_dir / OUTPUT_NAME} and {cfg.log_dir / 'supervisord.log'}"
                )
            return False, views
        time.sleep(POLL_S)
