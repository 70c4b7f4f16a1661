"""ExecSession against real busybox containers and a real nats-server.

A test-side gateway (``ExecGateway``) speaks schemas.exec_io: it listens on the output
streams, attaches the fds, streams stdin and sends control requests; the session runs as a
real operation of an OperationRecorder, so its outcome is what the log records.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import logging
import os
import re
import signal
import uuid
from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest
from test_instance_host_support import (
    BUSYBOX,
    HANG_GUARD,
    MODES,
    BusyboxHosts,
    Exec,
    busybox_hosts,
)

from schemas import subjects
from schemas.client import Bus
from schemas.errors import BadRequest, Conflict, Unavailable
from schemas.instances import ExecStart
from services.common.eventstore import EventStore
from services.common.operations import OperationRecorder
from services.instance.exec_session import DEFAULT_PATH, ExecSession
from services.instance.instances.host import HostInstance

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(os.geteuid() != 0, reason="containers need root"),
    pytest.mark.skipif(not BUSYBOX.exists(), reason="busybox-static is not installed"),
]


@pytest.fixture
async def node_bus(nats_server) -> AsyncIterator[Bus]:
    bus = await Bus.open(nats_server.url, "test-exec-node")
    await EventStore(bus.js).ensure_stream()
    yield bus
    await bus.close()


@pytest.fixture
async def gateway_bus(nats_server) -> AsyncIterator[Bus]:
    bus = await Bus.open(nats_server.url, "test-exec-gateway")
    yield bus
    await bus.close()


@pytest.fixture
def recorder(node_bus: Bus) -> OperationRecorder:
    return OperationRecorder(node_bus.nc, EventStore(node_bus.js), node="node1")


@pytest.fixture
async def hosts() -> AsyncIterator[BusyboxHosts]:
    async with busybox_hosts() as made:
        yield made


@pytest.fixture
async def host(hosts: BusyboxHosts) -> HostInstance:
    return await hosts.make("idmapped")


@pytest.fixture
def execs(node_bus, gateway_bus, recorder) -> Exec:
    return Exec(node_bus, gateway_bus, recorder)


@pytest.mark.parametrize("mode", MODES)
async def test_output_errors_and_exit_code(execs: Exec, hosts: BusyboxHosts, mode: str):
    host = await hosts.make(mode)
    final, gateway = await execs.run(host, ["sh", "-c", "echo hi; echo err >&2; exit 3"])
    assert final["status"] == "Success", final
    assert final["class"] == "websocket"
    assert final["metadata"]["return"] == 3
    fds = final["metadata"]["fds"]
    assert sorted(fds) == ["0", "1", "2", "control"]
    assert all(len(secret) == 64 and int(secret, 16) >= 0 for secret in fds.values())
    assert len(set(fds.values())) == 4
    assert final["metadata"]["command"] == ["sh", "-c", "echo hi; echo err >&2; exit 3"]
    assert (gateway.text("1"), gateway.text("2")) == ("hi\n", "err\n")
    # The output streams ended before the operation's outcome was recorded.
    assert gateway.ended_before == {"1": True, "2": True}


async def test_stdin_is_piped_through_cat(execs: Exec, host: HostInstance):
    final, gateway = await execs.run(host, ["cat"], stdin=b"hello\nworld\n")
    assert final["metadata"]["return"] == 0
    assert gateway.text("1") == "hello\nworld\n"
    assert gateway.text("2") == ""


async def test_megabytes_cross_both_ways_intact(execs: Exec, host: HostInstance):
    payload = os.urandom(5 * 1024 * 1024)
    final, gateway = await execs.run(host, ["cat"], stdin=payload)
    assert final["metadata"]["return"] == 0
    assert len(gateway.received["1"]) == len(payload)
    assert hashlib.sha256(gateway.received["1"]).digest() == hashlib.sha256(payload).digest()

    # A big file inside the container, cat'ed out.
    (BusyboxHosts.disk(host) / "tmp/big").write_bytes(payload)
    final, gateway = await execs.run(host, ["cat", "/tmp/big"])
    assert final["metadata"]["return"] == 0
    assert bytes(gateway.received["1"]) == payload


async def test_environment_cwd_and_user(execs: Exec, hosts: BusyboxHosts):
    host = await hosts.make("idmapped", config={"environment.FOO": "from-config", "x": "y"})
    script = 'echo "$HOME|$USER|$LANG|$PATH|$FOO|$BAR|${TERM:-none}"; pwd; id -u; id -g'
    final, gateway = await execs.run(host, ["sh", "-c", script], environment={"BAR": "given"})
    assert final["metadata"]["return"] == 0
    assert gateway.text("1") == (
        f"/root|root|C.UTF-8|{DEFAULT_PATH}|from-config|given|none\n/root\n0\n0\n"
    )
    # The request overrides the instance's environment; a user gets their home from passwd.
    final, gateway = await execs.run(
        host,
        ["sh", "-c", script],
        environment={"FOO": "override", "TERM": "xterm"},
        user=1000,
        group=1000,
    )
    assert gateway.text("1") == (
        f"/home/alice|alice|C.UTF-8|{DEFAULT_PATH}|override||xterm\n/home/alice\n1000\n1000\n"
    )
    final, gateway = await execs.run(host, ["pwd"], cwd="/tmp")
    assert gateway.text("1") == "/tmp\n"


async def test_a_bad_request_is_refused_before_any_operation(node_bus, host: HostInstance):
    bad_env = ExecStart(name=host.name, command=["true"], environment={"A=B": "x"})
    with pytest.raises(BadRequest):
        ExecSession(node_bus.nc, host, bad_env, str(uuid.uuid4()))
    with pytest.raises(BadRequest):
        ExecSession(node_bus.nc, host, ExecStart(name=host.name, command=["true"]), "a.b")


async def test_interactive_shell_on_a_terminal(execs: Exec, host: HostInstance):
    _, op, gateway = await execs.start(
        host,
        ["sh"],
        interactive=True,
        width=120,
        height=40,
        environment={"TERM": "xterm", "PS1": "$ "},
        **{"wait-for-websocket": True},
    )
    assert sorted(op.object["metadata"]["fds"]) == ["0", "control"]
    try:
        await gateway.attach()
        gateway.type(b"stty size; [ -t 0 ] && echo tty-$((1+1))\n")
        await gateway.wait_output("1", b"40 120")
        await gateway.wait_output("1", b"tty-2")
        await gateway.control(
            {"command": "window-resize", "args": {"width": "100", "height": "30"}}
        )
        gateway.type(b"stty size\n")
        await gateway.wait_output("1", b"30 100")
        gateway.type(b"exit 7\n")
        final = await asyncio.wait_for(op.wait(), HANG_GUARD)
        await gateway.wait_ended()
    finally:
        await gateway.close()
    assert final["metadata"]["return"] == 7
    assert gateway.ended_before == {"1": True}


@pytest.mark.parametrize("mode", MODES)
async def test_the_terminal_is_a_pty_of_the_container(
    execs: Exec, hosts: BusyboxHosts, mode: str, caplog: pytest.LogCaptureFixture
):
    host = await hosts.make(mode)
    keys = b"tty; test -t 0 && echo yes-$((1+1)); ls -ln $(tty); exit 3\n"
    with caplog.at_level(logging.WARNING, logger="services.instance.exec_pty"):
        final, text = await execs.on_terminal(host, keys)
    assert final["metadata"]["return"] == 3, text
    # ttyname() works: the pty is one of the container's own /dev/pts (not the host's).
    found = re.search(r"^(/dev/pts/\d+)\r?$", text, re.M)
    assert found is not None and "not a tty" not in text, text
    assert "yes-2" in text
    # Root's, in the tty group devpts gives it (LXC mounts it gid=5), as the container sees
    # them, not ids it shows as nobody (Warren gives it to the container's root; LXC's attach
    # then to the command's user, mode 0700).
    listing = next(line for line in text.splitlines() if line.startswith("c"))
    assert listing.split()[2:4] == ["0", "5"] and listing.endswith(found[1]), text
    # Only the pty code's own warnings count (another test's leftover client may log too).
    assert not [r for r in caplog.records if r.name == "services.instance.exec_pty"]

    # Another user's command too; LXC's attach then gives the terminal to that user (as LXD's
    # attach does), keeping its group.
    final, text = await execs.on_terminal(
        host, b"tty; ls -ln $(tty); exit 0\n", user=1000, group=1000
    )
    assert re.search(r"^/dev/pts/\d+\r?$", text, re.M), text
    listing = next(line for line in text.splitlines() if line.startswith("c"))
    assert listing.split()[2:4] == ["1000", "5"], text


async def test_a_devpts_that_is_not_one_falls_back_to_the_hosts_pty(
    execs: Exec, hosts: BusyboxHosts, caplog: pytest.LogCaptureFixture
):
    # The container owns its /dev: a privileged one can put anything there. The host opens
    # nothing that is not the devpts' own ptmx; the command still gets a (host) terminal.
    host = await hosts.make("privileged")
    tricks = [
        "mount --bind /dev/null /dev/pts/ptmx",  # a device that is not ptmx
        # /dev/pts a symlink (to a real devpts elsewhere): not followed.
        "umount /dev/pts/ptmx && umount -l /dev/pts && rmdir /dev/pts && mkdir /dev/other"
        " && mount -t devpts -o newinstance,ptmxmode=666 devpts /dev/other"
        " && ln -s /dev/other /dev/pts",
    ]
    for trick in tricks:
        final, _ = await execs.run(host, ["sh", "-c", trick])
        assert final["metadata"]["return"] == 0, trick
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="services.instance.exec_pty"):
            final, text = await execs.on_terminal(
                host,
                b"test -t 0 && echo yes-$((1+1)); stty size; exit 4\n",
                width=90,
                height=20,
            )
        assert final["metadata"]["return"] == 4 and "yes-2" in text and "20 90" in text, text
        assert any("using the host's" in r.getMessage() for r in caplog.records), trick


async def test_control_signals_the_command(execs: Exec, host: HostInstance):
    _, op, gateway = await execs.start(host, ["sleep", "600"], **{"wait-for-websocket": True})
    try:
        await gateway.attach()
        await asyncio.sleep(0.2)
        with pytest.raises(BadRequest):
            await gateway.control({"command": "signal", "signal": 0})
        await gateway.control({"command": "signal", "signal": int(signal.SIGTERM)})
        final = await asyncio.wait_for(op.wait(), HANG_GUARD)
        await gateway.wait_ended()
    finally:
        await gateway.close()
    assert final["metadata"]["return"] == 128 + signal.SIGTERM

    # Interactive too: SIGKILL through control ends a sleep on a terminal.
    _, op, gateway = await execs.start(
        host, ["sleep", "600"], interactive=True, **{"wait-for-websocket": True}
    )
    try:
        await gateway.attach()
        await asyncio.sleep(0.2)
        await gateway.control({"command": "signal", "signal": int(signal.SIGKILL)})
        final = await asyncio.wait_for(op.wait(), HANG_GUARD)
        await gateway.wait_ended()
    finally:
        await gateway.close()
    assert final["metadata"]["return"] == 128 + signal.SIGKILL


async def test_the_command_waits_for_every_fd_but_control(execs: Exec, host: HostInstance):
    _, op, gateway = await execs.start(host, ["echo", "started"], **{"wait-for-websocket": True})
    try:
        await gateway.attach(fds=("0", "1"))
        await asyncio.sleep(0.3)
        assert not op.finished.is_set() and gateway.text("1") == ""
        with pytest.raises(Conflict):
            await gateway.attach(fds=("1",))
        with pytest.raises(BadRequest):
            await gateway.attach(fds=("3",))
        await gateway.attach(fds=("2",))  # control never attaches (pylxd does not open it)
        gateway.close_stdin()
        final = await asyncio.wait_for(op.wait(), HANG_GUARD)
        await gateway.wait_ended()
    finally:
        await gateway.close()
    assert final["metadata"]["return"] == 0 and gateway.text("1") == "started\n"


async def test_closed_output_and_background_children(execs: Exec, host: HostInstance):
    # Output fds closed early: the streams end, the command is still waited for.
    final, gateway = await execs.run(host, ["sh", "-c", "exec >&- 2>&-; sleep 1; exit 4"])
    assert final["metadata"]["return"] == 4
    assert gateway.text("1") == gateway.text("2") == ""
    # A background child holding stdout does not keep the client waiting once sh has ended.
    final, gateway = await execs.run(host, ["sh", "-c", "sleep 300 & echo done"])
    assert final["metadata"]["return"] == 0 and gateway.text("1") == "done\n"


async def test_record_output_without_websockets(execs: Exec, host: HostInstance):
    final, _ = await _detached(execs, host, ["sh", "-c", "echo out; echo err >&2; exit 2"], True)
    assert final["class"] == "task"
    assert final["metadata"]["return"] == 2
    op_id = final["id"]
    assert final["metadata"]["output"] == {
        "1": f"/1.0/instances/{host.name}/logs/exec_{op_id}.stdout",
        "2": f"/1.0/instances/{host.name}/logs/exec_{op_id}.stderr",
    }
    assert (host.state_dir / f"exec_{op_id}.stdout").read_text() == "out\n"
    assert (host.state_dir / f"exec_{op_id}.stderr").read_text() == "err\n"

    # Without record-output the output goes nowhere and stdin is /dev/null.
    final, _ = await _detached(execs, host, ["sh", "-c", "cat; echo lost; exit 5"], False)
    assert final["metadata"] == {"return": 5}
    assert not list(host.state_dir.glob(f"exec_{final['id']}.*"))


async def _detached(
    execs: Exec, host: HostInstance, command: list[str], record: bool
) -> tuple[dict[str, Any], None]:
    session, op, _ = await execs.start(host, command, **{"record-output": record})
    assert session.metadata() == {}
    return await asyncio.wait_for(op.wait(), HANG_GUARD), None


async def test_a_frozen_instance_fails_fast_and_ends_the_streams(execs: Exec, host: HostInstance):
    await host.driver.freeze(host.host_name)
    try:
        _, op, gateway = await execs.start(host, ["true"], **{"wait-for-websocket": True})
        try:
            # The command is spawned before the fds attach: the operation may have failed
            # (and stopped listening for attaches) before the gateway gets to attach them.
            with contextlib.suppress(Unavailable):
                await gateway.attach()
            final = await asyncio.wait_for(op.wait(), HANG_GUARD)
            await gateway.wait_ended()
        finally:
            await gateway.close()
    finally:
        await host.driver.unfreeze(host.host_name)
    assert final["status"] == "Failure"
    assert "frozen" in final["err"] and host.name in final["err"]
    assert host.host_name not in final["err"]
    # Detached too.
    await host.driver.freeze(host.host_name)
    try:
        _, op, _ = await execs.start(host, ["true"])
        final = await asyncio.wait_for(op.wait(), HANG_GUARD)
    finally:
        await host.driver.unfreeze(host.host_name)
    assert final["status"] == "Failure" and "frozen" in final["err"]


async def test_cancel_kills_the_command_and_releases_everything(
    execs: Exec, host: HostInstance, gateway_bus: Bus
):
    marker = f"/tmp/cancel-{uuid.uuid4().hex}"
    session, op, gateway = await execs.start(
        host, ["sh", "-c", f"echo $$ > {marker}; exec sleep 600"], **{"wait-for-websocket": True}
    )
    try:
        await gateway.attach()
        for _ in range(500):
            if (host.rootfs / marker.lstrip("/")).exists():
                break
            await asyncio.sleep(0.02)
        final = await asyncio.wait_for(op.cancel("tester"), HANG_GUARD)
        await gateway.wait_ended()
    finally:
        await gateway.close()
    assert final["status"] == "Cancelled"
    assert session._process is not None
    assert session._waiter is not None and session._waiter.done()
    assert session._fds == set()
    # Nobody listens for this exec any more.
    with pytest.raises(nats.errors.NoRespondersError):
        await gateway_bus.nc.request(subjects.exec_attach(op.id), b"", timeout=2)


async def test_the_wait_for_attaches_is_cancellable(execs: Exec, host: HostInstance):
    marker = f"/tmp/never-{uuid.uuid4().hex}"
    session, op, gateway = await execs.start(
        host, ["touch", marker], **{"wait-for-websocket": True}
    )
    try:
        await gateway.attach(fds=("1",), stdin=False)  # listens on the outputs
        final = await asyncio.wait_for(op.cancel("tester"), HANG_GUARD)
        await gateway.wait_ended()  # ended, so the client does not hang
    finally:
        await gateway.close()
    assert final["status"] == "Cancelled"
    # The command was made ready behind its gate, but never ran; nothing of it is left.
    assert not (host.rootfs / marker.lstrip("/")).exists()
    assert session._waiter is None or session._waiter.done()
    assert session._fds == set()


async def test_a_stopped_instance_fails_with_not_running(execs: Exec, host: HostInstance):
    await host.driver.stop(host.host_name, force=True)
    _, op, gateway = await execs.start(host, ["true"], **{"wait-for-websocket": True})
    try:
        with contextlib.suppress(Unavailable):  # the operation may have failed already
            await gateway.attach()
        final = await asyncio.wait_for(op.wait(), HANG_GUARD)
        await gateway.wait_ended()
    finally:
        await gateway.close()
    assert final["status"] == "Failure" and "not running" in final["err"]


async def test_closing_the_terminal_hangs_up(execs: Exec, host: HostInstance):
    _, op, gateway = await execs.start(
        host, ["sh"], interactive=True, **{"wait-for-websocket": True}
    )
    try:
        await gateway.attach()
        gateway.type(b"echo ready\n")
        await gateway.wait_output("1", b"ready")
        gateway.close_stdin()  # the client went away
        final = await asyncio.wait_for(op.wait(), HANG_GUARD)
        await gateway.wait_ended()
    finally:
        await gateway.close()
    assert final["metadata"]["return"] == 128 + signal.SIGHUP


async def test_sessions_leave_no_fds_behind(execs: Exec, host: HostInstance):
    await execs.run(host, ["true"])  # warm up (thread pool, subscriptions)
    gc.collect()  # earlier tests' garbage may still hold fds: count from a clean slate
    before = len(os.listdir("/proc/self/fd"))
    await execs.run(host, ["sh", "-c", "echo out; echo err >&2"], stdin=b"x")
    await execs.run(host, ["sh", "-c", "stty size"], interactive=True, width=80, height=24)
    _, op, _ = await execs.start(host, ["echo", "x"], **{"record-output": True})
    await asyncio.wait_for(op.wait(), HANG_GUARD)
    await asyncio.sleep(0.1)
    gc.collect()
    assert len(os.listdir("/proc/self/fd")) <= before
