"""System suites share the compat helpers (event log reader, state dump)."""

from __future__ import annotations

import sys
from pathlib import Path

COMPAT = str(Path(__file__).resolve().parents[1] / "compat")
if COMPAT not in sys.path:
    sys.path.insert(0, COMPAT)
