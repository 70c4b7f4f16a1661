"""Keeps modules a service process never uses out of it.

nats-py imports aiohttp for its websocket transport; services connect over plain TCP, and
aiohttp costs ~10 MiB of every process that imports it. Import this module first in a
service's entry point only: never from a library module, since a process that does use
aiohttp (the gateway, the tests) must still be able to import it.
"""

from __future__ import annotations

import sys

if "aiohttp" not in sys.modules:
    sys.modules["aiohttp"] = None  # type: ignore[assignment]  # any import of it now fails
