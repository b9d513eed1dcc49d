"""`python -m actors.cli ...` is the `sottovoce` command."""

import sys

from actors.cli.main import main

sys.exit(main())
