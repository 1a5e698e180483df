"""Reproducible benchmarks: ``python -m bench.<name> [--quick]``; see docs/benchmarks.md.

The benchmarks measure the whatsgate of the tree they live in: its ``src`` goes first on the
import path, unless PYTHONPATH says otherwise (to measure another tree), so an editable install
of another checkout cannot stand in for it silently. Each result records where whatsgate was
imported from (``machine.whatsgate_from``).
"""

import os
import sys
from pathlib import Path

_SRC = str(Path(__file__).resolve().parent.parent / "src")
if not os.environ.get("PYTHONPATH") and _SRC not in sys.path and Path(_SRC).is_dir():
    sys.path.insert(0, _SRC)
