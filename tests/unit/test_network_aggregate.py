"""The network and network-forward aggregates: pure decide/evolve, LXD's refusals."""

from __future__ import annotations

from ipaddress import IPv4Network

import pytest

from schemas import events
from schemas.errors import BadRequest, Conflict, NotFound, PreconditionFailed
from services.network.networks import aggregate as agg
from services.network.networks import config as cfg
from services.network.networks.forward_state import (
    ForwardState,
    decide_forward,
    evolve_forward,
    rules,
)
from services.network.networks.state import NetworkState, Nic

META = {"requestor": "t", "correlation_id": None, "causation_id": None, "node": "n1"}


def made(config: dict[str, str] | None = None, **kwargs: object) -> NetworkState:
    command = agg.Create(
        id="net-1", name="br1", node="n1", config=config or {"ipv4.address": "10.5.6.1/24"},
        **kwargs,  # type: ignore[arg-type]
    )  # fmt: skip
    (event,) = agg.decide(None, command)
    assert event.type == events.NETWORK_CREATED
    state = agg.evolve(None, event)
    assert state is not None
    return state


def fold(state: NetworkState, command: agg.Command) -> NetworkState | None:
    for event in agg.decide(state, command):
        state = agg.evolve(state, event)  # type: ignore[assignment]
    return state


def test_create_checks_name_keys_values_and_overlap() -> None:
    state = made()
    assert state.config == {"ipv4.address": "10.5.6.1/24"} and state.version == 1
    for config, words in (
        ({"bogus": "1"}, "bogus"),
        ({"ipv4.nat": "maybe"}, "ipv4.nat"),
        ({"dns.domain": "Bad_Domain"}, "dns.domain"),
        ({"bridge.mtu": "70000"}, "bridge.mtu"),
        ({"ipv4.address": "10.5.6.1/24", "ipv4.dhcp.ranges": "10.9.0.2-10.9.0.9"}, "ranges"),
    ):
        with pytest.raises(BadRequest, match=words):
            agg.decide(None, agg.Create(id="x", name="br2", node="n1", config=config))
    with pytest.raises(BadRequest, match="Invalid network name"):
        agg.decide(None, agg.Create(id="x", name="a-name-longer-than-15", node="n1"))
    with pytest.raises(BadRequest, match="overlaps"):
        agg.decide(
            None,
            agg.Create(
                id="x", name="br2", node="n1", config={"ipv4.address": "10.5.6.9/24"},
                taken=(IPv4Network("10.5.0.0/16"),),
            ),
        )  # fmt: skip
    with pytest.raises(Conflict):
        agg.decide(None, agg.Create(id="x", name="br1", node="n1", name_taken=True))


def test_auto_picks_a_free_subnet_with_nat() -> None:
    taken = [IPv4Network("10.0.0.0/9")]
    config = cfg.completed({}, taken)
    address = cfg.ipv4_of(config)
    assert address is not None and not address.network.overlaps(taken[0])
    assert config["ipv4.nat"] == "true"
    assert cfg.completed({"ipv4.address": "none"}, taken) == {"ipv4.address": "none"}


def test_update_put_patch_etag_and_unset() -> None:
    state = made({"ipv4.address": "10.5.6.1/24", "user.a": "1"})
    patched = fold(state, agg.Update(mode="patch", config={"dns.domain": "x"}, fields=("config",)))
    assert patched is not None and patched.config["dns.domain"] == "x"
    assert patched.config["user.a"] == "1"
    put = fold(patched, agg.Update(mode="put", config={"ipv4.address": "10.5.6.1/24"}))
    assert put is not None and put.config == {"ipv4.address": "10.5.6.1/24"}
    with pytest.raises(PreconditionFailed):
        agg.decide(put, agg.Update(if_match='"nope"'))
    assert agg.decide(put, agg.Update(mode="put", config=dict(put.config))) == []


def test_plug_records_nics_and_refuses_bad_addresses() -> None:
    state = made()
    nic = Nic("c1", "default", "eth0", "10.5.6.20")
    plugged = fold(state, agg.Plug("00:16:3e:00:00:01", nic))
    assert plugged is not None and plugged.nics["00:16:3e:00:00:01"] == nic
    assert agg.decide(plugged, agg.Plug("00:16:3e:00:00:01", nic)) == []  # nothing new
    for address in ("10.9.9.9", "10.5.6.1", "not-an-ip"):
        with pytest.raises(BadRequest):
            agg.decide(
                plugged, agg.Plug("00:16:3e:00:00:02", Nic("c2", "default", "eth0", address))
            )
    with pytest.raises(BadRequest, match="already used"):
        agg.decide(
            plugged, agg.Plug("00:16:3e:00:00:02", Nic("c2", "default", "eth0", "10.5.6.20"))
        )
    # A subnet change that would strand a fixed address is refused.
    with pytest.raises(BadRequest, match="outside the new subnet"):
        agg.decide(plugged, agg.Update(mode="put", config={"ipv4.address": "10.7.0.1/24"}))
    unplugged = fold(plugged, agg.Unplug("00:16:3e:00:00:01"))
    assert unplugged is not None and unplugged.nics == {}
    assert agg.decide(unplugged, agg.Unplug("00:16:3e:00:00:01")) == []


def test_delete_and_rename_refused_while_in_use() -> None:
    state = made()
    with pytest.raises(BadRequest, match="in use"):
        agg.decide(state, agg.Delete(used_by=("/1.0/instances/c1",)))
    with pytest.raises(BadRequest, match="in use"):
        agg.decide(state, agg.Rename("br9", used_by=("/1.0/profiles/default",)))
    renamed = fold(state, agg.Rename("br9"))
    assert renamed is not None and renamed.name == "br9"
    deleted = fold(renamed, agg.Delete())
    assert deleted is not None and deleted.deleted
    with pytest.raises(NotFound):
        agg.decide(deleted, agg.Update())


def test_forwards_expand_ports_and_refuse_duplicates() -> None:
    forward = ForwardState(
        id="f1", network_id="net-1", network="br1", listen_address="192.0.2.2",
        ports=(
            {"protocol": "tcp", "listen_port": "80,8000-8001", "target_address": "10.5.6.20",
             "target_port": "8080"},
        ),
    )  # fmt: skip
    assert [(r.listen_port, r.target_port) for r in rules(forward)] == [
        (80, 8080),
        (8000, 8080),
        (8001, 8080),
    ]
    (created,) = decide_forward(None, forward, META, create=True)
    state = evolve_forward(None, created)
    assert state is not None and state.listen_address == "192.0.2.2"
    with pytest.raises(Conflict):
        decide_forward(state, forward, META, create=True)
    duplicate = ForwardState(
        id="f1", network_id="net-1", network="br1", listen_address="192.0.2.2",
        ports=(
            {"protocol": "tcp", "listen_port": "80", "target_address": "10.5.6.20"},
            {"protocol": "tcp", "listen_port": "80", "target_address": "10.5.6.21"},
        ),
    )  # fmt: skip
    with pytest.raises(BadRequest, match="Duplicate"):
        decide_forward(state, duplicate, META, create=False)
    for listen in ("0.0.0.0", "127.0.0.1", "fe80::1"):
        with pytest.raises(BadRequest):
            decide_forward(None, ForwardState("f", "n", "br1", listen), META, create=True)
    (deleted,) = decide_forward(state, None, META, create=False)
    assert deleted.type == events.NETWORK_FORWARD_DELETED
