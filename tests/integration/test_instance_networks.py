"""Instances on networks through the whole stack (real nats-server, services, gateway, LXC):
nic devices on a managed network, plugged into a scripted network service on the real bus
(the network service's wire contract, schemas/networks.py) that owns a real bridge.

Checked: the MAC in ``volatile.<dev>.hwaddr``, nic-plug before start and nic-unplug on
removal and delete, the state's interfaces and ``lxc list``'s IPV4, hot-plug with ``lxc
config device add/remove``, a missing network refused, a silent network service named in the
error, and the default profile's eth0 once a default network is recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyroute2 import IPRoute
from stack import Stack, http_unix, wait_for

from schemas import codec, events, subjects
from schemas.client import Bus
from schemas.errors import NotFound, WarrenError
from schemas.messages import Reply, Request
from schemas.networks import NicPlug, NicPlugged, NicUnplug
from services.common.eventstore import EventStore
from services.common.supervisor_table import SERVICES
from services.image.builders.busybox import build_busybox
from services.instance.catalog.meta import SYSTEM, new_event

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(not Path("/bin/busybox").exists(), reason="busybox-static not installed"),
    pytest.mark.skipif(os.geteuid() != 0, reason="containers need root"),
]

MTU = 1450


class ScriptedNetworks:
    """This node's network service, scripted: one network on a real bridge, in a thread."""

    def __init__(self, nats_url: str, node: str, network: str) -> None:
        self.nats_url, self.node, self.network = nats_url, node, network
        self.bridge = "wtn" + uuid.uuid4().hex[:8]
        self.plugs: list[NicPlug] = []
        self.unplugs: list[NicUnplug] = []
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._subs: list[Any] = []
        self.bus: Bus | None = None
        self.real = False

    def start(self) -> ScriptedNetworks:
        with IPRoute() as ipr:
            ipr.link("add", ifname=self.bridge, kind="bridge")
            index = ipr.link_lookup(ifname=self.bridge)[0]
            ipr.addr("add", index=index, address="10.232.0.1", prefixlen=24)
            ipr.link("set", index=index, state="up")
        self.leases = Path(tempfile.mkdtemp(prefix="warren-leases-")) / "leases"
        # A real DHCP server on the bridge: the image's udhcpc gets its address from it.
        self.dnsmasq = subprocess.Popen(
            [
                "dnsmasq",
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                f"--interface={self.bridge}",
                "--bind-interfaces",
                "--except-interface=lo",
                "--port=0",
                "--no-ping",
                "--dhcp-range=10.232.0.100,10.232.0.200,1h",
                f"--dhcp-leasefile={self.leases}",
                f"--pid-file={self.leases.parent / 'pid'}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._thread.start()
        self.call(self._subscribe())
        return self

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    async def _subscribe(self) -> None:
        self.bus = await Bus.open(self.nats_url, "scripted-networks")
        try:
            subject = subjects.network(subjects.NETWORK_LIST, self.node)
            await self.bus.request(subject, {}, timeout=0.5)
            self.real = True  # the real network service runs: this script would race it
            return
        except WarrenError:
            pass
        for verb in (subjects.NETWORK_GET, subjects.NETWORK_NIC_PLUG, subjects.NETWORK_NIC_UNPLUG):
            subject = subjects.network(verb, self.node)
            self._subs.append(await self.bus.nc.subscribe(subject, cb=self._answer))
        await self.bus.nc.flush()

    async def _answer(self, msg: Any) -> None:
        body = codec.decode(Request, msg.data).body
        verb = msg.subject.rsplit(".", 1)[1]
        try:
            reply = Reply(result=self._handle(verb, body))
        except WarrenError as exc:
            reply = Reply.failure(exc)
        await msg.respond(codec.encode(reply))

    def _handle(self, verb: str, body: dict[str, Any]) -> Any:
        if verb == subjects.NETWORK_GET:
            if body["name"] != self.network:
                raise NotFound("Network not found")
            network = {"name": self.network, "type": "bridge", "managed": True, "config": {}}
            return {"object": network, "etag": ""}
        if verb == subjects.NETWORK_NIC_PLUG:
            plug = NicPlug.model_validate(body)
            self.plugs.append(plug)
            return NicPlugged(bridge=self.bridge, mtu=MTU).model_dump()
        self.unplugs.append(NicUnplug.model_validate(body))
        return None

    def silence(self) -> None:
        """Stop answering (as a network service that is not running)."""

        async def unsubscribe() -> None:
            for sub in self._subs:
                await sub.unsubscribe()
            self._subs.clear()

        self.call(unsubscribe())

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.silence()
        if self.bus is not None:
            self.call(self.bus.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.dnsmasq.terminate()
        self.dnsmasq.wait(10)
        shutil.rmtree(self.leases.parent, ignore_errors=True)
        with IPRoute() as ipr:
            for index in ipr.link_lookup(ifname=self.bridge):
                ipr.link("del", index=index)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def call(stack: Stack, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    status, _, answer = http_unix(stack.socket, method, path, body, timeout=60)
    return status, answer


def ok_op(stack: Stack, method: str, path: str, body: Any = None) -> dict[str, Any]:
    status, answer = call(stack, method, path, body)
    assert status == 202, (status, answer)
    op = answer["metadata"]["id"]
    status, final = call(stack, "GET", f"/1.0/operations/{op}/wait?timeout=120")
    assert final["metadata"]["status"] == "Success", final
    return final["metadata"]


def get(stack: Stack, path: str) -> Any:
    status, answer = call(stack, "GET", path)
    assert status == 200, answer
    return answer["metadata"]


def lxc_ok(stack: Stack, *args: str) -> str:
    result = stack.lxc(*args)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """A stack without the real network service: the scripted one plays it."""
    table = tmp_path_factory.mktemp("table") / "services.json"
    entries = [spec.model_dump() for spec in SERVICES if spec.name != "network"]
    table.write_text(json.dumps(entries))
    warren = Stack(table=table)
    failures_before = request.session.testsfailed
    try:
        warren.start()
        image = build_busybox(tmp_path_factory.mktemp("busybox")).path
        lxc_ok(warren, "image", "import", str(image), "--alias", "busybox")
        yield warren
    finally:
        code = warren.stop()
        warren.clean_host()
        if request.session.testsfailed > failures_before:
            print(f"\n#### Warren stack in {warren.dir} (kept), supervisor exit {code}")
            print(warren.dump_logs())
        else:
            shutil.rmtree(warren.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def networks(stack: Stack) -> Iterator[ScriptedNetworks]:
    node = stack.status().get("node") or os.uname().nodename.split(".")[0]
    scripted = ScriptedNetworks(stack.nats_url, node, unique("net")).start()
    if scripted.real:
        scripted.stop()
        pytest.skip("the real network service runs in this stack (its own tests cover it)")
    try:
        yield scripted
    finally:
        scripted.stop()


def body_of(name: str, devices: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "source": {"type": "image", "alias": "busybox"}, "devices": devices}


def create(stack: Stack, name: str, devices: dict[str, Any]) -> tuple[int, Any]:
    return call(stack, "POST", "/1.0/instances", body_of(name, devices))


def test_a_nic_on_a_managed_network(stack: Stack, networks: ScriptedNetworks) -> None:
    name = unique("netc")
    eth0 = {"type": "nic", "network": networks.network, "name": "eth0"}
    ok_op(stack, "POST", "/1.0/instances", body_of(name, {"eth0": eth0}))
    hwaddr = get(stack, f"/1.0/instances/{name}")["config"]["volatile.eth0.hwaddr"]
    assert hwaddr.startswith("00:16:3e:")

    ok_op(stack, "PUT", f"/1.0/instances/{name}/state", {"action": "start"})
    plug = next(p for p in networks.plugs if p.instance == name)
    assert (plug.network, plug.device, plug.hwaddr) == (networks.network, "eth0", hwaddr)
    nic = get(stack, f"/1.0/instances/{name}/state")["network"]["eth0"]
    assert (nic["hwaddr"], nic["mtu"], nic["state"]) == (hwaddr, MTU, "up")
    assert nic["host_name"].startswith("veth") and len(nic["host_name"]) == 12

    # The image asks for an address by DHCP at boot, naming itself.
    def leased() -> list[str]:
        addresses = get(stack, f"/1.0/instances/{name}/state")["network"]["eth0"]["addresses"]
        return [a["address"] for a in addresses if a["family"] == "inet"]

    wait_for(lambda: leased(), 20, "a DHCP lease")
    assert leased()[0].startswith("10.232.0.")
    assert name in networks.leases.read_text()  # udhcpc sent its hostname

    # An address set inside shows in the state and in lxc list's IPV4 column.
    lxc_ok(stack, "exec", name, "--", "ip", "addr", "add", "10.232.0.7/24", "dev", "eth0")
    listed = lxc_ok(stack, "list", name, "--format", "csv", "-c", "4")
    assert "10.232.0.7 (eth0)" in listed
    listing = json.loads(lxc_ok(stack, "list", name, "--format", "json"))
    assert listing[0]["state"]["network"]["eth0"]["hwaddr"] == hwaddr

    # Hot-plug on the running container, then removal.
    lxc_ok(stack, "config", "device", "add", name, "eth1", "nic", f"network={networks.network}")
    assert any(p.instance == name and p.device == "eth1" for p in networks.plugs)
    state = get(stack, f"/1.0/instances/{name}/state")["network"]
    assert state["eth1"]["mtu"] == MTU and state["eth1"]["state"] == "up"
    eth1_mac = state["eth1"]["hwaddr"]
    assert get(stack, f"/1.0/instances/{name}")["config"]["volatile.eth1.hwaddr"] == eth1_mac
    lxc_ok(stack, "config", "device", "remove", name, "eth1")
    assert "eth1" not in get(stack, f"/1.0/instances/{name}/state")["network"]
    assert NicUnplug(network=networks.network, hwaddr=eth1_mac) in networks.unplugs

    # A restart keeps the MAC; a delete unplugs.
    ok_op(stack, "PUT", f"/1.0/instances/{name}/state", {"action": "restart", "force": True})
    assert get(stack, f"/1.0/instances/{name}/state")["network"]["eth0"]["hwaddr"] == hwaddr
    ok_op(stack, "PUT", f"/1.0/instances/{name}/state", {"action": "stop", "force": True})
    ok_op(stack, "DELETE", f"/1.0/instances/{name}")
    assert NicUnplug(network=networks.network, hwaddr=hwaddr) in networks.unplugs


def test_a_missing_network_is_refused(stack: Stack, networks: ScriptedNetworks) -> None:
    status, answer = create(stack, unique("nonet"), {"eth0": {"type": "nic", "network": "nosuch"}})
    assert status == 400, answer
    assert 'Failed loading network "nosuch": Network not found' in answer["error"]
    bad = {"type": "nic", "network": networks.network, "nictype": "bridged"}
    status, answer = create(stack, unique("nonet"), {"eth0": bad})
    assert status == 400 and "in conjunction with" in answer["error"]


def test_a_profile_nic_needs_a_network_the_service_knows(
    stack: Stack, networks: ScriptedNetworks
) -> None:
    name = unique("netp")
    eth0 = {"type": "nic", "network": networks.network}
    status, answer = call(stack, "POST", "/1.0/profiles", {"name": name, "devices": {"eth0": eth0}})
    assert status == 201, answer
    bad = {"devices": {"eth1": {"type": "nic", "network": "nosuch"}}}
    status, answer = call(stack, "PATCH", f"/1.0/profiles/{name}", bad)
    assert status == 404, answer
    assert answer["error"] == (
        'Device validation failed for "eth1": Failed loading device "eth1": Failed to load '
        'network "nosuch" for project "default": Network not found'
    )
    assert set(get(stack, f"/1.0/profiles/{name}")["devices"]) == {"eth0"}
    assert call(stack, "DELETE", f"/1.0/profiles/{name}")[0] == 200


def test_instances_without_nics_never_ask_the_network_service(
    stack: Stack, networks: ScriptedNetworks
) -> None:
    before = len(networks.plugs)
    name = unique("plain")
    ok_op(stack, "POST", "/1.0/instances", body_of(name, {}))
    ok_op(stack, "PUT", f"/1.0/instances/{name}/state", {"action": "start"})
    assert get(stack, f"/1.0/instances/{name}/state")["network"]["lo"]["type"] == "loopback"
    assert len(networks.plugs) == before
    ok_op(stack, "PUT", f"/1.0/instances/{name}/state", {"action": "stop", "force": True})
    ok_op(stack, "DELETE", f"/1.0/instances/{name}")


def test_the_default_network_gives_the_default_profile_eth0(
    stack: Stack, networks: ScriptedNetworks
) -> None:
    async def record() -> None:
        payload = {"name": networks.network, "type": "bridge", "config": {}, "default": True}
        event = new_event(
            events.NETWORK_CREATED, "network", str(uuid.uuid4()), 1, "default", payload, SYSTEM
        )
        assert networks.bus is not None
        await EventStore(networks.bus.js).append([event], None)

    networks.call(record())
    wait_for(
        lambda: "eth0" in get(stack, "/1.0/profiles/default")["devices"], 30, "the default nic"
    )
    eth0 = get(stack, "/1.0/profiles/default")["devices"]["eth0"]
    assert eth0 == {"type": "nic", "network": networks.network, "name": "eth0"}


def test_a_silent_network_service_is_named(stack: Stack, networks: ScriptedNetworks) -> None:
    networks.silence()
    started = time.monotonic()
    devices = {"eth0": {"type": "nic", "network": networks.network}}
    status, answer = create(stack, unique("silent"), devices)
    assert status >= 400 and "network service" in answer["error"], answer
    assert time.monotonic() - started < 15
    # Profiles ask the same service about their nics; one without network nics never does.
    profile = unique("silentp")
    status, answer = call(stack, "POST", "/1.0/profiles", {"name": profile, "devices": devices})
    assert status >= 400 and "network service" in answer["error"], answer
    assert call(stack, "POST", "/1.0/profiles", {"name": profile})[0] == 201
    assert call(stack, "DELETE", f"/1.0/profiles/{profile}")[0] == 200
