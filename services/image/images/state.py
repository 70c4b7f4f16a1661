"""Live state of images and aliases, their ids, ETags, blob keys and LXD views."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from schemas.envelope import Event
from schemas.lxd.catalog import etag_of
from schemas.lxd.images import ZERO_TIME
from schemas.messages import RequestMeta

IMAGE = "image"
ALIAS = "image-alias"
PROJECT = "project"
_NAMESPACE = uuid.UUID("0b7d6f0e-3c1a-4e55-9a57-2f1c8e6b9d43")


def image_id(project_id: str, fingerprint: str) -> str:
    """Deterministic: a re-import of the same image into a project lands on the same id."""
    return str(uuid.uuid5(_NAMESPACE, f"image/{project_id}/{fingerprint}"))


def blob_keys(fingerprint: str, split: bool) -> list[str]:
    """Where an image's files live in the blob store (shared by projects holding it)."""
    base = f"images/{fingerprint}"
    return [f"{base}.meta", f"{base}.rootfs"] if split else [base]


@dataclass(frozen=True)
class ImageState:
    """One image in one project (every image event carries the whole state)."""

    id: str
    project_id: str
    fingerprint: str
    architecture: str
    size: int
    filename: str = ""
    split: bool = False
    properties: dict[str, str] = field(default_factory=dict)
    public: bool = False
    auto_update: bool = False
    expires_at: str = ZERO_TIME
    created_at: str = ZERO_TIME
    uploaded_at: str = ZERO_TIME
    last_used_at: str = ZERO_TIME
    profiles: list[str] = field(default_factory=lambda: ["default"])
    update_source: dict[str, Any] | None = None
    version: int = 0
    deleted: bool = False

    @property
    def etag(self) -> str:
        return etag_of(self.auto_update, self.properties, self.public, self.expires_at)

    def payload(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("id", "version", "deleted"):
            data.pop(key)
        return {"name": self.fingerprint, **data}

    @classmethod
    def from_event(cls, event: Event) -> ImageState:
        p = dict(event.payload)
        p.pop("name", None)
        known = {f for f in cls.__dataclass_fields__ if f not in ("id", "version", "deleted")}
        return cls(
            id=event.aggregate_id,
            version=event.version,
            **{k: v for k, v in p.items() if k in known},
        )

    def dump(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AliasState:
    """One image alias in one project."""

    id: str
    project_id: str
    name: str
    target: str
    description: str = ""
    type: str = "container"
    version: int = 0
    deleted: bool = False

    @property
    def etag(self) -> str:
        return etag_of(self.name, self.target, self.description)

    def payload(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "project_id": self.project_id,
            "target": self.target,
            "description": self.description,
            "type": self.type,
        }

    @classmethod
    def from_event(cls, event: Event) -> AliasState:
        p = event.payload
        return cls(
            id=event.aggregate_id,
            project_id=p["project_id"],
            name=p["name"],
            target=p["target"],
            description=p.get("description", ""),
            type=p.get("type", "container"),
            version=event.version,
        )

    def dump(self) -> dict[str, Any]:
        return asdict(self)

    def view(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "target": self.target,
            "type": self.type,
        }


def image_view(state: ImageState, aliases: list[AliasState]) -> dict[str, Any]:
    """The LXD object of an image."""
    return {
        "auto_update": state.auto_update,
        "properties": dict(state.properties),
        "public": state.public,
        "expires_at": state.expires_at,
        "profiles": list(state.profiles),
        "aliases": [{"name": a.name, "description": a.description} for a in aliases],
        "architecture": state.architecture,
        "cached": False,
        "filename": state.filename,
        "fingerprint": state.fingerprint,
        "size": state.size,
        "update_source": state.update_source,
        "type": "container",
        "created_at": state.created_at,
        "last_used_at": state.last_used_at,
        "uploaded_at": state.uploaded_at,
    }


def new_event(
    type_: str,
    aggregate: str,
    aggregate_id: str,
    version: int,
    project: str,
    payload: dict[str, Any],
    meta: RequestMeta,
    node: str,
) -> Event:
    """One event of this service, carrying the request's identity fields."""
    return Event(
        type=type_,
        aggregate=aggregate,
        aggregate_id=aggregate_id,
        version=version,
        project=project,
        payload=payload,
        requestor=meta.requestor,
        correlation_id=meta.correlation_id,
        causation_id=meta.causation_id,
        node=node,
    )
