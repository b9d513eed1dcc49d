"""Common command line of every actor process: `python -m actors.NAME [--config F] [--set K=V]`."""

from __future__ import annotations

import argparse
from typing import Any

from actors.config import Config, ConfigError, add_arguments
from actors.logs import setup


def start(name: str, description: str | None, argv: list[str] | None) -> tuple[Config, Any]:
    """Parse the actor's arguments, load config, set up logging; returns (config, logger)."""
    parser = argparse.ArgumentParser(prog=f"python -m actors.{name}", description=description)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        cfg = Config.load(path=args.config, overrides=args.set)
    except ConfigError as exc:
        parser.error(str(exc))
    return cfg, setup(name, cfg.log_dir, cfg.get("log.level"))
