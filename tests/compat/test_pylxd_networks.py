"""Networks through pylxd: create, get, update, state, leases and delete a managed bridge, and
an instance on it gets its reserved address by DHCP and shows it in its state."""

# ruff: noqa: F811 - the client and image fixtures come from test_pylxd_instances
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from _helpers import unique

pylxd = pytest.importorskip("pylxd")
from pylxd.exceptions import LXDAPIException, NotFound  # noqa: E402
from test_pylxd_instances import Image, client, image  # noqa: E402, F401

pytestmark = [
    pytest.mark.skipif(not Path("/bin/busybox").exists(), reason="busybox-static not installed"),
    pytest.mark.timeout(180),
]


def address_of(instance: Any, nic: str) -> str | None:
    network = instance.state().network or {}
    for address in (network.get(nic) or {}).get("addresses", []):
        if address["family"] == "inet" and address["scope"] == "global":
            return str(address["address"])
    return None


def test_a_network_and_an_instance_on_it(client: Any, image: Image) -> None:
    name = unique("n")
    network = client.networks.create(
        name, type="bridge", config={"ipv4.address": "10.215.9.1/24", "ipv4.nat": "true"}
    )
    instance = None
    try:
        assert client.networks.exists(name)
        fetched = client.networks.get(name)
        assert fetched.managed and fetched.config["ipv4.address"] == "10.215.9.1/24"
        fetched.description = "through pylxd"
        fetched.save(wait=True)
        assert client.networks.get(name).description == "through pylxd"
        assert network.state().addresses[0]["address"] == "10.215.9.1"

        config = {
            "name": unique("c"),
            "source": {"type": "image", "alias": image.alias},
            "profiles": ["default"],
            "devices": {
                "eth0": {"type": "nic", "network": name, "ipv4.address": "10.215.9.77"},
            },
        }
        instance = client.instances.create(config, wait=True)
        instance.start(wait=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and address_of(instance, "eth0") is None:
            time.sleep(0.1)
        assert address_of(instance, "eth0") == "10.215.9.77"
        # This pylxd has no leases call: its raw API client reaches the endpoint.
        leases = client.api.networks[name].leases.get().json()["metadata"]
        assert any(
            lease["address"] == "10.215.9.77" and lease["hostname"] == instance.name
            for lease in leases
        )
        with pytest.raises(LXDAPIException, match="in use"):
            network.delete()
    finally:
        if instance is not None:
            instance.stop(force=True, wait=True)
            instance.delete(wait=True)
        client.networks.get(name).delete()
    with pytest.raises(NotFound):
        client.networks.get(name)
