"""The supervisor with stand-in services: restarts, clean stop, side-by-side stacks, the lock.

The stand-ins are tiny real processes (a "service" that logs ready and drains on SIGTERM, a
"gateway" that answers HTTP on its unix socket), so these tests exercise the supervisor alone;
test_supervisor_stack.py runs the real services.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import nats
import pytest
from stack import Stack, pid_alive, wait_for

STANDIN = r"""
import asyncio, json, os, signal

async def main():
    name = os.environ["WARREN_SERVICE"]
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    server = None
    if os.environ.get("WARREN_SOCKET"):
        async def handle(reader, writer):
            try:
                await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:  # the supervisor's readiness probe
                writer.close()
                return
            body = json.dumps({k: v for k, v in os.environ.items() if k.startswith("WARREN_")}
                              | {"pid": os.getpid()}).encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
            await writer.drain()
            writer.close()
        server = await asyncio.start_unix_server(handle, os.environ["WARREN_SOCKET"])
    print(f"{name} ready on node {os.environ['WARREN_NODE']}", flush=True)
    await stop.wait()
    if server:
        server.close()
        os.unlink(os.environ["WARREN_SOCKET"])
    print(f"{name} drained and stopped", flush=True)

asyncio.run(main())
"""


@pytest.fixture(scope="module")
def standin_table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A service table of stand-ins: ``svc`` (cluster), ``agent`` (node), ``gateway``."""
    root = tmp_path_factory.mktemp("standin")
    script = root / "standin.py"
    script.write_text(STANDIN)
    argv = [sys.executable, str(script)]
    table = [
        {"name": "svc", "argv": argv, "scope": "cluster"},
        {"name": "agent", "argv": argv, "scope": "node"},
        {"name": "gateway", "argv": argv, "role": "gateway"},
    ]
    path = root / "table.json"
    path.write_text(json.dumps(table))
    return path


@pytest.fixture
def standin(warren_factory, standin_table):
    """Make a started stand-in stack: ``standin(replicas={...})``."""

    def make(**kwargs) -> Stack:
        return warren_factory(table=standin_table, **kwargs)

    return make


def test_ready_stack_reports_every_process_and_passes_its_environment(standin):
    stack = standin(replicas={"svc": 2})
    status = stack.status()
    assert status["state"] == "ready"
    labels = sorted(p["label"] for p in status["processes"])
    assert labels == ["agent", "gateway", "nats", "svc", "svc-2"]
    assert all(p["ready"] and pid_alive(p["pid"]) for p in status["processes"])
    code, _, env = stack.request("GET", "/1.0")
    assert code == 200
    assert env["WARREN_DIR"] == str(stack.dir)
    assert env["WARREN_SOCKET"] == str(stack.socket)
    assert env["WARREN_NATS_URL"] == stack.nats_url
    assert env["WARREN_NODE"] == status["node"]
    for label in ("nats", "svc", "svc-2", "agent", "gateway"):
        assert (stack.dir / "logs" / f"{label}.log").exists()
    assert "svc ready on node" in stack.log("svc-2")


def test_kill_9_of_a_service_replica_restarts_only_that_one(standin):
    stack = standin(replicas={"svc": 2})
    first, second = stack.pids("svc")
    killed = stack.kill("svc", signal.SIGKILL, replica=1)
    assert killed == second
    new = stack.wait_restarted("svc", second, replica=1)
    assert new != second and pid_alive(new) and not pid_alive(second)
    assert stack.pids("svc") == [first, new]
    entry = next(p for p in stack.processes("svc") if p["replica"] == 1)
    assert entry["restarts"] == 1
    supervisor_log = stack.log("supervisor")
    assert "svc-2" in supervisor_log and "exited unexpectedly with signal SIGKILL" in supervisor_log


def test_kill_9_of_the_gateway_brings_the_socket_back(standin):
    stack = standin()
    old = stack.kill("gateway")
    new = stack.wait_restarted("gateway", old)
    code, _, body = stack.request("GET", "/1.0")
    assert code == 200 and body["pid"] == new


def test_nats_server_crash_is_restarted_on_the_same_port(standin):
    stack = standin()
    url = stack.nats_url
    old = stack.kill("nats")
    stack.wait_restarted("nats", old)
    assert stack.nats_url == url

    async def roundtrip() -> bool:
        nc = await nats.connect(url)
        try:
            info = await nc.jetstream().stream_info("EVENTS")
            return info.config.name == "EVENTS"
        finally:
            await nc.close()

    assert asyncio.run(roundtrip())


