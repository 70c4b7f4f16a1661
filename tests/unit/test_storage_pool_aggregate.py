"""The storage-pool aggregate: decide refuses what LXD refuses, evolve folds every event."""

from __future__ import annotations

import pytest

from schemas import events
from schemas.errors import BadRequest, Conflict, NotFound, PreconditionFailed
from services.storage.pools import aggregate as agg
from services.storage.pools.state import POOL, PoolState, default_pool_id, pool_dict

SOURCE = "/var/lib/warren/storage-pools/p1"


def created(config: dict[str, str] | None = None, driver: str = "dir") -> PoolState:
    command = agg.CreatePool(
        id="id-1",
        name="p1",
        node="n1",
        driver=driver,
        description="first",
        config=config if config is not None else {"source": SOURCE},
    )
    (event,) = agg.decide(None, command)
    state = agg.evolve(None, event)
    assert state is not None
    return state


def test_create_event_carries_the_whole_pool():
    state = created({"source": SOURCE, "user.a": "b"})
    assert state == PoolState(
        "id-1", "p1", "n1", "dir", "first", {"source": SOURCE, "user.a": "b"}, version=1
    )
    (event,) = agg.decide(None, agg.CreatePool(id="x", name="p", node="n", driver="btrfs"))
    assert event.type == events.STORAGE_POOL_CREATED
    assert event.aggregate == POOL and event.aggregate_id == "x" and event.version == 1
    assert event.payload["name"] == "p" and event.payload["driver"] == "btrfs"


@pytest.mark.parametrize(
    ("name", "driver", "config", "message"),
    [
        ("", "dir", {}, "No name provided"),
        ("a/b", "dir", {}, "Storage pool names may not contain slashes"),
        ("..", "dir", {}, "Invalid storage pool name"),
        ("p", "", {}, "No driver provided"),
        ("p", "zfs", {}, "Unknown driver"),
        ("p", "dir", {"size": "1GiB"}, 'Invalid option "size"'),
        ("p", "btrfs", {"bogus": "1"}, 'Invalid option "bogus"'),
    ],
)
def test_create_refuses_bad_input(name, driver, config, message):
    command = agg.CreatePool(id="x", name=name, node="n", driver=driver, config=config)
    with pytest.raises(BadRequest, match=message):
        agg.decide(None, command)


def test_create_refuses_a_taken_name():
    with pytest.raises(Conflict, match="Storage pool already exists"):
        agg.decide(None, agg.CreatePool(id="x", name="p", node="n", driver="dir", name_taken=True))
    with pytest.raises(Conflict):
        agg.decide(created(), agg.CreatePool(id="id-1", name="p1", node="n1", driver="dir"))


def test_put_replaces_description_and_user_keys_but_keeps_the_source():
    state = created({"source": SOURCE, "user.old": "1"})
    (event,) = agg.decide(state, agg.UpdatePool(description="new", config={"user.new": "2"}))
    assert event.type == events.STORAGE_POOL_UPDATED and event.version == 2
    new = agg.evolve(state, event)
    assert new is not None
    assert new.description == "new"
    assert new.config == {"source": SOURCE, "user.new": "2"}


def test_patch_merges_and_an_empty_value_unsets():
    state = created({"source": SOURCE, "user.a": "1", "user.b": "2"})
    command = agg.UpdatePool(mode="patch", config={"user.a": "", "user.c": "3"}, fields=("config",))
    new = agg.evolve(state, agg.decide(state, command)[0])
    assert new is not None
    assert new.config == {"source": SOURCE, "user.b": "2", "user.c": "3"}
    assert new.description == "first"


def test_update_refuses_changing_fixed_keys_and_stale_etags():
    state = created()
    with pytest.raises(BadRequest, match='"source" cannot be changed'):
        agg.decide(state, agg.UpdatePool(config={"source": "/elsewhere"}))
    with pytest.raises(BadRequest, match='Invalid option "bogus"'):
        agg.decide(state, agg.UpdatePool(config={"bogus": "1"}))
    with pytest.raises(PreconditionFailed, match="ETag doesn't match"):
        agg.decide(state, agg.UpdatePool(description="x", if_match="0" * 64))
    # The right ETag (quoted as clients copy it) passes; an unchanged pool gives no event.
    same = agg.UpdatePool(description="first", if_match=f'"{state.etag}"')
    assert agg.decide(state, same) == []


def test_delete_refused_while_in_use_and_unknown_pools_are_404():
    state = created()
    with pytest.raises(BadRequest, match="The storage pool is currently in use"):
        agg.decide(state, agg.DeletePool(used_by=("/1.0/profiles/default",)))
    (event,) = agg.decide(state, agg.DeletePool())
    gone = agg.evolve(state, event)
    assert gone is not None and gone.deleted and gone.version == 2
    with pytest.raises(NotFound, match="Storage pool not found"):
        agg.decide(gone, agg.UpdatePool())
    with pytest.raises(NotFound):
        agg.decide(None, agg.DeletePool())


def test_default_pool_id_is_per_node_and_stable():
    assert default_pool_id("n1") == default_pool_id("n1") != default_pool_id("n2")


def test_lxd_view():
    view = pool_dict(created(), "Created", ["/1.0/profiles/default"])
    assert view == {
        "name": "p1",
        "description": "first",
        "driver": "dir",
        "status": "Created",
        "config": {"source": SOURCE},
        "locations": ["none"],
        "used_by": ["/1.0/profiles/default"],
    }
