"""The life of a service process: connect, restore projections, serve, drain on SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable

from schemas import eventloop
from schemas.client import Bus
from services.common.endpoints import EndpointGroup
from services.common.eventstore import EventStore
from services.common.projection import Projection, ProjectionRunner
from services.common.reactions import Reaction, ReactionRunner
from services.common.settings import Settings

log = logging.getLogger(__name__)


class ServiceRuntime:
    """Everything a service needs, wired once: bus, event store, endpoints, projections,
    reactions. ``scope`` is ``cluster`` (any replica anywhere serves) or ``node``."""

    def __init__(self, name: str, settings: Settings, scope: str = "cluster") -> None:
        self.name = name
        self.settings = settings
        self.scope = scope
        queue = name if scope == "cluster" else f"{name}.{settings.node}"
        self.endpoints = EndpointGroup(queue)
        self.projections: list[ProjectionRunner] = []
        self.reactions: list[ReactionRunner] = []
        self.bus: Bus | None = None
        self.store: EventStore | None = None
        self._stopping = asyncio.Event()
        self._on_stop: list[Callable[[], Awaitable[None]]] = []

    def on_stop(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Run ``hook`` at shutdown, after endpoints stop taking requests (newest first)."""
        self._on_stop.append(hook)

    def add_projection(self, projection: Projection) -> ProjectionRunner:
        runner = ProjectionRunner(self._store(), projection, self.settings.snapshot_dir / self.name)
        self.projections.append(runner)
        return runner

    def add_reaction(self, reaction: Reaction) -> ReactionRunner:
        runner = ReactionRunner(self._store(), reaction, durable_prefix=self.name)
        self.reactions.append(runner)
        return runner

    def _store(self) -> EventStore:
        if self.store is None:
            raise RuntimeError("connect() first")
        return self.store

    async def connect(self) -> None:
        self.bus = await Bus.open(self.settings.nats_url, f"{self.name}@{self.settings.node}")
        self.store = EventStore(self.bus.js)
        await self.store.ensure_stream()

    async def start(self) -> None:
        """Catch projections up with the log, then start reactions and endpoints."""
        assert self.bus is not None
        for runner in self.projections:
            await runner.start()
        for reaction in self.reactions:
            await reaction.start()
        await self.endpoints.start(self.bus.nc)

    async def stop(self) -> None:
        """Stop taking requests, finish what is in flight, snapshot, close."""
        await self.endpoints.stop()
        for hook in reversed(self._on_stop):
            try:
                await hook()
            except Exception:
                log.exception("%s: stop hook failed", self.name)
        for reaction in self.reactions:
            await reaction.stop()
        for runner in self.projections:
            await runner.stop()
        if self.bus is not None:
            await self.bus.close()

    def request_stop(self) -> None:
        self._stopping.set()

    async def serve_forever(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        await self._stopping.wait()
        log.info("%s: stopping", self.name)
        await self.stop()


def configure_logging(name: str) -> None:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format=f"%(asctime)s {name} %(levelname)s %(name)s: %(message)s",
    )


def run_service(
    name: str, setup: Callable[[ServiceRuntime], Awaitable[None]], scope: str = "cluster"
) -> None:
    """Entry point of a service process: ``setup`` registers endpoints and projections."""
    configure_logging(name)

    async def main() -> None:
        runtime = ServiceRuntime(name, Settings.from_env(), scope)
        await runtime.connect()
        await setup(runtime)
        await runtime.start()
        log.info("%s ready on node %s", name, runtime.settings.node)
        await runtime.serve_forever()

    eventloop.run(main())
