"""After a "reboot" (Warren stopped, every container killed, the bridge, its nftables table and
its dnsmasq gone from the host), starting Warren again brings it all back from the log: the
bridge with its address, the rules, dnsmasq with its leases, and the containers that were
running, each with the address it had. A plain restart of the stack leaves dnsmasq alone.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from _helpers import lxc_ok, unique
from stack import Stack

from services.image.builders.busybox import build_busybox

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(not Path("/bin/busybox").exists(), reason="busybox-static not installed"),
]


def addresses(stack: Stack) -> dict[str, str]:
    found = {}
    for entry in json.loads(lxc_ok(stack, "list", "--format", "json")):
        for nic, net in ((entry.get("state") or {}).get("network") or {}).items():
            for address in net["addresses"] if nic != "lo" else []:
                if address["family"] == "inet" and address["scope"] == "global":
                    found[entry["name"]] = address["address"]
    return found


def wait_addresses(stack: Stack, names: set[str], timeout: float = 20) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = addresses(stack)
        if names <= set(found):
            return found
        time.sleep(0.2)
    raise AssertionError(f"no addresses for {names - set(addresses(stack))}")


def dnsmasq_pid(stack: Stack) -> int:
    return int((stack.dir / "networks" / stack.default_network / "dnsmasq.pid").read_text())


def test_the_network_comes_back_after_a_reboot(warren: Stack, tmp_path: Path) -> None:
    stack = warren
    lxc_ok(stack, "image", "import", build_busybox(tmp_path).path, "--alias", "busybox")
    names = {unique("r"), unique("r")}
    for name in names:
        lxc_ok(stack, "launch", "busybox", name)
    before = wait_addresses(stack, names)
    pid = dnsmasq_pid(stack)

    stack.restart()  # Warren only: the host keeps its network and dnsmasq
    assert dnsmasq_pid(stack) == pid
    assert wait_addresses(stack, names) == before

    stack.stop()
    for config in (stack.dir / "lxc").glob("*/config"):
        subprocess.run(["lxc-stop", "-k", "-P", str(stack.dir / "lxc"), "-n", config.parent.name])
    bridge = stack.default_network
    subprocess.run(["kill", "-9", str(pid)], check=True)
    subprocess.run(["nft", "delete", "table", "inet", f"warren_{bridge}"], check=True)
    subprocess.run(["ip", "link", "delete", bridge], check=True)

    stack.start()
    assert wait_addresses(stack, names, timeout=30) == before
    shown = subprocess.run(["ip", "-4", "addr", "show", bridge], capture_output=True, text=True)
    assert shown.returncode == 0 and "inet " in shown.stdout
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    assert f"warren_{bridge}" in tables
    leases = lxc_ok(stack, "network", "list-leases", bridge)
    assert all(name in leases and before[name] in leases for name in names)
