"""Shared helpers of the catalog integration suites (no tests here).

``Instance`` runs the instance service in-process: a real :class:`ServiceRuntime` on the
session's real nats-server, with the very ``setup`` that ``python -m services.instance``
uses. ``Client`` sends requests on the bus the way the gateway does.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from schemas import subjects
from schemas.client import Bus
from schemas.messages import Reply, RequestMeta
from services.common.eventstore import EventStore
from services.common.runtime import ServiceRuntime
from services.common.settings import Settings
from services.instance.catalog.context import Catalog
from services.instance.service import NAME, setup


def unique(prefix: str) -> str:
    """A name no other test uses (the log is shared by the whole session)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class Instance:
    """One replica of the instance service, started and stopped in the test's event loop."""

    def __init__(self, nats_url: str, warren_dir: Path, node: str = "node1") -> None:
        settings = Settings(warren_dir=warren_dir, nats_url=nats_url, node=node)
        self.runtime = ServiceRuntime(NAME, settings)
        self.catalog: Catalog | None = None

    async def start(self) -> Instance:
        await self.runtime.connect()
        self.catalog = await setup(self.runtime)
        await self.runtime.start()
        if self.catalog.reconcile_task is not None:
            await self.catalog.reconcile_task
        return self

    async def stop(self) -> None:
        await self.runtime.stop()

    @property
    def projection(self) -> Any:
        assert self.catalog is not None
        return self.catalog.projection


class Client:
    """Requests on the bus with the metadata the gateway would set."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.store = EventStore(bus.js)

    @classmethod
    async def open(cls, nats_url: str) -> Client:
        return cls(await Bus.open(nats_url, "catalog-test-client"))

    async def close(self) -> None:
        await self.bus.close()

    def meta(self, project: str, if_match: str | None, requestor: str) -> RequestMeta:
        return RequestMeta(
            project=project,
            if_match=if_match,
            requestor=requestor,
            correlation_id=str(uuid.uuid4()),
        )

    async def call(
        self,
        subject: str,
        body: dict[str, Any] | None = None,
        project: str = "default",
        if_match: str | None = None,
        requestor: str = "tester",
    ) -> Any:
        """The result, or the WarrenError the service answered."""
        meta = self.meta(project, if_match, requestor)
        return await self.bus.request(subject, body or {}, meta)

    async def reply(self, subject: str, body: dict[str, Any], project: str = "default") -> Reply:
        return await self.bus.request_reply(subject, body, self.meta(project, None, "tester"))

    async def last_seq(self) -> int:
        return await self.store.last_seq()

    # Shorthands for the common calls.

    async def profile(self, name: str, project: str = "default") -> dict[str, Any]:
        return await self.call(subjects.PROFILES_GET, {"name": name}, project)

    async def project(self, name: str) -> dict[str, Any]:
        return await self.call(subjects.PROJECTS_GET, {"name": name})

    async def profiles(self, project: str = "default") -> list[str]:
        return await self.call(subjects.PROFILES_LIST, {"recursion": 0}, project)
