"""`sottovoce`: the CLI probe. Every command maps to one control request of protocol/SPEC.md
(named in its help) and talks only ZeroMQ to the running stack, like circus's commands/.
One module per command family:

- stack.py: run, up, down, status, logs, restart (supervise.py talks to supervisord);
- jobs.py: transcribe, say, jobs, job, cancel, pause, resume, priority, result;
- ptt.py: ptt, history;  watch.py: watch;  probe.py: ping, stats, events.

Exit codes: 0 ok; 1 the call failed or timed out (with a hint); 2 usage error.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from actors.cli import jobs, probe, ptt, stack, watch
from actors.cli.output import UsageError
from actors.runtime.client import Client, ClientError
from actors.runtime.config import Config, ConfigError, add_arguments

FAMILIES = (stack, jobs, ptt, watch, probe)
"""Command families in the order `sottovoce --help` lists them."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sottovoce",
        description="Local speech-to-text. Talks to the running sottovoce stack over ZeroMQ.",
        epilog="Exit codes: 0 ok, 1 call failed or timed out, 2 usage error. "
        "Settings: config.toml in the user config dir, SOTTOVOCE_SECTION_KEY variables, or --set.",
    )
    add_arguments(parser)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for each reply (10)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    data = argparse.ArgumentParser(add_help=False)
    data.add_argument("--json", action="store_true", help="print JSON instead of text")

    def add(
        name: str, func: Any, help_text: str, parents: list[Any] | None = None
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text, parents=parents or [data])
        p.set_defaults(func=func)
        return p

    for family in FAMILIES:
        family.add_commands(add, data)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        cfg = Config.load(path=args.config, overrides=args.set)
    except ConfigError as exc:
        parser.error(str(exc))
    client = Client(cfg, timeout_s=args.timeout)
    try:
        return int(args.func(args, cfg, client))
    except UsageError as exc:
        print(f"sottovoce {args.command}: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # parse_formats and friends
        print(f"sottovoce {args.command}: {exc}", file=sys.stderr)
        return 2
    except ClientError as exc:
        print(f"sottovoce {args.command}: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
