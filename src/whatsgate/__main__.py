"""``python -m whatsgate`` is the ``whatsgate`` command."""

import sys

from whatsgate.entrypoints.cli import main

sys.exit(main())
