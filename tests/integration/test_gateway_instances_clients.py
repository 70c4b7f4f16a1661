"""The real ``lxc`` client (LXD 5.0) and pylxd against the gateway's instance routes, with a
scripted instance service behind it on a real nats-server (``tests/instance_node.py``).

These check the call sequences of the real clients: ``lxc list`` (recursion 2 with a server
side filter), ``lxc exec`` (events first, then one websocket per fd, stdin until EOF, the exit
code from the operation), ``lxc file push/pull`` (also ``-r``), ``lxc file delete``,
``lxc info --show-log``, ``lxc console --show-log``, state changes, rename and delete;
pylxd's ``execute``, files and state.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
import uuid
from pathlib import Path

import pytest
from gateway_harness import GatewayHarness
from instance_node import Node, ScriptedInstances

from schemas.client import Bus
from services.common.eventstore import EventStore

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(shutil.which("lxc") is None, reason="the lxc client is not installed"),
]


@pytest.fixture
async def bus(nats_server):
    bus = await Bus.open(nats_server.url, "test-gateway-instance-clients")
    await EventStore(bus.js).ensure_stream()
    yield bus
    await bus.close()


@pytest.fixture
async def service(bus):
    scripted = await ScriptedInstances(bus, nodes=("test",)).start()
    yield scripted
    await scripted.stop()


@pytest.fixture
async def gw(nats_server, service):
    harness = await GatewayHarness(nats_server.url, node="test").start()
    yield harness
    await harness.stop()


@pytest.fixture
def workdir():
    path = Path(tempfile.mkdtemp(prefix="gw-lxc-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


class Lxc:
    """``lxc`` pointed at the gateway, run without blocking the loop that serves it."""

    def __init__(self, gw: GatewayHarness, workdir: Path) -> None:
        conf = workdir / "lxc-conf"
        conf.mkdir(exist_ok=True)
        # With a config.yml, lxc skips its "first time running LXD" notice on stderr.
        (conf / "config.yml").write_text(
            "default-remote: local\nremotes:\n  local:\n    addr: unix://\n    public: false\n"
        )
        self.env = {**os.environ, "LXD_SOCKET": str(gw.socket), "LXD_CONF": str(conf)}

    async def run(
        self, *args: str, input: bytes | None = None, timeout: float = 60
    ) -> tuple[int, bytes, bytes]:
        proc = await asyncio.create_subprocess_exec(
            "lxc",
            *args,
            env=self.env,
            stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(input), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        assert proc.returncode is not None
        return proc.returncode, out, err

    async def ok(self, *args: str, input: bytes | None = None) -> str:
        code, out, err = await self.run(*args, input=input)
        assert code == 0, f"lxc {' '.join(args)} -> {code}\n{out.decode()}\n{err.decode()}"
        return out.decode()


@pytest.fixture
def lxc(gw, workdir) -> Lxc:
    return Lxc(gw, workdir)


def unique(prefix: str = "c") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


async def test_lxc_list_asks_recursion_2_and_filters(lxc, service) -> None:
    service.add("web1", status="Running", config={"user.role": "front"})
    service.add("web2", config={"user.role": "front"})
    service.add("db1", status="Running")

    # Columns that need no state: plain objects, filtered on the server.
    out = await lxc.ok("list", "--format=csv", "-c", "ns")
    assert out.splitlines() == ["db1,RUNNING", "web1,RUNNING", "web2,STOPPED"]
    assert service.verbs("instance-list")[-1].body["recursion"] == 1
    # The default columns (state, snapshots): recursion 2, the container_full shortcut.
    out = await lxc.ok("list", "--format=csv")
    assert [line.split(",")[:2] for line in out.splitlines()] == [
        ["db1", "RUNNING"],
        ["web1", "RUNNING"],
        ["web2", "STOPPED"],
    ]
    assert service.verbs("instance-list")[-1].body["recursion"] == 2

    out = await lxc.ok("list", "--format=csv", "-c", "n", "status=Running")
    assert out.splitlines() == ["db1", "web1"]
    out = await lxc.ok("list", "--format=csv", "-c", "n", "web")
    assert out.splitlines() == ["web1", "web2"]
    out = await lxc.ok("list", "--format=csv", "-c", "n", "user.role=front", "status=stopped")
    assert out.splitlines() == ["web2"]
    out = await lxc.ok("list", "--format=csv", "-c", "n", "--all-projects")
    assert len(out.splitlines()) == 3


async def test_lxc_lifecycle_commands(lxc, service) -> None:
    name = unique()
    assert f"Creating {name}" in await lxc.ok("init", "--empty", name)
    sent = service.verbs("instance-create")[-1]
    assert sent.node == "test" and sent.body["name"] == name
    assert sent.body["source"]["type"] == "none"
    await lxc.ok("start", name)
    assert service.instances[("default", name)][0]["status"] == "Running"
    await lxc.ok("config", "set", name, "user.a", "1")
    assert service.instances[("default", name)][0]["config"]["user.a"] == "1"
    assert (await lxc.ok("config", "get", name, "user.a")).strip() == "1"
    await lxc.ok("stop", name)
    new = unique()
    await lxc.ok("rename", name, new)
    assert ("default", new) in service.instances
    await lxc.ok("delete", new)
    assert ("default", new) not in service.instances
    code, _, err = await lxc.run("delete", new)
    assert code == 1 and b"Instance not found" in err


async def test_lxc_exec_pipes_stdin_and_returns_the_exit_code(lxc, service) -> None:
    name = unique()
    service.add(name, status="Running")
    code, out, err = await lxc.run("exec", name, "--", "cat", input=b"piped through\n" * 1000)
    assert (code, out, err) == (0, b"piped through\n" * 1000, b"")
    code, out, err = await lxc.run("exec", name, "--", "err", "on", "stderr")
    assert (code, out, err) == (3, b"", b"on stderr\n")
    code, out, _ = await lxc.run("exec", name, "--", "sh", "-c", "exit 7")
    assert (code, out) == (7, b"")
    code, out, _ = await lxc.run("exec", name, "--", "echo", "hi", "there")
    assert (code, out) == (0, b"hi there\n")
    sent = service.verbs("instance-exec")[-1].body
    assert sent["command"] == ["echo", "hi", "there"] and sent["interactive"] is False
    assert sent["wait-for-websocket"] is True


async def test_lxc_file_push_and_pull(lxc, service, workdir) -> None:
    name = unique()
    service.add(name)
    service.mkdir("/root", 0o700)
    local = workdir / "hello.txt"
    local.write_bytes(b"hello\n" * 100_000)
    local.chmod(0o640)
    await lxc.ok("file", "push", str(local), f"{name}/root/hello.txt")
    stored = service.files["/root/hello.txt"]
    assert stored.content == local.read_bytes() and stored.mode == 0o640

    pulled = workdir / "pulled.txt"
    await lxc.ok("file", "pull", f"{name}/root/hello.txt", str(pulled))
    assert pulled.read_bytes() == local.read_bytes()
    assert (await lxc.ok("file", "pull", f"{name}/root/hello.txt", "-")).startswith("hello\n")

    await lxc.ok("file", "delete", f"{name}/root/hello.txt")
    assert "/root/hello.txt" not in service.files


async def test_lxc_file_push_and_pull_recursively(lxc, service, workdir) -> None:
    name = unique()
    service.add(name)
    service.mkdir("/srv")
    tree = workdir / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_bytes(b"a\n")
    (tree / "sub" / "b.bin").write_bytes(bytes(range(256)) * 100)
    (tree / "link").symlink_to("a.txt")
    await lxc.ok("file", "push", "-r", str(tree), f"{name}/srv")
    assert service.files["/srv/tree"].type == "directory"
    assert service.files["/srv/tree/sub/b.bin"].content == bytes(range(256)) * 100
    assert service.files["/srv/tree/link"] == Node(
        "/srv/tree/link", "symlink", target="a.txt", mode=0o777
    )

    back = workdir / "back"
    back.mkdir()
    await lxc.ok("file", "pull", "-r", f"{name}/srv/tree", str(back))
    assert (back / "tree" / "a.txt").read_bytes() == b"a\n"
    assert (back / "tree" / "sub" / "b.bin").read_bytes() == bytes(range(256)) * 100
    assert os.readlink(back / "tree" / "link") == "a.txt"


async def test_lxc_info_and_console_log(lxc, service) -> None:
    name = unique()
    service.add(name, status="Running")
    info = await lxc.ok("info", name, "--show-log")  # one GET ?recursion=1, then the log
    assert f"Name: {name}" in info and "Status: RUNNING" in info and "PID: 42" in info
    assert "\nLog:\n\nlxc log line\n" in info
    assert service.verbs("instance-logs")[-1].body == {"name": name, "file": "lxc.log"}
    assert "console says hi" in await lxc.ok("console", name, "--show-log")


async def test_lxc_exec_interactive_uses_one_socket(lxc, service) -> None:
    name = unique()
    service.add(name, status="Running")
    code, out, _ = await lxc.run("exec", "-t", name, "--", "sh", input=b"hello\nexit\n")
    assert code == 0 and out == b"$ HELLO\r\n$ ", out
    sent = service.verbs("instance-exec")[-1].body
    assert sent["interactive"] is True
    (ex,) = service.execs.values()
    assert ex.attached == {"0", "control"}


async def test_lxc_exec_forwards_signals_over_the_control_socket(lxc, service) -> None:
    name = unique()
    service.add(name, status="Running")
    proc = await asyncio.create_subprocess_exec(
        "lxc",
        "exec",
        name,
        "--",
        "sleep",
        "100",
        env=lxc.env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        for _ in range(400):
            if any(ex.ready.is_set() for ex in service.execs.values()):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the exec never had its sockets attached")
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 128 + signal.SIGTERM
    (ex,) = service.execs.values()
    assert [c.signal for c in ex.controls if c.command == "signal"] == [signal.SIGTERM]


# -- pylxd ----------------------------------------------------------------------------------


async def test_pylxd_execute_files_and_state(gw, service) -> None:
    pylxd = pytest.importorskip("pylxd")
    name = unique()
    service.add(name, status="Running")
    service.mkdir("/root")

    def scenario() -> None:
        client = pylxd.Client(endpoint=str(gw.socket))
        instance = client.instances.get(name)
        assert instance.status == "Running"
        result = instance.execute(["cat"], stdin_payload=b"from pylxd\n")
        assert (result.exit_code, result.stdout, result.stderr) == (0, "from pylxd\n", "")
        result = instance.execute(["err", "bad"])
        assert (result.exit_code, result.stderr) == (3, "bad\n")
        instance.files.put("/root/p.txt", b"pylxd file", mode=0o600)
        assert instance.files.get("/root/p.txt") == b"pylxd file"
        instance.files.delete("/root/p.txt")
        instance.stop(wait=True)
        assert [i.name for i in client.instances.all()] == [name]

    await asyncio.to_thread(scenario)
    assert service.instances[("default", name)][0]["status"] == "Stopped"
    assert "/root/p.txt" not in service.files
