"""The LXC driver's attach helper: commands are attached by a small process of its own, and
exec keeps working when that process dies (a command it was the parent of ends as -1, and
the next exec starts a new helper)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

import pytest
from test_instance_host_support import busybox_hosts

from services.instance.drivers.spec import ExecRequest

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="containers need root"),
    pytest.mark.skipif(not Path("/bin/busybox").exists(), reason="busybox-static not installed"),
]


def command_of(pid: int) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes()


def parent_and_sockets(pid: int) -> tuple[int, bool]:
    """A process's parent pid, and whether it holds any socket."""
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    parent = next(int(line.split()[1]) for line in status if line.startswith("PPid:"))
    fds = []
    for entry in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(FileNotFoundError):  # closed while we looked
            fds.append(os.readlink(entry))
    return parent, any(fd.startswith("socket:") for fd in fds)


def helper_pids() -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"lxc_attach_server.py" in cmdline and os.getppid() != int(entry.name):
                found.add(int(entry.name))
    return found


async def test_commands_are_attached_by_the_helper_and_survive_its_death():
    before = helper_pids()
    async with busybox_hosts() as hosts:
        host = await hosts.make("shifted")
        driver = hosts.driver
        assert await driver.exec(host.host_name, ExecRequest(command=["sh", "-c", "exit 4"])) == 4
        (helper,) = helper_pids() - before
        sleeper = await driver.spawn(host.host_name, ExecRequest(command=["sleep", "600"]))
        # Until it has exec'd, the attached child still holds LXC's own sync socket.
        for _ in range(200):
            if command_of(sleeper.pid).startswith(b"sleep"):
                break
            await asyncio.sleep(0.01)
        parent, has_socket = parent_and_sockets(sleeper.pid)
        assert parent == helper  # not a fork of this (large) process
        assert not has_socket  # no line to the helper

        os.kill(helper, signal.SIGKILL)
        assert await asyncio.wait_for(sleeper.wait(), 30) == -1  # its end cannot be known
        os.kill(sleeper.pid, signal.SIGKILL)  # now init's child: gone with the test
        code = await driver.exec(host.host_name, ExecRequest(command=["sh", "-c", "exit 5"]))
        assert code == 5
        assert len(helper_pids() - before) == 1  # a new helper took over


def test_the_helper_spells_the_gate_as_the_driver_spec_does():
    # The helper imports only the standard library, so it carries its own copies.
    from services.instance.drivers import lxc_attach_server, spec

    assert lxc_attach_server.GATE_OPEN == spec.GATE_OPEN
    assert lxc_attach_server.GATE_CLOSED_CODE == spec.GATE_CLOSED_CODE
