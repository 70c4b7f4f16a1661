"""The profile aggregate: decide refuses or emits full-state events; evolve folds them."""

from __future__ import annotations

from functools import reduce

import pytest

from schemas import events
from schemas.errors import BadRequest, Conflict, Forbidden, NotFound, PreconditionFailed
from services.instance.catalog import profile as agg
from services.instance.catalog.meta import CommandMeta
from services.instance.catalog.state import ProfileState

META = CommandMeta(requestor="alice", correlation_id="op-1", node="n1")


def _created(**kwargs: object) -> ProfileState:
    command = agg.CreateProfile(
        id="p1", project_id="proj", project="default", name="web", meta=META, **kwargs
    )
    (event,) = agg.decide(None, command)
    state = agg.evolve(None, event)
    assert state is not None
    return state


def _apply(state: ProfileState, command: agg.Command) -> ProfileState:
    return reduce(agg.evolve, agg.decide(state, command), state)  # type: ignore[arg-type]


def test_create_emits_full_state_with_request_identity() -> None:
    command = agg.CreateProfile(
        id="p1",
        project_id="proj",
        project="other",
        name="web",
        description="d",
        config={"user.a": "1", "user.gone": ""},
        devices={"root": {"type": "disk", "path": "/", "pool": "default"}},
        meta=META,
    )
    (event,) = agg.decide(None, command)
    assert event.type == events.PROFILE_CREATED
    assert (event.aggregate, event.aggregate_id, event.version) == ("profile", "p1", 1)
    assert event.project == "other"
    assert (event.requestor, event.correlation_id, event.node) == ("alice", "op-1", "n1")
    assert event.payload == {
        "name": "web",
        "project_id": "proj",
        "description": "d",
        "config": {"user.a": "1"},
        "devices": {"root": {"type": "disk", "path": "/", "pool": "default"}},
    }


def test_create_refuses_bad_input_and_taken_names() -> None:
    with pytest.raises(BadRequest, match="Unknown configuration key: foo"):
        _created(config={"foo": "1"})
    with pytest.raises(BadRequest, match="slashes"):
        agg.decide(None, agg.CreateProfile(id="x", project_id="p", project="d", name="a/b"))
    with pytest.raises(Conflict, match="The profile already exists"):
        _created(name_taken=True)


def test_put_replaces_and_patch_merges() -> None:
    state = _created(
        description="d0",
        config={"user.a": "1", "user.b": "2"},
        devices={
            "d1": {"type": "disk", "source": "/x", "path": "/y"},
            "d2": {"type": "disk", "source": "/z", "path": "/w"},
        },
    )
    patched = _apply(
        state,
        agg.UpdateProfile(
            project="default",
            mode="patch",
            config={"user.b": "3", "user.c": "4", "user.a": ""},
            devices={"d1": {"type": "disk", "source": "/q", "path": "/y"}},
            fields=("config", "devices"),
        ),
    )
    assert patched.description == "d0"
    assert patched.config == {"user.b": "3", "user.c": "4"}
    assert patched.devices == {
        "d1": {"type": "disk", "source": "/q", "path": "/y"},
        "d2": {"type": "disk", "source": "/z", "path": "/w"},
    }
    assert patched.version == 2
    described = _apply(
        patched,
        agg.UpdateProfile(project="default", mode="patch", description="", fields=("description",)),
    )
    assert described.description == "" and described.config == patched.config
    replaced = _apply(described, agg.UpdateProfile(project="default", description="x"))
    assert (replaced.description, replaced.config, replaced.devices) == ("x", {}, {})


def test_patch_with_a_partial_device_is_refused() -> None:
    state = _created(devices={"d1": {"type": "disk", "source": "/x", "path": "/y"}})
    command = agg.UpdateProfile(
        project="default", mode="patch", devices={"d1": {"source": "/q"}}, fields=("devices",)
    )
    with pytest.raises(BadRequest, match="Missing device type"):
        agg.decide(state, command)


def test_if_match_must_name_the_current_etag() -> None:
    state = _created()
    stale = agg.UpdateProfile(project="default", description="x", if_match='"0000"')
    with pytest.raises(PreconditionFailed, match=f"ETag doesn't match: {state.etag} vs 0000"):
        agg.decide(state, stale)
    fresh = agg.UpdateProfile(project="default", description="x", if_match=f'"{state.etag}"')
    assert _apply(state, fresh).description == "x"


def test_rename_records_old_name_and_refuses_default_and_taken() -> None:
    state = _created()
    (event,) = agg.decide(state, agg.RenameProfile(project="default", new_name="api"))
    assert event.type == events.PROFILE_RENAMED
    assert event.payload["name"] == "api" and event.payload["old_name"] == "web"
    assert agg.evolve(state, event).name == "api"  # type: ignore[union-attr]
    with pytest.raises(Conflict, match='Name "api" already in use'):
        agg.decide(state, agg.RenameProfile(project="default", new_name="api", name_taken=True))
    default = ProfileState("d", "proj", "default")
    with pytest.raises(Forbidden, match='The "default" profile cannot be renamed'):
        agg.decide(default, agg.RenameProfile(project="default", new_name="x"))


def test_delete_refuses_default_and_profiles_in_use() -> None:
    default = ProfileState("d", "proj", "default")
    with pytest.raises(Forbidden, match='The "default" profile cannot be deleted'):
        agg.decide(default, agg.DeleteProfile(project="default"))
    state = _created()
    in_use = agg.DeleteProfile(project="default", used_by=("/1.0/instances/c1",))
    with pytest.raises(Conflict, match="Profile is currently in use"):
        agg.decide(state, in_use)
    gone = _apply(state, agg.DeleteProfile(project="default"))
    assert gone.deleted
    with pytest.raises(NotFound, match="Profile not found"):
        agg.decide(gone, agg.UpdateProfile(project="default"))


def test_deleted_default_profile_can_be_created_again_by_the_system() -> None:
    tombstone = ProfileState("d", "proj", "default", version=3, deleted=True)
    command = agg.CreateProfile(id="d", project_id="proj", project="p", name="default")
    (event,) = agg.decide(tombstone, command)
    assert event.version == 4
    assert not agg.evolve(tombstone, event).deleted  # type: ignore[union-attr]
