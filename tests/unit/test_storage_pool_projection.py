"""The pools projection: pools by node and name, and profiles whose disks use a pool."""

from __future__ import annotations

from schemas import events
from schemas.envelope import Event, StoredEvent
from services.storage.pools import aggregate as agg
from services.storage.pools.projection import PoolProjection


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
