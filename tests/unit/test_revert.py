"""The reverter undoes half-done multi-step work, newest step first."""

from __future__ import annotations

import pytest

from services.common.revert import Reverter


async def test_failure_undoes_steps_in_reverse_even_if_one_undo_fails():
    undone: list[str] = []

    async def undo_async() -> None:
        undone.append("second")

    def undo_broken() -> None:
        undone.append("third")
        raise OSError("already gone")

    with pytest.raises(RuntimeError):
        async with Reverter() as revert:
            revert.add(lambda: undone.append("first"))
            revert.add(undo_async)
            revert.add(undo_broken)
            raise RuntimeError("step four failed")
    assert undone == ["third", "second", "first"]


async def test_success_keeps_everything():
    undone: list[str] = []
    async with Reverter() as revert:
        revert.add(lambda: undone.append("x"))
        revert.success()
    assert undone == []
