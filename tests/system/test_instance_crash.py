"""``kill -9`` of the instance service while 20 containers are being launched over the API:
after the supervisor restarts it, every container whose launch the API acknowledged exists
and runs, no launch is left hanging, and the host holds nothing the API does not show (no
orphan LXC directory, volume or cgroup); ``lxc list`` agrees with the host.
"""

from __future__ import annotations

import http.client
import re
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from _helpers import lxc_ok, metadata, unique
from stack import Stack, http_unix, wait_for

from services.image.builders.busybox import build_busybox

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(400),
    pytest.mark.skipif(not Path("/bin/busybox").exists(), reason="busybox-static not installed"),
]

LAUNCHES = 20
ACKS_BEFORE_KILL = 5


class Launcher(threading.Thread):
    """Launches containers one after another (create, then start), as ``lxc launch`` does."""

    def __init__(self, stack: Stack, prefix: str) -> None:
        super().__init__(daemon=True)
        self.stack = stack
        self.prefix = prefix
        self.acked: list[str] = []
        self.failed: list[str] = []

    def _op(self, method: str, path: str, body: Any) -> bool:
        """Send a request that answers with an operation and wait for it; True on success."""
        try:
            status, _, answer = http_unix(self.stack.socket, method, path, body, timeout=60)
            if status != 202:
                return False
            op = answer["metadata"]["id"]
            status, _, final = http_unix(
                self.stack.socket, "GET", f"/1.0/operations/{op}/wait?timeout=120", timeout=130
            )
        except (OSError, http.client.HTTPException):
            time.sleep(0.1)
            return False
        return status == 200 and final["metadata"]["status"] == "Success"

    def run(self) -> None:
        for n in range(LAUNCHES):
            name = f"{self.prefix}-{n}"
            body = {"name": name, "source": {"type": "image", "alias": "busybox"}}
            launched = self._op("POST", "/1.0/instances", body) and self._op(
                "PUT", f"/1.0/instances/{name}/state", {"action": "start", "timeout": 10}
            )
            (self.acked if launched else self.failed).append(name)


def host_names(stack: Stack) -> set[str]:
    """The instance names the host's LXC definitions carry (their hostname is the name)."""
    found = set()
    for config in (stack.dir / "lxc").glob("*/config"):
        match = re.search(r"^lxc\.uts\.name\s*=\s*(\S+)", config.read_text(), re.M)
        if match:
            found.add(match.group(1))
    return found


def test_kill_9_during_launches_keeps_every_acknowledged_container(
    warren: Stack, tmp_path: Path
) -> None:
    stack = warren
    image = build_busybox(tmp_path).path
    lxc_ok(stack, "image", "import", str(image), "--alias", "busybox")
    launcher = Launcher(stack, unique("crash"))
    launcher.start()
    wait_for(lambda: len(launcher.acked) >= ACKS_BEFORE_KILL, 120, "launches before the kill")
    old_pid = stack.kill("instance", signal.SIGKILL)
    in_flight_at_kill = len(launcher.acked) + len(launcher.failed)
    assert in_flight_at_kill < LAUNCHES, "every launch was done before the kill"
    stack.wait_restarted("instance", old_pid)
    launcher.join(timeout=300)
    assert not launcher.is_alive(), "a launch hung after the restart"
    assert len(launcher.acked) + len(launcher.failed) == LAUNCHES
    assert len(launcher.acked) > in_flight_at_kill, "nothing launched after the restart"

    instances = {i["name"]: i for i in metadata(stack, "/1.0/instances?recursion=1")}
    not_running = [n for n in launcher.acked if instances.get(n, {}).get("status") != "Running"]
    assert not not_running, f"acknowledged containers missing or not running: {not_running}"

    # The host holds exactly what the API shows: definitions, volumes, running cgroups.
    assert host_names(stack) == set(instances)
    volumes = metadata(stack, "/1.0/storage-pools/default/volumes/container")
    assert len(volumes) == len(instances), volumes
    running = {i["name"] for i in instances.values() if i["status"] == "Running"}
    payloads = list(Path("/sys/fs/cgroup/pids").glob("lxc.payload.w-*"))
    ours = [
        p for p in payloads if (stack.dir / "lxc" / p.name.removeprefix("lxc.payload.")).exists()
    ]
    assert len(ours) == len(running)

    listed = lxc_ok(stack, "list", "--format", "csv", "-c", "ns").split()
    assert sorted(listed) == sorted(
        f"{name},{i['status'].upper()}" for name, i in instances.items()
    )
