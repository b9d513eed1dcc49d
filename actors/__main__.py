"""`python -m actors ROLE [--config F] [--set K=V]`: run one actor of the stack in the
foreground. `sottovoce run` and supervisord (deploy/) start every role this way."""

from __future__ import annotations

import importlib
import sys

from actors.runtime.roster import MODULES
from protocol.vocab import ROSTER, Role


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] not in ROSTER:
        print(f"usage: python -m actors {{{','.join(ROSTER)}}} [--config F] [--set K=V]", file=sys.stderr)
        return 2
    module = importlib.import_module(MODULES[Role(args[0])])
    return int(module.main(args[1:]))


if __name__ == "__main__":
    sys.exit(main())