def test_gateway_replicas_listen_on_their_own_sockets(standin):
    stack = standin(replicas={"gateway": 2})
    sockets = [p["socket"] for p in stack.processes("gateway")]
    assert sockets == [str(stack.socket), str(stack.dir / "gateway-2.socket")]
    answers = [stack.request("GET", "/", socket_path=Path(s))[2] for s in sockets]
    assert [a["WARREN_REPLICA"] for a in answers] == ["0", "1"]
    assert [a["pid"] for a in answers] == stack.pids("gateway")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_stops_everything_in_order_with_no_orphans(standin, sig):
    stack = standin(replicas={"svc": 2})
    pids = stack.all_pids()
    assert len(pids) == 5
    assert stack.stop(sig) == 0
    assert [pid for pid in pids if pid_alive(pid)] == []
    assert stack.live_processes() == []
    # Every stand-in got SIGTERM and drained (a SIGKILL would leave no such line).
    for label in ("svc", "svc-2", "agent", "gateway"):
        assert "drained and stopped" in stack.log(label)
    lines = stack.log("supervisor").splitlines()
    stopped = [line.split("INFO: ")[1].split()[0] for line in lines if " stopped (" in line]
    assert sorted(stopped) == ["agent", "gateway", "nats", "svc", "svc-2"]
    assert stopped[-1] == "nats"  # the bus goes last, after services drained
    assert "nats stopped (exit code 0)" in stack.log("supervisor")
    assert stack.status()["state"] == "stopped"
    assert not stack.socket.exists()


def test_supervisor_killed_with_sigkill_leaves_no_orphans(standin):
    stack = standin()
    pids = stack.all_pids()
    assert stack.stop(signal.SIGKILL) == -signal.SIGKILL
    wait_for(lambda: not any(pid_alive(p) for p in pids), 30, "children to die with the parent")
    wait_for(lambda: stack.live_processes() == [], 30, "no process left in the stack's dir")


def test_two_stacks_side_by_side_have_distinct_ports_names_and_sockets(standin):
    one, two = standin(), standin()
    assert one.dir != two.dir
    assert one.nats_url != two.nats_url
    conf_one = (one.dir / "nats" / "nats-server.conf").read_text()
    conf_two = (two.dir / "nats" / "nats-server.conf").read_text()
    name_one = next(line for line in conf_one.splitlines() if line.startswith("server_name"))
    name_two = next(line for line in conf_two.splitlines() if line.startswith("server_name"))
    assert name_one != name_two
    assert str(one.dir / "nats") in conf_one and str(two.dir / "nats") in conf_two
    assert one.request("GET", "/")[2]["WARREN_DIR"] == str(one.dir)
    assert two.request("GET", "/")[2]["WARREN_DIR"] == str(two.dir)


def test_second_supervisor_on_the_same_dir_is_refused(standin):
    stack = standin()
    pids = stack.all_pids()
    intruder = subprocess.run(
        [sys.executable, "-m", "services.common.supervisor"],
        env=stack.supervisor_env(),
        cwd=stack.dir,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert intruder.returncode == 2
    assert "another Warren supervisor" in intruder.stderr
    assert str(stack.status()["supervisor_pid"]) in intruder.stderr
    # The first one is untouched.
    assert stack.all_pids() == pids
    assert stack.request("GET", "/")[0] == 200


def test_whole_restart_keeps_the_port_and_the_jetstream_store(standin):
    stack = standin()
    url = stack.nats_url

    async def publish() -> int:
        nc = await nats.connect(url)
        try:
            ack = await nc.jetstream().publish("events.test.restart", b"kept")
            return ack.seq
        finally:
            await nc.close()

    seq = asyncio.run(publish())
    stack.restart()
    assert stack.nats_url == url

    async def read_back() -> bytes:
        nc = await nats.connect(stack.nats_url)
        try:
            msg = await nc.jetstream().get_msg("EVENTS", seq)
            return msg.data
        finally:
            await nc.close()

    assert asyncio.run(read_back()) == b"kept"


@pytest.mark.parametrize(
    ("replicas", "message"),
    [
        ("agent=2", "agent is node-scoped and cannot run as replicas"),
        ("nope=2", "unknown service 'nope'"),
        ("svc=0", "at least one replica"),
        ("svc", "expected <service>=<count>"),
    ],
)
def test_bad_replicas_are_refused_before_anything_starts(standin_table, replicas, message):
    stack = Stack(table=standin_table, extra_env={"WARREN_REPLICAS": replicas})
    try:
        proc = stack.launch()
        assert proc.wait(timeout=60) == 2
        assert message in stack.output()
        assert not (stack.dir / "nats" / "port").exists()
    finally:
        stack.stop()
        shutil.rmtree(stack.dir, ignore_errors=True)


def test_external_nats_url_means_no_nats_server_of_its_own(standin, nats_server):
    stack = standin(env={"WARREN_NATS_URL": nats_server.url})
    assert stack.nats_url == nats_server.url
    assert stack.pids("nats") == []
    assert stack.request("GET", "/")[2]["WARREN_NATS_URL"] == nats_server.url
    assert not (stack.dir / "nats" / "nats-server.conf").exists()
    assert stack.stop() == 0


def test_a_process_that_never_gets_ready_fails_the_start_and_stops_everything(
    standin_table, tmp_path
):
    table = json.loads(standin_table.read_text())
    table[0]["ready"] = {"kind": "log", "pattern": "this line never comes"}
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(table))
    stack = Stack(table=broken, extra_env={"WARREN_READY_TIMEOUT": "2"})
    try:
        proc = stack.launch()
        assert proc.wait(timeout=60) == 1
        assert "not ready after 2s" in stack.output()
        assert stack.status()["state"] == "stopped"
        assert stack.live_processes() == []
    finally:
        stack.stop()
        shutil.rmtree(stack.dir, ignore_errors=True)
