"""The image aggregate: pure ``decide(state, command) -> events`` and ``evolve``.

An image's id comes from (project id, fingerprint), so importing an image that a project
already holds lands on the same aggregate and is refused, as LXD refuses it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from schemas import events
from schemas.envelope import Event
from schemas.errors import Conflict, NotFound, PreconditionFailed
from schemas.messages import RequestMeta
from services.image.images.state import IMAGE, ImageState, new_event


@dataclass(frozen=True)
class CreateImage:
    image: ImageState
    project: str
    meta: RequestMeta
    node: str = ""


@dataclass(frozen=True)
class UpdateImage:
    project: str
    meta: RequestMeta
    mode: Literal["put", "patch"] = "put"
    auto_update: bool = False
    properties: dict[str, str] = field(default_factory=dict)
    public: bool = False
    expires_at: str | None = None
    profiles: list[str] | None = None
    fields: tuple[str, ...] = ()
    node: str = ""


@dataclass(frozen=True)
class DeleteImage:
    project: str
    meta: RequestMeta
    node: str = ""


Command = CreateImage | UpdateImage | DeleteImage


def exists(state: ImageState | None) -> bool:
    return state is not None and not state.deleted


def _event(type_: str, state: ImageState, cmd: Command) -> Event:
    return new_event(
        type_, IMAGE, state.id, state.version + 1, cmd.project, state.payload(), cmd.meta, cmd.node
    )


def decide(state: ImageState | None, cmd: Command) -> list[Event]:
    """The events a command causes, or the LXD error refusing it."""
    if isinstance(cmd, CreateImage):
        if exists(state):
            raise Conflict("Image with same fingerprint already exists")
        version = state.version if state is not None else 0
        return [_event(events.IMAGE_CREATED, replace(cmd.image, version=version), cmd)]
    if state is None or state.deleted:
        raise NotFound("Image not found")
    if isinstance(cmd, UpdateImage):
        return [_event(events.IMAGE_UPDATED, _updated(state, cmd), cmd)]
    return [_event(events.IMAGE_DELETED, state, cmd)]


def _updated(state: ImageState, cmd: UpdateImage) -> ImageState:
    wanted = cmd.meta.if_match.strip().strip('"') if cmd.meta.if_match else None
    if wanted and wanted != state.etag:
        raise PreconditionFailed(f"ETag doesn't match: {state.etag} vs {wanted}")
    if cmd.mode == "put":
        changes = {
            "auto_update": cmd.auto_update,
            "properties": dict(cmd.properties),
            "public": cmd.public,
        }
        if cmd.expires_at is not None:
            changes["expires_at"] = cmd.expires_at
        if cmd.profiles is not None:
            changes["profiles"] = list(cmd.profiles)
    else:
        changes = {}
        if "auto_update" in cmd.fields:
            changes["auto_update"] = cmd.auto_update
        if "public" in cmd.fields:
            changes["public"] = cmd.public
        if "properties" in cmd.fields:
            # LXD's PATCH merges properties key by key.
            changes["properties"] = {**state.properties, **cmd.properties}
        if "expires_at" in cmd.fields and cmd.expires_at is not None:
            changes["expires_at"] = cmd.expires_at
        if "profiles" in cmd.fields and cmd.profiles is not None:
            changes["profiles"] = list(cmd.profiles)
    return replace(state, **changes)  # type: ignore[arg-type]


def evolve(state: ImageState | None, event: Event) -> ImageState | None:
    """Fold one image event into the state it follows."""
    if event.type in (events.IMAGE_CREATED, events.IMAGE_UPDATED):
        return ImageState.from_event(event)
    if event.type == events.IMAGE_DELETED and state is not None:
        return replace(state, deleted=True, version=event.version)
    return state
