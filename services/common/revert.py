"""Undo multi-step changes that fail half-way (an ExitStack-style reverter)."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

Undo = Callable[[], Any | Awaitable[Any]]


class Reverter:
    """Collect undo steps as work proceeds; run them in reverse unless :meth:`success`.

    Use as ``async with Reverter() as revert: ...; revert.add(undo); ...; revert.success()``.
    """

    def __init__(self) -> None:
        self._undo: list[Undo] = []
        self._done = False

    def add(self, undo: Undo) -> None:
        self._undo.append(undo)

    def success(self) -> None:
        """Keep every change: nothing will be undone."""
        self._done = True
        self._undo.clear()

    async def fail(self) -> None:
        """Undo every recorded step, newest first; a failing undo does not stop the rest."""
        while self._undo:
            undo = self._undo.pop()
            try:
                result = undo()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("undo step failed")

    async def __aenter__(self) -> Reverter:
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if not self._done:
            await self.fail()
