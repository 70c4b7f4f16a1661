"""The pools projection: pools by node and name, profiles whose disks use a pool, and the
instances owning container volumes (by their current names and projects)."""

from __future__ import annotations

from dataclasses import replace

from schemas import events
from schemas.envelope import Event, StoredEvent
from services.instance.catalog import project as proj
from services.instance.catalog.state import ProjectState
from services.instance.instances import aggregate as inst
from services.instance.instances.state import InstanceState
from services.storage.drivers import VolumeInfo
from services.storage.pools import aggregate as agg
from services.storage.pools.projection import PoolProjection, VolumeOwner
from services.storage.pools.state import PoolState
from services.storage.pools.volumes import find, shown, volume_dict


def profile_event(type_: str, name: str, devices: dict, project: str = "default") -> Event:
    return Event(
        type=type_,
        aggregate="profile",
        aggregate_id=f"profile-{name}-{project}",
        project=project,
        payload={"name": name, "project_id": "x", "devices": devices},
    )


def feed(projection: PoolProjection, *items: Event) -> None:
    for item in items:
        seq = projection.applied_seq + 1
        projection.apply(StoredEvent(seq=seq, event=item))
        projection.applied_seq = seq


def test_pools_are_kept_per_node_and_deleted_ones_leave_the_index():
    projection = PoolProjection()
    one = agg.decide(None, agg.CreatePool(id="a", name="p", node="n1", driver="dir"))
    two = agg.decide(None, agg.CreatePool(id="b", name="p", node="n2", driver="dir"))
    feed(projection, *one, *two)
    assert [s.id for s in projection.pools_on("n1")] == ["a"]
    state = projection.pool("n1", "p")
    assert state is not None and projection.seq_of("a") == 1
    feed(projection, *agg.decide(state, agg.DeletePool()))
    assert projection.pool("n1", "p") is None and projection.pools_on("n2")[0].id == "b"
    assert not projection.has_name("a", "p") and projection.has_name("b", "p")


def test_profiles_using_a_pool_follow_profile_events_and_survive_a_snapshot():
    projection = PoolProjection()
    disk = {"root": {"type": "disk", "path": "/", "pool": "fast"}}
    feed(
        projection,
        profile_event(events.PROFILE_CREATED, "web", disk),
        profile_event(events.PROFILE_CREATED, "db", disk, project="other"),
        profile_event(events.PROFILE_CREATED, "plain", {"eth0": {"type": "nic"}}),
    )
    assert projection.profiles_using("fast") == [
        "/1.0/profiles/db?project=other",
        "/1.0/profiles/web",
    ]
    feed(projection, profile_event(events.PROFILE_UPDATED, "web", {}))
    feed(projection, profile_event(events.PROFILE_DELETED, "db", disk, project="other"))
    assert projection.profiles_using("fast") == []
    feed(projection, profile_event(events.PROFILE_UPDATED, "web", disk))
    restored = PoolProjection()
    restored.load(projection.dump())
    assert restored.profiles_using("fast") == ["/1.0/profiles/web"]


# -- instances and projects: who owns a container volume ----------------------------------
#
# The events come from the instance service's own aggregates (a test may use them; the
# storage service may not), so these tests also pin the shape of what the projection reads.


def with_pool(projection: PoolProjection, name: str = "default", node: str = "n1") -> PoolState:
    feed(projection, *agg.decide(None, agg.CreatePool(id=name, name=name, node=node, driver="dir")))
    state = projection.pool(node, name)
    assert state is not None
    return state


def create_instance(
    projection: PoolProjection, name: str, project: ProjectState | None = None
) -> InstanceState:
    state = InstanceState(
        id=f"id-{name}",
        project_id=project.id if project else "default-project-id",
        name=name,
        node="n1",
        host_name=f"w-{name}",
        pool="default",
        image="",
    )
    created = inst.decide(
        None, inst.Create(state=state, project=project.name if project else "default")
    )
    feed(projection, *created)
    new = inst.evolve(None, created[0])
    assert new is not None
    return new


def instance_step(
    projection: PoolProjection, state: InstanceState, command: inst.Command
) -> InstanceState:
    decided = inst.decide(state, command)
    feed(projection, *decided)
    new = inst.evolve(state, decided[0])
    assert new is not None
    return new


def create_project(projection: PoolProjection, name: str) -> ProjectState:
    decided = proj.decide(None, proj.CreateProject(id=f"id-{name}", name=name))
    feed(projection, *decided)
    new = proj.evolve(None, decided[0])
    assert new is not None
    return new


