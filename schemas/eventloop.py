"""The event loop every Warren process runs on: uvloop when it is installed.

uvloop's sockets, pipes and timers cost a fraction of asyncio's in CPU; an exec alone is
a dozen HTTP, websocket and NATS exchanges, so the gateway and the services use it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on uvloop when available, else on asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)
