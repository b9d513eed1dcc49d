"""The background stack under supervisord: `sottovoce up`, `down`, `status`, `logs`, `restart`.

supervisord runs deploy/supervisord.conf: one program per actor (`python -m actors NAME`),
started in priority order, restarted with back-off when it exits, stopped in reverse order.
This module talks to supervisord over its XML-RPC interface on the unix socket
RUNTIME_DIR/supervisor.sock, with supervisor's own SupervisorTransport and a fresh proxy per
call (a failed call leaves a proxy unusable), and to the scheduler with Ping (SPEC.md,
"Control"): supervisord's RUNNING only says that a process exists, the scheduler says that
the actor is connected and how healthy it is. An actor is *up* when both hold for the same pid.

Exit codes as everywhere in the CLI: 0 ok, 1 not up / failed / timed out (with a hint).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import xmlrpc.client
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from supervisor.xmlrpc import Faults, SupervisorTransport, UnixStreamHTTPConnection

import actors
from actors.cli import logview
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
FOLLOW_POLL_S = 0.25
STOP_MARGIN_S = 10
"""stopwaitsecs of the scheduler, ingest and transcriber: scheduler.stop_timeout_s plus this."""
DOWN_MARGIN_S = 15.0
EXIT_AFTER_SUPERVISOR_S = 10.0
"""Actors get SIGTERM when supervisord dies (entry.die_with_parent); time to let them go."""
LOG_LINES_SHOWN = 5
STOPPED_STATES = ("STOPPED", "EXITED", "FATAL")
SUPERVISORD_LOG = "supervisord"


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


def _ping(client: Client, actor: str) -> dict[str, Any] | str:
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
        scheduler = _ping(client, "scheduler")
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
    data = _ping(client, name)
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


# --- printing -------------------------------------------------------------------------------


def fmt_age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours < 48 else f"{hours // 24}d{hours % 24:02d}h"


def table(views: Iterable[ActorView]) -> str:
    rows = [("actor", "state", "pid", "uptime", "heartbeat", "health")]
    for v in views:
        health = v.health if v.connected else "not connected"
        if v.detail:
            health += f": {v.detail}"
        beat = "-" if v.heartbeat_s is None else f"{fmt_age(v.heartbeat_s)} ago"
        rows.append((v.name, v.state, str(v.pid or "-"), fmt_age(v.uptime_s), beat, health))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r[:5], widths, strict=True)) + "  " + r[5] for r in rows
    )


def report(args: argparse.Namespace, data: dict[str, Any], text: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(data, ensure_ascii=False, indent=2, default=str), flush=True)
    elif text:
        print(text, flush=True)


def _data(sup: Supervisor, views: list[ActorView], supervised: bool) -> dict[str, Any]:
    return {
        "supervisord": {"running": supervised, "socket": str(sup.socket)},
        "ok": all(v.up for v in views),
        "actors": [{**asdict(v), "up": v.up} for v in views],
    }


def last_log_lines(cfg: Config, name: str, count: int = LOG_LINES_SHOWN) -> list[str]:
    return [logview.render(line) for line in logview.tail_rotated(cfg.log_dir / f"{name}.log", count)]


def not_up_report(cfg: Config, views: list[ActorView]) -> str:
    lines = []
    for v in views:
        if v.up:
            continue
        lines.append(f"{v.name} is not up: {v.why or 'not connected to the scheduler'}")
        tail = last_log_lines(cfg, v.name)
        lines += [f"  | {line}" for text in tail for line in text.splitlines()] or ["  (its log is empty)"]
    return "\n".join(lines)


# --- commands -------------------------------------------------------------------------------


def scheduler_answers(cfg: Config) -> int | None:
    """The pid of a scheduler answering on this runtime dir, if one does."""
    client = Client(cfg, timeout_s=PING_TIMEOUT_S, name="up")
    try:
        data = _ping(client, "scheduler")
    finally:
        client.close()
    return None if isinstance(data, str) else int(data["pid"])


def foreground_refusal(cfg: Config, pid: int) -> str:
    return (
        f"a foreground stack (`sottovoce run`, scheduler pid {pid}) is running on {cfg.runtime_dir} "
        "without supervisord; stop it first (Ctrl+C where it runs), or set paths.runtime_dir and "
        "paths.data_dir for a second stack"
    )


def cmd_up(args: argparse.Namespace, cfg: Config, _client: Client) -> int:
    conf = conf_path(cfg)
    env = environment(cfg)
    command = [sys.executable, "-m", "supervisor.supervisord", "-n", "-c", str(conf)]
    if args.foreground:
        os.execve(sys.executable, command, env)  # systemd's main process is now supervisord
    sup = Supervisor(cfg)
    timeout_s = float(cfg.get("supervisor.up_timeout_s"))
    spawned = None
    if sup.running():
        print(f"sottovoce up: already running (supervisord on {sup.socket})", file=sys.stderr)
    elif (pid := scheduler_answers(cfg)) is not None:
        print(f"sottovoce up: {foreground_refusal(cfg, pid)}", file=sys.stderr)
        return 1
    else:
        with (cfg.log_dir / OUTPUT_NAME).open("wb") as out:
            spawned = subprocess.Popen(
                command,
                env=env,
                cwd=conf.parent,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # not in our terminal's process group: Ctrl+C here is ours
            )
        print(f"sottovoce up: supervisord pid {spawned.pid}, {conf}", file=sys.stderr)
    started = time.monotonic()
    ok, views = wait_up(cfg, sup, timeout_s, spawned)
    data = {**_data(sup, views, True), "seconds": round(time.monotonic() - started, 3)}
    if ok:
        report(args, data, table(views))
        degraded = [v.name for v in views if v.health != "ok"]
        print(
            f"sottovoce up: {len(views)} actors up in {data['seconds']:.1f} s"
            + (f"; degraded (they run, and say why): {', '.join(degraded)}" if degraded else ""),
            file=sys.stderr,
        )
        return 0
    data["logs"] = {v.name: last_log_lines(cfg, v.name) for v in views if not v.up}
    report(args, data, table(views))
    print(
        f"sottovoce up: not every actor came up within {timeout_s:.0f} s (supervisor.up_timeout_s):\n"
        f"{not_up_report(cfg, views)}\n"
        "The stack is left running for inspection: `sottovoce status`, `sottovoce logs ACTOR`; "
        "`sottovoce down` stops it.",
        file=sys.stderr,
    )
    return 1


def cmd_status(args: argparse.Namespace, cfg: Config, _client: Client) -> int:
    sup = Supervisor(cfg)
    try:
        procs: dict[str, dict[str, Any]] | None = sup.processes()
    except NotRunning:
        procs = None
    if procs is None and scheduler_answers(cfg) is None:
        report(args, {"supervisord": {"running": False}, "ok": False, "actors": []}, "not running")
        return 1
    views = survey(cfg, procs)
    data = _data(sup, views, procs is not None)
    text = table(views)
    if procs is None:
        text = "supervisord is not running; a foreground stack (`sottovoce run`) answers:\n" + text
    report(args, data, text)
    return 0 if data["ok"] else 1


def cmd_down(args: argparse.Namespace, cfg: Config, _client: Client) -> int:
    sup = Supervisor(cfg)
    started = time.monotonic()
    try:
        pid = int(sup.call("supervisor.getPID"))
        procs = sup.processes()
        stop_wait_s = sum(c["stopwaitsecs"] for c in sup.programs())
        sup.call("supervisor.shutdown")
    except NotRunning:
        if (scheduler := scheduler_answers(cfg)) is not None:
            print(f"sottovoce down: {foreground_refusal(cfg, scheduler)}", file=sys.stderr)
            return 1
        removed = remove_stale_sockets(cfg)
        text = "not running" + (f"; removed leftover sockets: {', '.join(removed)}" if removed else "")
        report(args, {"stopped": False, "removed_sockets": removed}, text)
        return 0
    actor_pids = {name: p["pid"] for name, p in procs.items() if p["pid"]}
    # supervisord stops the programs one by one, each within its stopwaitsecs. It sees that
    # one has exited when its loop turns: at least once a second, and on each request, so
    # asking while it stops makes the next program's stop start at once, not up to 1 s later.
    deadline = time.monotonic() + stop_wait_s + DOWN_MARGIN_S
    while alive(pid) and time.monotonic() < deadline:
        with contextlib.suppress(SuperviseError):  # it answers SHUTDOWN_STATE, or has gone
            sup.call("supervisor.getState", timeout_s=PING_TIMEOUT_S)
        time.sleep(POLL_S)
    if alive(pid):
        raise SuperviseError(
            f"supervisord (pid {pid}) is still running {stop_wait_s + DOWN_MARGIN_S:.0f} s after "
            f"shutdown; see {cfg.log_dir / 'supervisord.log'}"
        )
    deadline = time.monotonic() + EXIT_AFTER_SUPERVISOR_S
    while any(alive(p) for p in actor_pids.values()) and time.monotonic() < deadline:
        time.sleep(POLL_S)
    killed = []
    for name, actor_pid in actor_pids.items():
        if alive(actor_pid):
            os.kill(actor_pid, signal.SIGKILL)
            killed.append(f"{name} (pid {actor_pid})")
    removed = remove_stale_sockets(cfg)
    lines = [f"stopped supervisord and {len(actor_pids)} actors in {time.monotonic() - started:.1f} s"]
    if killed:
        lines.append(f"killed what outlived supervisord: {', '.join(killed)}")
    if removed:
        lines.append(f"removed leftover sockets: {', '.join(removed)}")
    report(args, {"stopped": True, "killed": killed, "removed_sockets": removed}, "\n".join(lines))
    return 0


def remove_stale_sockets(cfg: Config) -> list[str]:
    """Unlink socket files nothing listens on (an actor killed before it could clean up)."""
    live, stale = live_sockets(cfg.runtime_dir)
    for path in stale:
        path.unlink(missing_ok=True)
    if live:
        raise SuperviseError(f"something still listens on {', '.join(map(str, live))}")
    return [path.name for path in stale]


def cmd_restart(args: argparse.Namespace, cfg: Config, _client: Client) -> int:
    sup = Supervisor(cfg)
    try:
        procs = sup.processes()
        programs = sup.programs()
    except NotRunning as exc:
        raise SuperviseError(f"{exc}; start the stack with `sottovoce up`") from exc
    names = list(procs) if args.actor == "all" else [args.actor]
    if names[0] not in procs:
        raise SuperviseError(f"no program {args.actor!r}; supervisord runs {', '.join(procs)}")
    old_pids = {n: procs[n]["pid"] for n in names if procs[n]["pid"]}
    ordered = [c for c in programs if c["name"] in names]
    for program in reversed(ordered):  # stop the way supervisord stops: reverse priority
        _stop(sup, program)
    for program in ordered:
        try:
            sup.call("supervisor.startProcess", f"{program['group']}:{program['name']}", False)
        except RpcFault as exc:
            raise SuperviseError(f"cannot start {program['name']}: {exc}") from exc
    ok, views = wait_up(cfg, sup, float(cfg.get("supervisor.up_timeout_s")), old_pids=old_pids)
    restarted = {v.name: v for v in views if v.name in names}
    lines = [f"{n}: pid {restarted[n].pid or '-'} (was {old_pids.get(n, '-')})" for n in names]
    data = {**_data(sup, views, True), "restarted": {n: restarted[n].pid for n in names}}
    report(args, data, "\n".join(lines) if ok else table(views))
    if not ok:
        print(f"sottovoce restart: not every actor came back:\n{not_up_report(cfg, views)}", file=sys.stderr)
        return 1
    return 0


def _stop(sup: Supervisor, program: dict[str, Any]) -> None:
    name = f"{program['group']}:{program['name']}"
    try:
        sup.call("supervisor.stopProcess", name, False)
    except RpcFault as exc:
        if exc.code != Faults.NOT_RUNNING:  # not running: nothing to stop
            raise SuperviseError(f"cannot stop {program['name']}: {exc}") from exc
        return
    deadline = time.monotonic() + program["stopwaitsecs"] + DOWN_MARGIN_S
    while sup.call("supervisor.getProcessInfo", name)["statename"] not in STOPPED_STATES:
        if time.monotonic() >= deadline:
            raise SuperviseError(f"{program['name']} did not stop within {program['stopwaitsecs']} s")
        time.sleep(POLL_S)


def cmd_logs(args: argparse.Namespace, cfg: Config, _client: Client) -> int:
    names = [args.actor] if args.actor else list(ROSTER)
    paths = [cfg.log_dir / f"{name}.log" for name in names]
    if args.actor and not paths[0].exists():
        raise SuperviseError(f"no log for {args.actor} at {paths[0]} (has it run?)")
    if not any(path.exists() for path in paths):
        raise SuperviseError(f"no logs in {cfg.log_dir} (has the stack run?)")
    show: Callable[[str], str] = (lambda text: text) if args.raw else logview.render
    followers = [logview.Follower(path) for path in paths] if args.follow else []
    lines = logview.merged(logview.tail_rotated(path, args.lines) for path in paths)
    for line in lines[-args.lines :] if args.lines > 0 else []:
        print(show(line.text))
    sys.stdout.flush()
    if not args.follow:
        return 0
    try:
        while True:
            fresh = logview.merged(f.read() for f in followers)
            for line in fresh:
                print(show(line.text), flush=True)
            time.sleep(FOLLOW_POLL_S)
    except KeyboardInterrupt:
        return 0
    finally:
        for follower in followers:
            follower.close()


# --- parser ---------------------------------------------------------------------------------


def add_commands(add: Callable[..., argparse.ArgumentParser], data: argparse.ArgumentParser) -> None:
    """The lifecycle subcommands, added with cli.build_parser's `add` (a short help for the
    command list, the whole story in each command's --help)."""
    p = add(
        "up",
        cmd_up,
        "start the stack in the background under supervisord; wait until every actor is connected",
        [data],
    )
    p.description = (
        "Start the stack in the background under supervisord (deploy/supervisord.conf, or the "
        "file supervisor.conf names) and wait until every actor runs and is connected to the "
        "scheduler (supervisor.up_timeout_s, 90 s); then print each actor's state, pid and "
        "health. Degraded actors (no display, no microphone) count as up and say why. Already "
        "up: prints the status. Exit 1 if an actor did not come up (it says which and why, and "
        "leaves the stack running for inspection), or if a foreground `sottovoce run` uses the "
        "same runtime dir. Settings are read here: after changing them, `sottovoce down` and "
        "`up` again."
    )
    p.add_argument(
        "--foreground",
        action="store_true",
        help="become supervisord in this process instead (for a systemd unit; does not wait or print)",
    )
    p = add("down", cmd_down, "stop the background stack, scheduler last (supervisor.shutdown)", [data])
    p.description = (
        "Stop the background stack (XML-RPC supervisor.shutdown: actors stop in reverse start "
        "order, the scheduler last, each finishing what it has in hand) and wait until no actor "
        "process is left; remove socket files a killed actor left. Not running: exit 0."
    )
    p = add("status", cmd_status, "each actor's state, pid, uptime, heartbeat and health", [data])
    p.description = (
        "Each actor's supervisord state, pid and uptime, with its health and last heartbeat "
        "as the scheduler sees them (request: ping). Exit 0 if every actor runs and is "
        "connected, else 1 (also when nothing runs: `not running`)."
    )
    p = add(
        "logs",
        cmd_logs,
        "an actor's log, readable, or every actor's merged by time; -f follows",
        [argparse.ArgumentParser(add_help=False)],  # no --json: --raw prints the JSON lines
    )
    p.description = (
        "Show the last lines of an actor's log (DATA_DIR/logs/ACTOR.log), readable: time, "
        "level, actor, event, key=value; without ACTOR every actor's log, merged by time. -f "
        "follows (across supervisord's log rotation) until Ctrl+C."
    )
    p.add_argument(
        "actor",
        nargs="?",
        choices=(*ROSTER, SUPERVISORD_LOG),
        metavar="ACTOR",
        help=f"one of {', '.join(ROSTER)}, or {SUPERVISORD_LOG} (its own log); default: every actor",
    )
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    p.add_argument("-n", "--lines", type=int, default=50, help="how many lines to show first (50)")
    p.add_argument("--raw", action="store_true", help="the JSON lines as written")
    p = add("restart", cmd_restart, "restart an actor, or all; wait until connected again", [data])
    p.description = (
        "Stop and start one actor, or all of them in order (XML-RPC stopProcess, "
        "startProcess), then wait until it is connected to the scheduler again "
        "(supervisor.up_timeout_s); print the new pid."
    )
    p.add_argument("actor", metavar="ACTOR|all", help=f"one of {', '.join(ROSTER)}, or all")