def test_an_instance_volume_is_known_by_the_instance_name_across_a_rename_until_deleted():
    projection = PoolProjection()
    pool = with_pool(projection)
    assert projection.volume_owner(pool, "w-c1") is None
    c1 = create_instance(projection, "c1")
    assert projection.volume_owner(pool, "w-c1") == VolumeOwner("c1", "default")
    # Power and action events carry the whole instance too: nothing is lost.
    c1 = instance_step(projection, c1, inst.RecordPower("default", events.INSTANCE_STARTED))
    c1 = instance_step(projection, c1, inst.RecordPower("default", events.INSTANCE_STOPPED))
    c1 = instance_step(projection, c1, inst.RecordAction("default", events.INSTANCE_EXEC))
    renamed = instance_step(projection, c1, inst.Rename("default", "c2"))
    assert projection.volume_owner(pool, "w-c1") == VolumeOwner("c2", "default")
    instance_step(projection, renamed, inst.Delete("default"))
    assert projection.volume_owner(pool, "w-c1") is None
    assert projection.instances == {} and projection.by_host == {}


def test_a_volume_in_another_pool_or_of_another_node_is_a_leftover():
    projection = PoolProjection()
    create_instance(projection, "c1")
    other_pool = with_pool(projection, "fast")
    other_node = with_pool(projection, "default", node="n2")
    assert projection.volume_owner(other_pool, "w-c1") is None
    assert projection.volume_owner(other_node, "w-c1") is None
    assert projection.volume_owner(with_pool(projection), "w-c1") is not None


def test_the_project_is_named_from_its_own_events_renames_included():
    projection = PoolProjection()
    pool = with_pool(projection)
    web = create_project(projection, "web")
    create_instance(projection, "c1", web)
    assert projection.volume_owner(pool, "w-c1") == VolumeOwner("c1", "web")
    decided = proj.decide(web, proj.RenameProject(new_name="site"))
    feed(projection, *decided)
    assert projection.volume_owner(pool, "w-c1") == VolumeOwner("c1", "site")
    # Without the project's events (a project the log does not show), the instance
    # event's own project name is used.
    projection.projects.clear()
    assert projection.volume_owner(pool, "w-c1") == VolumeOwner("c1", "web")
    feed(projection, *proj.decide(replace(web, name="site"), proj.DeleteProject()))
    assert projection.projects == {}


def test_instances_and_projects_survive_a_snapshot():
    projection = PoolProjection()
    pool = with_pool(projection)
    web = create_project(projection, "web")
    c1 = create_instance(projection, "c1", web)
    instance_step(projection, c1, inst.Rename("web", "renamed"))
    create_instance(projection, "c3")
    restored = PoolProjection()
    restored.load(projection.dump())
    assert restored.volume_owner(pool, "w-c1") == VolumeOwner("renamed", "web")
    assert restored.volume_owner(pool, "w-c3") == VolumeOwner("c3", "default")
    assert restored.projects == {web.id: "web"}
    assert restored.names == projection.names  # the pools that carried each name, by node
    assert list(restored.names.holders("storage-pool", pool.node, pool.name)) == [pool.id]
    assert PoolProjection.snapshot_version == 4


def test_volumes_are_shown_under_their_instances_names_and_leftovers_under_host_names():
    projection = PoolProjection()
    pool = with_pool(projection)
    web = create_project(projection, "web")
    create_instance(projection, "c1")
    create_instance(projection, "c2", web)
    volumes = [
        VolumeInfo(type="image", name="f" * 64),
        VolumeInfo(type="container", name="w-c1", used_bytes=5),
        VolumeInfo(type="container", name="w-c2"),
        VolumeInfo(type="container", name="w-gone"),
    ]
    items = [shown(projection, pool, v, "default") for v in volumes]
    dicts = [volume_dict(item) for item in items]
    assert [(d["type"], d["name"], d["project"], d["used_by"]) for d in dicts] == [
        ("image", "f" * 64, "default", [f"/1.0/images/{'f' * 64}"]),
        ("container", "c1", "default", ["/1.0/instances/c1"]),
        ("container", "c2", "web", ["/1.0/instances/c2?project=web"]),
        ("container", "w-gone", "default", ["/1.0/instances/w-gone"]),
    ]
    assert dicts[1]["config"] == {"volatile.used_bytes": "5"}
    assert find(items, "c1", "default") is items[1]
    assert find(items, "c2", "web") is items[2]
    assert find(items, "w-c1", "default") is items[1]  # by host name (the names-only list)
    assert find(items, "w-gone", "default") is items[3]
    assert find(items, "nope", "default") is None


def test_the_same_instance_name_in_two_projects_is_found_in_the_project_asked():
    projection = PoolProjection()
    pool = with_pool(projection)
    web = create_project(projection, "web")
    create_instance(projection, "c1")
    state = InstanceState(
        id="id-other",
        project_id=web.id,
        name="c1",
        node="n1",
        host_name="w-other",
        pool="default",
        image="",
    )
    feed(projection, *inst.decide(None, inst.Create(state=state, project="web")))
    volumes = [VolumeInfo(type="container", name=n) for n in ("w-c1", "w-other")]
    items = [shown(projection, pool, v) for v in volumes]
    assert find(items, "c1", "web") is items[1]
    assert find(items, "c1", "default") is items[0]
