"""The project aggregate: LXD's feature defaults and rules on features, renames, deletes."""

from __future__ import annotations

import dataclasses
from functools import reduce

import pytest

from schemas import events
from schemas.errors import BadRequest, Conflict, Forbidden, NotFound, PreconditionFailed
from services.instance.catalog import limits
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


def test_features_enabled_on_non_empty_projects_only_from_unset() -> None:
    # LXD: a feature that says "false" cannot be turned on in a non-empty project; an unset
    # one can.
    unset = ProjectState("j1", "p", config={})
    on = agg.UpdateProject(
        mode="patch", config={"features.images": "true"}, fields=("config",), empty=False
    )
    assert _apply(unset, on).config["features.images"] == "true"
    off = _created(**{"features.images": "false"})
    with pytest.raises(BadRequest, match=r'"features\.images" cannot be enabled on non-empty'):
        agg.decide(off, on)
    assert _apply(off, dataclasses.replace(on, empty=True)).config["features.images"] == "true"


def test_networks_feature_is_refused_outside_default_and_folds_off() -> None:
    message = 'Project feature "features.networks" is not supported by Warren yet'
    with pytest.raises(BadRequest, match=message):
        _created(**{"features.networks": "true"})
    on = agg.UpdateProject(mode="patch", config={"features.networks": "on"}, fields=("config",))
    with pytest.raises(BadRequest, match=message):
        agg.decide(_created(), on)
    assert _created(**{"features.networks": "false"}).config["features.networks"] == "false"
    # A log written before Warren refused it: the project runs (and shows) without it.
    (event,) = agg.decide(None, agg.CreateProject(id="j1", name="p"))
    event.payload["config"]["features.networks"] = "true"
    assert agg.from_event(event).config["features.networks"] == "false"
    # The default project holds the networks: its feature stays on.
    assert (
        _apply(DEFAULT, agg.UpdateProject(config=dict(DEFAULT.config))).config["features.networks"]
        == "true"
    )


def test_unenforced_limits_and_restrictions_are_refused_unless_default() -> None:
    for key, value in (
        ("limits.cpu", "2"),
        ("limits.memory", "1GB"),
        ("limits.processes", "100"),
        ("limits.disk", "10GB"),
        ("restricted", "true"),
        ("restricted.devices.nic", "allow"),
        ("restricted.networks.access", "br0"),
    ):
        with pytest.raises(BadRequest, match=f'"{key}" is not supported by Warren yet'):
            _created(**{key: value})
    kept = _created(
        **{
            "restricted": "false",
            "restricted.devices.nic": "managed",
            "restricted.containers.privilege": "unpriviliged",
            "limits.networks": "3",
            "limits.virtual-machines": "0",
            "limits.cpu": "",
        }
    )
    assert kept.config["restricted"] == "false" and "limits.cpu" not in kept.config
    # A value the log already holds is not refused again (only changes are).
    legacy = ProjectState("j1", "p", config={"limits.cpu": "2"})
    described = _apply(legacy, agg.UpdateProject(description="x", config={"limits.cpu": "2"}))
    assert described.config == {"limits.cpu": "2"}


def test_count_limits_cannot_go_below_what_the_project_holds() -> None:
    state = _created("lim")
    two = limits.Usage(containers=2)
    low = agg.UpdateProject(
        mode="patch", config={"limits.instances": "1"}, fields=("config",), usage=two
    )
    with pytest.raises(Conflict) as err:
        agg.decide(state, low)
    assert err.value.message == (
        'Can\'t change limits.instances in project "lim": "limits.instances" is too low: '
        'there currently are 2 total instances in project "lim"'
    )
    assert (
        _apply(state, dataclasses.replace(low, config={"limits.instances": "2"})).config[
            "limits.instances"
        ]
        == "2"
    )
