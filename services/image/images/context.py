"""What every image handler shares: the log, the fresh projection, blobs, operations."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nats.aio.client import Client

from schemas.catalog import ObjectResult
from schemas.messages import RequestMeta
from services.common.blobs import BlobStore
from services.common.eventstore import EventStore
from services.common.names import NameRegistry
from services.common.operations import OperationRecorder
from services.common.projection import ProjectionRunner
from services.image.images.projection import ImageProjection
from services.image.images.state import ALIAS, AliasState, ImageState


@dataclass
class ImageContext:
    """The image service's dependencies, wired once per process."""

    nc: Client
    store: EventStore
    runner: ProjectionRunner
    projection: ImageProjection
    blobs: BlobStore
    operations: OperationRecorder
    node: str
    #: Uploads spool here (under $WARREN_DIR, never in memory).
    spool_dir: Path
    #: Seconds a transfer may stay silent before it counts as abandoned.
    idle_timeout: float = 60.0
    alias_names: NameRegistry = field(init=False)
    #: The start-up check for operations of dead processes (see :mod:`.orphans`).
    startup: asyncio.Task[None] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.alias_names = NameRegistry(self.store, ALIAS)

    async def fresh(self) -> int:
        """Bring the projection up to everything committed (read-your-writes); the seq."""
        return await self.runner.barrier()

    def home(self, meta: RequestMeta) -> tuple[str, str]:
        """(project id, project name) whose images the request's project uses."""
        return self.projection.image_home(meta.project)

    def event_meta(self, meta: RequestMeta) -> dict[str, str | None]:
        return {
            "requestor": meta.requestor,
            "correlation_id": meta.correlation_id,
            "causation_id": meta.causation_id,
            "node": self.node,
        }

    def image_result(self, state: ImageState) -> dict[str, Any]:
        return ObjectResult(object=self.projection.view(state), etag=state.etag).model_dump()

    def alias_result(self, state: AliasState) -> dict[str, Any]:
        return ObjectResult(object=state.view(), etag=state.etag).model_dump()
