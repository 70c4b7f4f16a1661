"""The host side of this node's pools: one driver object per pool, mounted once.

A pool the log says exists but whose directory or loop file is gone is not dropped: it stays
listed with status ``Unavailable`` and the reason is logged, so an operator sees it.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from schemas.errors import WarrenError
from services.storage.drivers import DRIVERS, PoolUsage, StorageDriver, VolumeInfo
from services.storage.pools.state import CREATED, UNAVAILABLE, PoolState

log = logging.getLogger(__name__)


class HostPools:
    """Driver objects of the pools of this node, keyed by pool id."""

    def __init__(self, warren_dir: Path) -> None:
        self.warren_dir = Path(warren_dir)
        self._drivers: dict[str, StorageDriver] = {}
        self._mounted: set[str] = set()
        self._errors: dict[str, str] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def lock(self, name: str) -> asyncio.Lock:
        """Serialises host changes of one pool name (create, delete)."""
        return self._locks.setdefault(name, asyncio.Lock())

    def driver_for(self, name: str, driver: str, config: dict[str, str]) -> StorageDriver:
        """A fresh driver object (not yet registered): for a pool being created."""
        return DRIVERS[driver](name, config, self.warren_dir)

    def driver(self, state: PoolState) -> StorageDriver:
        found = self._drivers.get(state.id)
        if found is None or found.pool != state.name:
            own = {k: v for k, v in state.config.items() if not k.startswith("user.")}
            found = self.driver_for(state.name, state.driver, own)
            self._drivers[state.id] = found
        return found

    def adopt(self, state: PoolState, driver: StorageDriver) -> None:
        """Register a pool just created on the host (it is mounted)."""
        self._drivers[state.id] = driver
        self._mounted.add(state.id)
        self._errors.pop(state.id, None)

    def forget(self, pool_id: str) -> None:
        self._drivers.pop(pool_id, None)
        self._mounted.discard(pool_id)
        self._errors.pop(pool_id, None)

    async def mount(self, state: PoolState) -> bool:
        """Mount a pool unless done already; on failure remember and log why."""
        if state.id in self._mounted:
            return True
        async with self.lock(state.name):
            if state.id in self._mounted:
                return True
            try:
                await self.driver(state).mount()
            except WarrenError as exc:
                self._errors[state.id] = exc.message
                log.error("storage pool %s is unavailable: %s", state.name, exc.message)
                return False
            self._mounted.add(state.id)
            self._errors.pop(state.id, None)
            return True

    def unavailable(self, state: PoolState) -> bool:
        """Whether mounting the pool failed (its reason was logged)."""
        return state.id in self._errors

    def status(self, state: PoolState) -> str:
        return UNAVAILABLE if state.id in self._errors else CREATED

    async def mounted(self, state: PoolState) -> StorageDriver:
        """The pool's driver, mounted; ``Unavailable`` errors say why it cannot be."""
        if not await self.mount(state):
            raise WarrenError(
                f"Storage pool {state.name} is unavailable: {self._errors.get(state.id)}", 503
            )
        return self.driver(state)

    async def volumes(self, state: PoolState, usage: bool = False) -> list[VolumeInfo]:
        return await (await self.mounted(state)).list_volumes(usage=usage)

    async def usage(self, state: PoolState) -> PoolUsage:
        return await (await self.mounted(state)).usage()
