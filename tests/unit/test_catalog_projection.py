"""The catalog projection: indexes follow renames and deletes; a snapshot restores it all."""

from __future__ import annotations

from schemas import codec
from schemas.envelope import Event, StoredEvent
from services.instance.catalog import profile, project
from services.instance.catalog.meta import default_project_id
from services.instance.catalog.projection import CatalogProjection
from services.instance.instances import aggregate as instance
from services.instance.instances.state import InstanceState


class Log:
    """Feeds decided events into a projection with increasing stream sequences."""

    def __init__(self) -> None:
        self.view = CatalogProjection()
        self.seq = 0

    def feed(self, events: list[Event]) -> None:
        for event in events:
            self.seq += 1
            self.view.apply(StoredEvent(seq=self.seq, event=event))


def _catalog() -> Log:
    log = Log()
    pid = default_project_id()
    log.feed(project.decide(None, project.CreateProject(id=pid, name="default", system=True)))
    log.feed(project.decide(None, project.CreateProject(id="j", name="blue")))
    for agg_id, name, home in (("a", "web", pid), ("b", "db", pid), ("c", "web", "j")):
        create = profile.CreateProfile(id=agg_id, project_id=home, project="x", name=name)
        log.feed(profile.decide(None, create))
    return log


def test_names_are_scoped_per_project_and_follow_renames_and_deletes() -> None:
    log = _catalog()
    view = log.view
    pid = default_project_id()
    assert [p.name for p in view.profiles_in(pid)] == ["db", "web"]
    assert view.profile("j", "web").id == "c"  # type: ignore[union-attr]
    web = view.profile(pid, "web")
    assert web is not None and view.seq_of("a") == 3
    log.feed(profile.decide(web, profile.RenameProfile(project="default", new_name="api")))
    assert view.profile(pid, "web") is None and view.profile(pid, "api").id == "a"  # type: ignore[union-attr]
    assert view.seq_of("a") == log.seq
    # History finds the object that last carried a name, even after it moved on.
    assert view.former_holder("profile", pid, "web") == "a"
    db = view.profile(pid, "db")
    log.feed(profile.decide(db, profile.DeleteProfile(project="default")))
    assert view.profile(pid, "db") is None and view.profiles["b"].deleted
    assert view.former_holder("profile", pid, "db") == "b"


def test_project_views_and_emptiness() -> None:
    view = _catalog().view
    blue = view.project("blue")
    assert blue is not None and not view.project_is_empty(blue)
    assert view.project_view(blue)["used_by"] == ["/1.0/profiles/web?project=blue"]
    default = view.default_project()
    assert default is not None
    assert view.project_view(default)["used_by"] == ["/1.0/profiles/db", "/1.0/profiles/web"]
    assert view.profile_home(blue) is blue


def test_snapshot_round_trip_restores_everything() -> None:
    view = _catalog().view
    restored = CatalogProjection()
    restored.load(codec.unpack(codec.pack(view.dump())))
    assert restored.projects == view.projects and restored.profiles == view.profiles
    assert restored.project_by_name == view.project_by_name
    assert restored.profile_by_name == view.profile_by_name
    assert restored.seqs == view.seqs and restored.names == view.names


def _instance(log: Log, profiles: list[str], project_id: str = "") -> InstanceState:
    state = InstanceState(
        id="i1",
        project_id=project_id or default_project_id(),
        name="c1",
        node="n1",
        host_name="w-i1",
        pool="default",
        image="",
        profiles=profiles,
    )
    log.feed(instance.decide(None, instance.Create(state, "default")))
    return log.view.instances.by_id["i1"]


def test_a_profile_rename_reaches_the_instances_using_it() -> None:
    log = _catalog()
    view = log.view
    _instance(log, ["default", "web"])
    web = view.profile(default_project_id(), "web")
    log.feed(profile.decide(web, profile.RenameProfile(project="default", new_name="api")))
    assert view.instances.by_id["i1"].profiles == ["default", "api"]
    api = view.profile(default_project_id(), "api")
    assert api is not None and view.profile_used_by(api) == ["/1.0/instances/c1"]


def test_an_instance_event_decided_before_a_rename_follows_it() -> None:
    log = _catalog()
    view = log.view
    before = _instance(log, ["web"])
    web = view.profile(default_project_id(), "web")
    log.feed(profile.decide(web, profile.RenameProfile(project="default", new_name="api")))
    # Decided on the state from before the rename, appended after it.
    update = instance.Update(
        project="default", mode="patch", fields=("description",), description="x"
    )
    log.feed(instance.decide(before, update))
    assert view.instances.by_id["i1"].profiles == ["api"]
    assert view.instances.by_id["i1"].description == "x"


def test_the_name_history_keeps_every_holder_of_a_name_and_survives_a_snapshot() -> None:
    log = _catalog()
    view = log.view
    pid = default_project_id()
    first = _instance(log, ["default"])
    log.feed(instance.decide(first, instance.Delete(project="default")))
    assert "i1" not in view.instances.by_id  # the index drops deleted instances
    again = InstanceState(
        id="i2", project_id=pid, name="c1", node="n1", host_name="w-i2", pool="default", image=""
    )
    log.feed(instance.decide(None, instance.Create(again, "default")))
    log.feed(instance.decide(view.instances.by_id["i2"], instance.Rename("default", "c2")))
    assert list(view.names.holders("instance", pid, "c1")) == ["i1", "i2"]
    gone, moved = view.names.carrier("i1"), view.names.carrier("i2")
    assert gone is not None and (gone.name, gone.deleted, gone.scope) == ("c1", True, pid)
    assert moved is not None and (moved.name, moved.deleted) == ("c2", False)

    # A profile name reused after a delete: both holders, in the order they had it.
    web = view.profile(pid, "web")
    log.feed(profile.decide(web, profile.DeleteProfile(project="default")))
    create = profile.CreateProfile(id="d", project_id=pid, project="default", name="web")
    log.feed(profile.decide(None, create))
    assert list(view.names.holders("profile", pid, "web")) == ["a", "d"]
    assert view.former_holder("profile", pid, "web") == "d"
    assert view.names.names("profile", "j") == ["web"]

    restored = CatalogProjection()
    restored.load(codec.unpack(codec.pack(view.dump())))
    assert restored.names == view.names
    assert list(restored.names.holders("instance", pid, "c1")) == ["i1", "i2"]
