"""The instance aggregate and its checks: pure decisions, LXD's refusals."""

from __future__ import annotations

import pytest

from schemas import events
from schemas.errors import BadRequest, Conflict, NotFound, PreconditionFailed
from services.instance.instances import aggregate as agg
from services.instance.instances import config as cfg
from services.instance.instances.index import InstanceIndex
from services.instance.instances.state import InstanceState, expand, root_disk


def new_state(**changes: object) -> InstanceState:
    fields: dict[str, object] = {
        "id": "0b1c6f1e-1d7a-4f5e-9a7e-111111111111",
        "project_id": "p1",
        "name": "c1",
        "node": "n1",
        "host_name": "w-0b1c6f1e1d7a4f5e9a7e111111111111",
        "pool": "default",
        "image": "ab" * 32,
        "config": {"limits.cpu": "1", "volatile.base_image": "ab" * 32},
    }
    fields.update(changes)
    return InstanceState(**fields)  # type: ignore[arg-type]


def created() -> InstanceState:
    event = agg.decide(None, agg.Create(new_state(), "default"))[0]
    return agg.from_event(event)


def test_create_records_the_whole_state() -> None:
    (event,) = agg.decide(None, agg.Create(new_state(), "default"))
    assert event.type == events.INSTANCE_CREATED and event.version == 1
    state = agg.from_event(event)
    assert state == new_state(version=1)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "name is required"),
        ("1abc", "must not start with a digit"),
        ("a_b", "alphanumeric and hyphen"),
        ("abc-", "must not end with a hyphen"),
        ("a" * 64, "1-63 characters"),
    ],
)
def test_bad_names_are_refused(name: str, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        agg.decide(None, agg.Create(new_state(name=name), "default"))


def test_unknown_config_key_is_refused_but_instance_keys_are_kept() -> None:
    with pytest.raises(BadRequest, match=r"Unknown configuration key: limits\.bogus"):
        agg.decide(None, agg.Create(new_state(config={"limits.bogus": "1"}), "default"))
    state = new_state(config={"image.os": "busybox", "user.x": "y", "volatile.z": "1"})
    assert agg.decide(None, agg.Create(state, "default"))


def test_taken_name_is_a_conflict() -> None:
    with pytest.raises(Conflict, match='Instance "c1" already exists'):
        agg.decide(None, agg.Create(new_state(), "default", name_taken=True))


def test_put_replaces_patch_merges_and_volatile_keys_survive() -> None:
    state = created()
    put = agg.Update("default", "put", config={"user.a": "1"}, profiles=("default",))
    after_put = agg.from_event(agg.decide(state, put)[0])
    assert after_put.config == {"user.a": "1", "volatile.base_image": "ab" * 32}
    patch = agg.Update("default", "patch", fields=("config",), config={"limits.cpu": ""})
    after_patch = agg.from_event(agg.decide(after_put, patch)[0])
    assert "limits.cpu" not in after_patch.config and after_patch.config["user.a"] == "1"


def test_stale_etag_is_refused() -> None:
    state = created()
    with pytest.raises(PreconditionFailed):
        agg.decide(state, agg.Update("default", if_match="not-the-etag"))
    agg.decide(state, agg.Update("default", if_match=state.etag, profiles=("default",)))


def test_rename_and_delete_refused_while_running() -> None:
    state = created()
    with pytest.raises(BadRequest, match="running"):
        agg.decide(state, agg.Rename("default", "c2", running=True))
    with pytest.raises(BadRequest, match="Instance is running"):
        agg.decide(state, agg.Delete("default", running=True))
    (renamed,) = agg.decide(state, agg.Rename("default", "c2"))
    assert renamed.payload["old_name"] == "c1" and agg.from_event(renamed).name == "c2"


def test_power_events_record_the_power_state() -> None:
    state = created()
    (started,) = agg.decide(state, agg.RecordPower("default", events.INSTANCE_STARTED, "t1"))
    after = agg.evolve(state, started)
    assert after is not None and after.power == "running" and after.last_used_at == "t1"
    (paused,) = agg.decide(after, agg.RecordPower("default", events.INSTANCE_PAUSED))
    assert agg.evolve(after, paused).power == "frozen"  # type: ignore[union-attr]


def test_index_follows_renames_and_deletes() -> None:
    index = InstanceIndex()
    (event,) = agg.decide(None, agg.Create(new_state(), "default"))
    index.apply(event)
    state = index.get("p1", "c1")
    assert state is not None
    (renamed,) = agg.decide(state, agg.Rename("default", "c2"))
    index.apply(renamed)
    assert index.get("p1", "c1") is None and index.get("p1", "c2") is not None
    (deleted,) = agg.decide(index.get("p1", "c2"), agg.Delete("default"))
    index.apply(deleted)
    assert index.get("p1", "c2") is None and index.all() == []
    with pytest.raises(NotFound):
        agg.decide(None, agg.Delete("default"))


def test_expansion_applies_profiles_in_order_then_the_instance() -> None:
    profiles = [
        ({"limits.cpu": "1", "user.a": "p1"}, {"root": {"type": "disk", "path": "/", "pool": "a"}}),
        ({"user.a": "p2"}, {}),
    ]
    expanded = expand({"user.b": "i"}, {"eth0": {"type": "nic", "nictype": "p2p"}}, profiles)
    assert expanded.config == {"limits.cpu": "1", "user.a": "p2", "user.b": "i"}
    assert root_disk(expanded.devices) == ("root", {"type": "disk", "path": "/", "pool": "a"})


def test_limits_from_config() -> None:
    limits = cfg.limits_of({"limits.memory": "64MB", "limits.cpu": "2", "limits.processes": "100"})
    assert limits.memory == 64_000_000 and limits.cpu == 2 and limits.processes == 100
    assert cfg.limits_of({"limits.memory": "1GiB"}).memory == 2**30
    assert cfg.limits_of({"limits.cpu": "0-1"}).cpu == "0-1"
    assert cfg.limits_of({"limits.memory": "50%"}).memory == cfg.host_memory() // 2


def test_containers_get_the_root_disk_and_bridged_nics_only() -> None:
    root = {"root": {"type": "disk", "path": "/", "pool": "fast"}}
    assert cfg.check_expanded(expand({}, {}, [({}, root)])) == "fast"
    masked = expand({}, {"eth0": {"type": "none"}}, [({}, root)])
    assert cfg.check_expanded(masked) == "fast"
    with pytest.raises(BadRequest, match="No root device"):
        cfg.check_expanded(expand({}, {}, []))
    nic = {"eth0": {"type": "nic", "nictype": "bridged", "parent": "br0"}}
    assert cfg.check_expanded(expand({}, nic, [({}, root)])) == "fast"
    proxy = {"web": {"type": "proxy", "listen": "tcp:0.0.0.0:80", "connect": "tcp:1.2.3.4:80"}}
    with pytest.raises(BadRequest, match=r'Device "web" \(type proxy\) is not supported'):
        cfg.check_expanded(expand({}, proxy, [({}, root)]))
    with pytest.raises(BadRequest, match=r"limits\.memory"):
        cfg.check_expanded(expand({"limits.memory": "lots"}, {}, [({}, root)]))
