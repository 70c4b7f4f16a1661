"""The project aggregate: LXD's feature defaults and rules on features, renames, deletes."""

from __future__ import annotations

from functools import reduce

import pytest

from schemas import events
from schemas.errors import BadRequest, Conflict, Forbidden, NotFound, PreconditionFailed
from services.instance.catalog import project as agg
from services.instance.catalog.keys import ALL_PROJECT_FEATURES
from services.instance.catalog.state import ProjectState


def _created(name: str = "p", **config: str) -> ProjectState:
    (event,) = agg.decide(None, agg.CreateProject(id="j1", name=name, config=config))
    state = agg.evolve(None, event)
    assert state is not None
    return state


def _apply(state: ProjectState, command: agg.Command) -> ProjectState:
    return reduce(agg.evolve, agg.decide(state, command), state)  # type: ignore[arg-type]


DEFAULT = ProjectState("d", "default", config={k: "true" for k in ALL_PROJECT_FEATURES})


def test_new_project_gets_lxd_feature_defaults_unless_told() -> None:
    assert _created().config == {
        "features.images": "true",
        "features.profiles": "true",
        "features.storage.volumes": "true",
    }
    assert _created(**{"features.profiles": "false"}).config["features.profiles"] == "false"
    assert agg.has_profiles(_created())
    assert not agg.has_profiles(_created(**{"features.profiles": "false"}))
    assert agg.has_profiles(ProjectState("d", "default"))


def test_project_events_are_filed_under_the_project_itself() -> None:
    (event,) = agg.decide(None, agg.CreateProject(id="j1", name="blue"))
    assert event.type == events.PROJECT_CREATED and event.project == "blue"
    (renamed,) = agg.decide(_created("blue"), agg.RenameProject(new_name="green"))
    assert renamed.project == "green" and renamed.payload["old_name"] == "blue"


def test_create_refuses_bad_names_keys_and_taken_names() -> None:
    with pytest.raises(BadRequest, match="underscores"):
        _created("a_b")
    with pytest.raises(BadRequest, match='Invalid project configuration key "foo"'):
        _created(foo="1")
    with pytest.raises(Conflict, match='This "projects" entry already exists'):
        agg.decide(None, agg.CreateProject(id="x", name="default"))
    with pytest.raises(Conflict):
        agg.decide(None, agg.CreateProject(id="x", name="p", name_taken=True))


def test_put_replaces_patch_merges_and_etag_is_checked() -> None:
    state = _created(**{"user.a": "1"})
    patched = _apply(
        state, agg.UpdateProject(mode="patch", config={"user.b": "2"}, fields=("config",))
    )
    assert patched.config["user.a"] == "1" and patched.config["user.b"] == "2"
    replaced = _apply(patched, agg.UpdateProject(description="hi"))
    assert (replaced.description, replaced.config) == ("hi", {})
    with pytest.raises(PreconditionFailed, match="ETag doesn't match"):
        agg.decide(replaced, agg.UpdateProject(if_match="nope"))


def test_features_cannot_be_disabled_on_non_empty_projects() -> None:
    state = _created()
    off = agg.UpdateProject(
        mode="patch", config={"features.profiles": "false"}, fields=("config",), empty=False
    )
    with pytest.raises(BadRequest, match=r'"features\.profiles" cannot be disabled on non-empty'):
        agg.decide(state, off)
    on = agg.UpdateProject(
        mode="patch", config={"features.networks": "true"}, fields=("config",), empty=False
    )
    assert _apply(state, on).config["features.networks"] == "true"
    empty_off = agg.UpdateProject(
        mode="patch", config={"features.profiles": "false"}, fields=("config",)
    )
    assert _apply(state, empty_off).config["features.profiles"] == "false"


def test_default_project_keeps_its_features_and_name() -> None:
    with pytest.raises(BadRequest, match="You can't change the features of the default project"):
        agg.decide(DEFAULT, agg.UpdateProject(description="x"))
    same = agg.UpdateProject(description="x", config=dict(DEFAULT.config))
    assert _apply(DEFAULT, same).description == "x"
    with pytest.raises(Forbidden, match="The 'default' project cannot be renamed"):
        agg.decide(DEFAULT, agg.RenameProject(new_name="x"))
    with pytest.raises(Forbidden, match="The 'default' project cannot be deleted"):
        agg.decide(DEFAULT, agg.DeleteProject())


def test_rename_and_delete_need_an_empty_project() -> None:
    state = _created()
    with pytest.raises(Conflict, match="Only empty projects can be renamed"):
        agg.decide(state, agg.RenameProject(new_name="q", empty=False))
    with pytest.raises(Conflict, match='A project named "q" already exists'):
        agg.decide(state, agg.RenameProject(new_name="q", name_taken=True))
    with pytest.raises(BadRequest, match="spaces"):
        agg.decide(state, agg.RenameProject(new_name="a b"))
    with pytest.raises(Conflict, match="Only empty projects can be removed"):
        agg.decide(state, agg.DeleteProject(empty=False))
    gone = _apply(state, agg.DeleteProject())
    assert gone.deleted
    with pytest.raises(NotFound, match="Project not found"):
        agg.decide(gone, agg.DeleteProject())
