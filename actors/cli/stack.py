"""Stack commands: `sottovoce run` in the foreground (actors/cli/runner.py), and `up`, `down`,
`status`, `logs`, `restart` for the background stack under supervisord
(actors/cli/supervise.py talks to it).

Exit codes as everywhere in the CLI: 0 ok, 1 not up / failed / timed out (with a hint).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict
from typing import Any

from supervisor.xmlrpc import Faults

from actors.cli import logview
from actors.cli.output import emit, fmt_age
from actors.cli.supervise import (
    OUTPUT_NAME,
    PING_TIMEOUT_S,
    POLL_S,
    ActorView,
    NotRunning,
    RpcFault,
    SuperviseError,
    Supervisor,
    alive,
    conf_path,
    environment,
    live_sockets,
    ping_actor,
    survey,
    wait_up,
)
from actors.runtime.client import Client
from actors.runtime.config import Config
from protocol.vocab import ROSTER

FOLLOW_POLL_S = 0.25
DOWN_MARGIN_S = 15.0
EXIT_AFTER_SUPERVISOR_S = 10.0
"""Actors get SIGTERM when supervisord dies (entry.die_with_parent); time to let them go."""
LOG_LINES_SHOWN = 5
STOPPED_STATES = ("STOPPED", "EXITED", "FATAL")
SUPERVISORD_LOG = "supervisord"


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


def _data(sup: Supervisor, views: list[ActorView], supervised: bool) -> dict[str, Any]:
    return {
        "supervisord": {"running": supervised, "socket": str(sup.socket)},
        "ok": all(v.up for v in views),
        "actors": [{**asdict(v), "up": v.up} for v in views],
    }


def last_log_lines(cfg: Config, name: str, count: int = LOG_LINES_SHOWN) -> list[str]:
    return [logview.render(line) for line in logview.tail_rotated(cfg.log_dir / f"{name}.log", count)]


def not_up_emit(cfg: Config, views: list[ActorView]) -> str:
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
        data = ping_actor(client, "scheduler")
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
        emit(args, data, table(views))
        degraded = [v.name for v in views if v.health != "ok"]
        print(
            f"sottovoce up: {len(views)} actors up in {data['seconds']:.1f} s"
            + (f"; degraded (they run, and say why): {', '.join(degraded)}" if degraded else ""),
            file=sys.stderr,
        )
        return 0
    data["logs"] = {v.name: last_log_lines(cfg, v.name) for v in views if not v.up}
    emit(args, data, table(views))
    print(
        f"sottovoce up: not every actor came up within {timeout_s:.0f} s (supervisor.up_timeout_s):\n"
        f"{not_up_emit(cfg, views)}\n"
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
        emit(args, {"supervisord": {"running": False}, "ok": False, "actors": []}, "not running")
        return 1
    views = survey(cfg, procs)
    data = _data(sup, views, procs is not None)
    text = table(views)
    if procs is None:
        text = "supervisord is not running; a foreground stack (`sottovoce run`) answers:\n" + text
    emit(args, data, text)
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
        emit(args, {"stopped": False, "removed_sockets": removed}, text)
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
    emit(args, {"stopped": True, "killed": killed, "removed_sockets": removed}, "\n".join(lines))
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
    emit(args, data, "\n".join(lines) if ok else table(views))
    if not ok:
        print(f"sottovoce restart: not every actor came back:\n{not_up_emit(cfg, views)}", file=sys.stderr)
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


def cmd_run(args: argparse.Namespace, cfg: Config, client: Client) -> int:
    from actors.cli.runner import Runner

    return Runner(cfg).run()


def add_commands(add: Callable[..., argparse.ArgumentParser], data: argparse.ArgumentParser) -> None:
    """run and the lifecycle subcommands, added with main.build_parser's `add` (a short help
    for the command list, the whole story in each command's --help)."""
    add(
        "run",
        cmd_run,
        f"start every actor ({', '.join(ROSTER)}) in the foreground; Ctrl+C stops them. "
        "`sottovoce up` runs them in the background",
        parents=[],
    )
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
