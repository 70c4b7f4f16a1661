"""Contract suite for instance drivers, nics: a busybox container on a bridge this test makes,
its interface as the container sees it, the state's network figures, and hot-plug.

The bridge gets a unique name and is removed in a finalizer, as are the containers.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from busybox_rootfs import build_busybox_rootfs
from pyroute2 import IPRoute

from services.instance.drivers import DRIVERS, InstanceDriver
from services.instance.drivers.spec import (
    ExecRequest,
    IdMap,
    InstanceSpec,
    NicSpec,
    Status,
    host_name_for,
)

HANG_GUARD = 60.0
SHIFT = 1_000_000

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="instance drivers need root"),
    pytest.mark.skipif(not Path("/bin/busybox").exists(), reason="busybox-static not installed"),
]


@pytest.fixture
def bridge() -> Iterator[str]:
    """A host bridge with 10.231.0.1/24, removed afterwards."""
    name = "wtbr" + uuid.uuid4().hex[:8]
    with IPRoute() as ipr:
        ipr.link("add", ifname=name, kind="bridge")
        index = ipr.link_lookup(ifname=name)[0]
        ipr.addr("add", index=index, address="10.231.0.1", prefixlen=24)
        ipr.link("set", index=index, state="up")
    try:
        yield name
    finally:
        with IPRoute() as ipr:
            for index in ipr.link_lookup(ifname=name):
                ipr.link("del", index=index)


@pytest.fixture(params=sorted(DRIVERS))
async def driver(request: pytest.FixtureRequest) -> AsyncIterator[tuple[InstanceDriver, Path]]:
    workdir = Path(tempfile.mkdtemp(prefix="warren-nics-"))
    os.chmod(workdir, 0o755)  # an unprivileged container's root walks down to its rootfs
    instance = DRIVERS[request.param](workdir / "instances")
    try:
        yield instance, workdir
    finally:
        for name in await instance.list():
            try:
                await instance.stop(name, force=True)
                await instance.delete(name)
            except Exception as exc:
                print(f"cleanup of {name} failed: {exc!r}")
        shutil.rmtree(workdir, ignore_errors=True)


async def run(driver: InstanceDriver, name: str, command: list[str]) -> tuple[int, str]:
    out_r, out_w = os.pipe()
    try:
        request = ExecRequest(command=command, stdout=out_w, stderr=out_w)
        code = await asyncio.wait_for(driver.exec(name, request), HANG_GUARD)
    finally:
        os.close(out_w)
    with os.fdopen(out_r, "rb") as out:
        return code, out.read().decode()


def host_link(name: str) -> dict[str, object] | None:
    """The host link's bridge and MTU (pyroute2's sync API runs its own loop: call in a
    thread)."""
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=name)
        if not found:
            return None
        link = ipr.get_links(found[0])[0]
        return {"master": link.get_attr("IFLA_MASTER"), "mtu": link.get_attr("IFLA_MTU")}


def bridge_index(name: str) -> int:
    with IPRoute() as ipr:
        return ipr.link_lookup(ifname=name)[0]


async def test_nic_on_a_bridge_state_and_hotplug(driver, bridge: str) -> None:
    instance, workdir = driver
    name = host_name_for(uuid.uuid4())
    rootfs = workdir / "rootfs" / name
    build_busybox_rootfs(rootfs)
    tag = uuid.uuid4().hex[:8]
    eth0 = NicSpec(
        name="eth0", bridge=bridge, hwaddr="00:16:3e:12:34:56", host_name=f"veth{tag}", mtu=1400
    )
    spec = InstanceSpec(
        name=name,
        rootfs=rootfs,
        idmap=IdMap(host_uid=SHIFT, host_gid=SHIFT),
        hostname="c1",
        nics=(eth0,),
    )
    await instance.create(spec)
    await instance.start(name)

    # Inside: the name, MAC and MTU asked for; outside: the host end on the bridge.
    code, out = await run(
        instance, name, ["cat", "/sys/class/net/eth0/address", "/sys/class/net/eth0/mtu"]
    )
    assert (code, out.split()) == (0, ["00:16:3e:12:34:56", "1400"])
    assert await asyncio.to_thread(host_link, eth0.host_name) == {
        "master": await asyncio.to_thread(bridge_index, bridge),
        "mtu": 1400,
    }

    # A static address set inside shows in the state, and the bridge is reachable through it.
    code, out = await run(instance, name, ["ip", "addr", "add", "10.231.0.2/24", "dev", "eth0"])
    assert code == 0, out
    code, out = await run(instance, name, ["ping", "-c", "1", "-W", "5", "10.231.0.1"])
    assert code == 0, out
    state = await instance.state(name)
    assert state.status is Status.RUNNING
    net = state.network
    assert net["lo"].type == "loopback" and net["lo"].state == "up"
    assert {(a.family, a.address, a.netmask, a.scope) for a in net["lo"].addresses} >= {
        ("inet", "127.0.0.1", "8", "local")
    }
    nic = net["eth0"]
    assert (nic.hwaddr, nic.mtu, nic.state, nic.type) == (
        "00:16:3e:12:34:56",
        1400,
        "up",
        "broadcast",
    )
    assert nic.host_name == eth0.host_name
    assert ("inet", "10.231.0.2", "24", "global") in {
        (a.family, a.address, a.netmask, a.scope) for a in nic.addresses
    }
    assert nic.counters.packets_sent > 0 and nic.counters.bytes_received > 0

    # Hot-plug a second nic into the running container, then remove it.
    eth1 = NicSpec(name="eth1", bridge=bridge, hwaddr="00:16:3e:65:43:21", host_name=f"vetx{tag}")
    both = spec.model_copy(update={"nics": (eth0, eth1)})
    await instance.set_nics(name, both.nics)
    await instance.update(both)
    code, out = await run(instance, name, ["cat", "/sys/class/net/eth1/address"])
    assert (code, out.strip()) == (0, "00:16:3e:65:43:21")
    assert (await instance.state(name)).network["eth1"].host_name == eth1.host_name
    assert await asyncio.to_thread(host_link, eth1.host_name) is not None
    await instance.set_nics(name, spec.nics)
    await instance.update(spec)
    code, _ = await run(instance, name, ["test", "-e", "/sys/class/net/eth1"])
    assert code == 1
    assert await asyncio.to_thread(host_link, eth1.host_name) is None
    assert "eth1" not in (await instance.state(name)).network

    # A nic on a missing bridge is refused and leaves nothing behind.
    bad = NicSpec(
        name="eth2", bridge="wtnobridge", hwaddr="00:16:3e:00:00:09", host_name=f"vetz{tag}"
    )
    with pytest.raises(Exception, match="bridge"):
        await instance.set_nics(name, (eth0, bad))
    assert await asyncio.to_thread(host_link, bad.host_name) is None

    await instance.stop(name, force=True)
    assert (
        await asyncio.to_thread(host_link, eth0.host_name) is None
    )  # LXC removes the pair with the container
    assert (await instance.state(name)).network == {}
