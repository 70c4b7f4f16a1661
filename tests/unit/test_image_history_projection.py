"""The image projection's history side: project tombstones, the projects a project name
stands for, and every image and alias that carried each name (through a snapshot)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from schemas import codec, events
from schemas.envelope import Event, StoredEvent
from schemas.errors import NotFound
from schemas.messages import RequestMeta
from services.image.images import alias as alias_agg
from services.image.images import image as image_agg
from services.image.images.projection import ImageProjection
from services.image.images.state import AliasState, ImageState, image_id

META = RequestMeta(requestor="tester")


def feed(projection: ImageProjection, *items: Event) -> None:
    for item in items:
        seq = projection.applied_seq + 1
        projection.apply(StoredEvent(seq=seq, event=item))
        projection.applied_seq = seq


def project_event(type_: str, agg_id: str, name: str, images: str = "true") -> Event:
    config = {"features.images": images}
    return Event(
        type=type_,
        aggregate="project",
        aggregate_id=agg_id,
        project=name,
        payload={"name": name, "config": config, "description": ""},
    )


def image(projection: ImageProjection, project_id: str, project: str, fp: str) -> ImageState:
    state = ImageState(image_id(project_id, fp), project_id, fp, "x86_64", 1)
    feed(projection, *image_agg.decide(None, image_agg.CreateImage(state, project, META)))
    return projection.images[state.id]


def test_images_of_a_renamed_then_deleted_project_stay_reachable() -> None:
    view = ImageProjection()
    feed(view, project_event(events.PROJECT_CREATED, "d", "default"))
    feed(view, project_event(events.PROJECT_CREATED, "p", "old"))
    feed(view, project_event(events.PROJECT_CREATED, "s", "shares", images="false"))
    web = image(view, "p", "old", "ab" * 32)
    feed(view, *image_agg.decide(web, image_agg.DeleteImage("old", META)))
    feed(view, project_event(events.PROJECT_RENAMED, "p", "new"))
    feed(view, project_event(events.PROJECT_DELETED, "p", "new"))

    with pytest.raises(NotFound):
        view.image_home("new")  # deleted: no request may use it any more
    assert view.image_home("shares") == ("d", "default")
    assert view.image_scopes("old") == view.image_scopes("new") == ["p"]
    assert view.image_scopes("shares") == ["s", "d"] and view.image_scopes("never") == []
    assert list(view.names.holders("image", "p", "ab" * 32)) == [web.id]

    restored = ImageProjection()
    restored.load(codec.unpack(codec.pack(view.dump())))
    assert restored.names == view.names and restored.projects == view.projects
    assert ImageProjection.snapshot_version == 2


def test_every_alias_that_carried_a_name_is_kept() -> None:
    view = ImageProjection()
    feed(view, project_event(events.PROJECT_CREATED, "d", "default"))
    first = AliasState("a1", "d", "web", "ab" * 32)
    feed(view, *alias_agg.decide(None, alias_agg.CreateAlias(first, "default", META)))
    rename = alias_agg.RenameAlias("default", META, "site")
    feed(view, *alias_agg.decide(view.aliases["a1"], rename))
    second = replace(first, id="a2")
    feed(view, *alias_agg.decide(None, alias_agg.CreateAlias(second, "default", META)))
    assert list(view.names.holders("image-alias", "d", "web")) == ["a1", "a2"]
    moved = view.names.carrier("a1")
    assert moved is not None and (moved.name, moved.deleted) == ("site", False)
