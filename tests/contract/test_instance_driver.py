"""Contract suite for instance drivers: every registered driver runs a busybox system container.

Each test gets its own driver root and busybox rootfs under a fresh directory (so parallel runs
never share an lxcpath) and uuid-derived host names (cgroup names are host-global). A finalizer
thaws, kills and deletes every instance a test created, even when the test failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import shutil
import signal
import struct
import tempfile
import termios
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from busybox_rootfs import MARKER, build_busybox_rootfs, shift_ownership

from schemas.errors import BadRequest, Conflict, NotFound, WarrenError
from services.instance.drivers import DRIVERS, InstanceDriver
from services.instance.drivers.spec import (
    GATE_CLOSED_CODE,
    GATE_OPEN,
    ExecRequest,
    IdMap,
    InstanceSpec,
    Limits,
    Status,
    host_name_for,
)

BUSYBOX = Path("/bin/busybox")
CGROUP_ROOT = Path("/sys/fs/cgroup")
SHIFT = 1_000_000
MiB = 1024 * 1024
# A guard against a hang (the failure mode this suite looks for), not a speed requirement.
HANG_GUARD = 60.0

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="instance drivers need root"),
    pytest.mark.skipif(not BUSYBOX.exists(), reason="busybox-static is not installed"),
]

# privileged / unprivileged with an idmapped mount / unprivileged on a chowned ("shifted") copy
MODES = ["privileged", "idmapped", "shifted"]


def payload_cgroup(name: str, controller: str) -> Path:
    return CGROUP_ROOT / controller / f"lxc.payload.{name}"


def lxc_cgroups(name: str) -> list[Path]:
    return sorted(CGROUP_ROOT.glob(f"*/lxc.*.{name}"))


class Host:
    """A driver under test plus the instances and rootfs copies one test made."""

    def __init__(self, driver: InstanceDriver, workdir: Path, mode: str) -> None:
        self.driver = driver
        self.workdir = workdir
        self.mode = mode
        self.names: list[str] = []

    def spec(self, limits: Limits | None = None, **extra: object) -> InstanceSpec:
        name = host_name_for(uuid.uuid4())
        rootfs = self.workdir / "rootfs" / name
        build_busybox_rootfs(rootfs)
        if self.mode == "shifted":
            shift_ownership(rootfs, SHIFT)
        self.names.append(name)
        return InstanceSpec(
            name=name,
            rootfs=rootfs,
            privileged=self.mode == "privileged",
            idmap=None if self.mode == "privileged" else IdMap(host_uid=SHIFT, host_gid=SHIFT),
            rootfs_idmapped_mount=self.mode == "idmapped",
            limits=limits or Limits(),
            hostname="c1",
            **extra,
        )

    async def run(self, name: str, command: list[str], **kwargs: object) -> tuple[int, str, str]:
        """Exec a command and return its exit code, stdout and stderr."""
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            request = ExecRequest(command=command, stdout=out_w, stderr=err_w, **kwargs)
            code = await asyncio.wait_for(self.driver.exec(name, request), HANG_GUARD)
        finally:
            os.close(out_w)
            os.close(err_w)
        with os.fdopen(out_r, "rb") as out, os.fdopen(err_r, "rb") as err:
            return code, out.read().decode(), err.read().decode()

    async def cleanup(self) -> None:
        for name in self.names:
            try:
                if await self.driver.exists(name):
                    await self.driver.stop(name, force=True)
                    await self.driver.delete(name)
            except Exception as exc:  # keep cleaning the others; report at the end
                print(f"cleanup of {name} failed: {exc!r}")
        # Last resort for anything a failed delete left behind in the host-global cgroup tree.
        for name in self.names:
            for path in lxc_cgroups(name):
                for sub in sorted(path.rglob("*"), reverse=True):
                    if sub.is_dir():
                        sub.rmdir()
                path.rmdir()


@pytest.fixture(params=sorted(DRIVERS))
def driver_class(request: pytest.FixtureRequest) -> type[InstanceDriver]:
    return DRIVERS[request.param]


@pytest.fixture
def workdir() -> Path:
    # Not pytest's tmp_path: it is mode 0700 and an unprivileged container's root (a high host
    # uid) must traverse the path to its rootfs.
    path = Path(tempfile.mkdtemp(prefix="warren-driver-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def _host(driver_class: type[InstanceDriver], workdir: Path, mode: str) -> AsyncIterator:
    host = Host(driver_class(workdir / "instances"), workdir, mode)
    try:
        yield host
    finally:
        await host.cleanup()


@pytest.fixture(params=MODES)
async def host(driver_class, workdir, request) -> AsyncIterator[Host]:
    """A driver in each privilege mode."""
    async for item in _host(driver_class, workdir, request.param):
        yield item


@pytest.fixture
async def unprivileged(driver_class, workdir) -> AsyncIterator[Host]:
    """A driver with unprivileged (idmapped) instances: for tests that need only one mode."""
    async for item in _host(driver_class, workdir, "idmapped"):
        yield item


def own_cgroups() -> str:
    return Path("/proc/self/cgroup").read_text()


def read_cgroup(name: str, controller: str, key: str) -> str:
    return (payload_cgroup(name, controller) / key).read_text().strip()


async def test_lifecycle_exec_and_delete(host: Host):
    spec = host.spec(environment={"GREETING": "hello"})
    driver = host.driver
    await driver.create(spec)
    assert await driver.exists(spec.name)
    assert (await driver.state(spec.name)).status is Status.STOPPED

    home = own_cgroups()
    state = await driver.start(spec.name)
    assert state.status is Status.RUNNING
    assert state.pid > 1

    assert await host.run(spec.name, ["sh", "-c", "echo hi; exit 3"]) == (3, "hi\n", "")
    code, out, err = await host.run(
        spec.name,
        ["sh", "-c", 'echo "$FOO" "$GREETING"; pwd; id -u; echo oops >&2; hostname'],
        environment={"FOO": "bar", "GREETING": "hi there"},
        cwd="/tmp",
        uid=65534,
        gid=65534,
    )
    # exec sees the instance's environment, overridden by the request's
    assert (code, out, err) == (0, "bar hi there\n/tmp\n65534\nc1\n", "oops\n")
    assert (await host.run(spec.name, ["sh", "-c", "echo $GREETING"]))[1] == "hello\n"
    code, out, _ = await host.run(spec.name, ["cat", "/proc/1/environ"])
    assert code == 0 and "GREETING=hello" in out

    # Starting and exec'ing leave the calling process in its own cgroups (python-lxc's start
    # moves its caller into the container's monitor cgroup; the driver moves back).
    assert own_cgroups() == home

    state = await driver.state(spec.name)
    assert state.status is Status.RUNNING
    assert state.processes >= 2  # init and its respawned sleeper
    assert state.memory_usage > 0 and state.cpu_usage_ns > 0

    await driver.stop(spec.name, timeout=30)  # graceful: init powers off
    assert (await driver.state(spec.name)).status is Status.STOPPED
    assert not payload_cgroup(spec.name, "memory").exists()

    assert (await driver.start(spec.name)).status is Status.RUNNING
    assert (await host.run(spec.name, ["true"]))[0] == 0
    with pytest.raises(Conflict):
        await driver.delete(spec.name)  # refused while running
    await driver.stop(spec.name, force=True)
    assert (await driver.state(spec.name)).status is Status.STOPPED

    await driver.delete(spec.name)
    assert not await driver.exists(spec.name)
    assert not (driver.root / spec.name).exists()
    assert lxc_cgroups(spec.name) == []
    assert (spec.rootfs / "etc/marker").read_text() == MARKER
    assert (spec.rootfs / "bin/busybox").exists()
    with pytest.raises(NotFound):
        await driver.state(spec.name)


async def test_frozen_and_stopped_instances_refuse_exec(unprivileged: Host):
    spec = unprivileged.spec()
    driver = unprivileged.driver
    await driver.create(spec)
    with pytest.raises(BadRequest, match="not running"):
        await unprivileged.run(spec.name, ["true"])
    assert spec.name not in await driver.statuses()
    await driver.start(spec.name)
    assert (await driver.statuses())[spec.name] is Status.RUNNING

    await driver.freeze(spec.name)
    assert (await driver.state(spec.name)).status is Status.FROZEN
    assert await driver.status(spec.name) is Status.FROZEN
    assert (await driver.statuses())[spec.name] is Status.FROZEN
    with pytest.raises(BadRequest, match="frozen"):
        await unprivileged.run(spec.name, ["true"])  # refused, not hung (HANG_GUARD)
    await driver.unfreeze(spec.name)
    assert (await driver.state(spec.name)).status is Status.RUNNING
    assert (await driver.statuses())[spec.name] is Status.RUNNING
    assert (await unprivileged.run(spec.name, ["echo", "thawed"]))[:2] == (0, "thawed\n")

    # Racing freezes against execs: each exec runs (thawed later) or is refused; none hangs.
    outcomes = set()
    for _ in range(10):
        task = asyncio.ensure_future(unprivileged.run(spec.name, ["true"]))
        await driver.freeze(spec.name)
        await driver.unfreeze(spec.name)
        try:
            outcomes.add((await task)[0])
        except BadRequest:
            outcomes.add("refused")
    assert outcomes <= {0, "refused"}

    await driver.freeze(spec.name)
    await driver.stop(spec.name, timeout=30)  # a frozen instance is thawed, then shut down
    assert (await driver.state(spec.name)).status is Status.STOPPED
    assert spec.name not in await driver.statuses()


def read_pty(main: int) -> str:
    """Everything a pty's main end holds once the secondary end is closed everywhere."""
    chunks = []
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # EIO: no secondary end is open any more
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main)
    return b"".join(chunks).decode()


async def test_spawned_commands_take_signals_and_a_terminal(unprivileged: Host):
    driver = unprivileged.driver
    spec = unprivileged.spec()
    await driver.create(spec)
    await driver.start(spec.name)

    sleeper = await driver.spawn(spec.name, ExecRequest(command=["sleep", "600"]))
    assert sleeper.pid > 0
    sleeper.signal(signal.SIGTERM)
    assert await asyncio.wait_for(sleeper.wait(), HANG_GUARD) == 128 + signal.SIGTERM

    # Interactive: a shell on a pty (its controlling terminal: /dev/tty opens), sized by the
    # caller, reading what is typed.
    main, secondary = os.openpty()
    fcntl.ioctl(main, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    try:
        shell = await driver.spawn(
            spec.name,
            ExecRequest(command=["sh"], stdin=secondary, stdout=secondary, stderr=secondary),
        )
    finally:
        os.close(secondary)
    os.write(main, b"stty size; : </dev/tty && echo tty-$((1+1)); echo $((6*7)); exit 5\n")
    assert await asyncio.wait_for(shell.wait(), HANG_GUARD) == 5
    output = await asyncio.to_thread(read_pty, main)
    assert "40 120" in output and "tty-2" in output and "42" in output
    shell.signal(signal.SIGTERM)  # after the end: nothing happens


def proc_file(pid: int, name: str) -> str:
    return Path(f"/proc/{pid}/{name}").read_text()


def pid_of_command(command: str) -> int:
    """The one host process whose command line is ``command``."""
    argv = command.encode().split()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "cmdline").read_bytes().split(b"\0")[:-1] == argv:
                    found.append(int(entry.name))
    assert len(found) == 1, f"{command!r}: {found}"
    return found[0]


def cgroups_of(pid: int) -> list[str]:
    """The cgroup path of ``pid`` in each hierarchy (as the host sees it)."""
    return [line.split(":", 2)[2] for line in proc_file(pid, "cgroup").splitlines()]


async def test_spawned_commands_run_in_the_instances_cgroups(host: Host):
    # The limits apply to what exec runs: it sits in the payload cgroup of every hierarchy.
    driver = host.driver
    spec = host.spec(Limits(processes=100))
    await driver.create(spec)
    await driver.start(spec.name)
    payload = f"/lxc.payload.{spec.name}"
    # What a command forks at once, before a cgroup move (of any hierarchy) caught up with it.
    await asyncio.sleep(0.1)  # any grace period the start began is over
    forking = await driver.spawn(spec.name, ExecRequest(command=["sh", "-c", "sleep 602 & wait"]))
    plain = await driver.spawn(spec.name, ExecRequest(command=["sleep", "600"]))
    gate_r, gate_w = os.pipe()
    try:
        gated = await driver.spawn(spec.name, ExecRequest(command=["sleep", "600"], gate=gate_r))
    finally:
        os.close(gate_r)
    os.write(gate_w, GATE_OPEN)
    os.close(gate_w)
    # A command that ends at once, leaving what it forked behind (a daemon, say); spawned
    # once the others are settled, so that no move made for them sweeps up after it.
    await asyncio.sleep(0.3)
    detaching = await driver.spawn(spec.name, ExecRequest(command=["sh", "-c", "sleep 603 &"]))
    try:
        assert await asyncio.wait_for(detaching.wait(), HANG_GUARD) == 0
        await asyncio.sleep(0.3)  # the gated one has exec'd by now
        children = proc_file(forking.pid, f"task/{forking.pid}/children").split()
        for pid in (plain.pid, gated.pid, int(children[0]), pid_of_command("sleep 603")):
            assert proc_file(pid, "comm").strip() == "sleep"
            assert all(path.startswith(payload) for path in cgroups_of(pid)), cgroups_of(pid)
            procs = payload_cgroup(spec.name, "pids") / "cgroup.procs"
            assert str(pid) in procs.read_text().split()
    finally:
        for process in (plain, gated, forking):
            process.signal(signal.SIGKILL)
            await asyncio.wait_for(process.wait(), HANG_GUARD)


async def test_a_gated_command_runs_only_once_its_gate_opens(unprivileged: Host):
    # exec spawns the command while the client connects; it must not run before it is let.
    driver = unprivileged.driver
    spec = unprivileged.spec()
    await driver.create(spec)
    await driver.start(spec.name)
    out_r, out_w = os.pipe()
    os.set_blocking(out_r, False)
    gate_r, gate_w = os.pipe()
    try:
        command = ["sh", "-c", "echo $FOO; id -u; exit 4"]
        request = ExecRequest(
            command=command, environment={"FOO": "bar"}, uid=7, stdout=out_w, gate=gate_r
        )
        process = await driver.spawn(spec.name, request)
    finally:
        os.close(out_w)
        os.close(gate_r)
    await asyncio.sleep(0.3)
    with pytest.raises(BlockingIOError):  # nothing written: it has not run
        os.read(out_r, 100)
    os.write(gate_w, GATE_OPEN)
    os.close(gate_w)
    assert await asyncio.wait_for(process.wait(), HANG_GUARD) == 4
    os.set_blocking(out_r, True)
    with os.fdopen(out_r, "rb") as out:
        assert out.read() == b"bar\n7\n"  # its environment, as the requested user

    # A gate closed without opening: the command never runs.
    gate_r, gate_w = os.pipe()
    try:
        request = ExecRequest(command=["touch", "/never"], gate=gate_r)
        process = await driver.spawn(spec.name, request)
    finally:
        os.close(gate_r)
    os.close(gate_w)
    assert await asyncio.wait_for(process.wait(), HANG_GUARD) == GATE_CLOSED_CODE
    assert not (spec.rootfs / "never").exists()

    # A missing command behind a gate fails as an ungated one does.
    gate_r, gate_w = os.pipe()
    try:
        process = await driver.spawn(spec.name, ExecRequest(command=["nope"], gate=gate_r))
    finally:
        os.close(gate_r)
    os.write(gate_w, GATE_OPEN)
    os.close(gate_w)
    ungated = await unprivileged.run(spec.name, ["nope"])
    assert await asyncio.wait_for(process.wait(), HANG_GUARD) == ungated[0] == 127


async def test_many_long_running_commands_leave_the_driver_free(unprivileged: Host):
    # Waiting for a command must not hold a worker thread: more sleepers than the default
    # thread pool has threads, and the driver still answers at once.
    driver = unprivileged.driver
    spec = unprivileged.spec()
    await driver.create(spec)
    await driver.start(spec.name)
    count = (os.cpu_count() or 1) + 8
    sleepers = [
        await driver.spawn(spec.name, ExecRequest(command=["sleep", "600"])) for _ in range(count)
    ]
    waits = [asyncio.ensure_future(s.wait()) for s in sleepers]
    await asyncio.sleep(0.2)
    state = await asyncio.wait_for(driver.state(spec.name), 10)
    assert state.processes >= count + 1
    for sleeper in sleepers:
        sleeper.signal(signal.SIGKILL)
    codes = await asyncio.wait_for(asyncio.gather(*waits), HANG_GUARD)
    assert codes == [128 + signal.SIGKILL] * count


async def test_statuses_while_instances_come_and_go(unprivileged: Host):
    # A listing racing a stop and delete (the monitor lingers a moment after the stop) must
    # leave the vanishing instance out, never fail.
    driver = unprivileged.driver
    specs = [unprivileged.spec() for _ in range(6)]
    for spec in specs:
        await driver.create(spec)
        await driver.start(spec.name)
    done = asyncio.Event()
    listings = 0

    async def lister() -> None:
        nonlocal listings
        while not done.is_set():
            await driver.statuses()
            listings += 1

    task = asyncio.ensure_future(lister())
    try:
        for spec in specs:
            await driver.stop(spec.name, timeout=0, force=True)
            await driver.delete(spec.name)
    finally:
        done.set()
    await asyncio.wait_for(task, HANG_GUARD)  # raises whatever a listing raised
    assert listings > 0
    assert not set(await driver.statuses()) & {s.name for s in specs}


async def test_logs_and_the_console(unprivileged: Host):
    driver = unprivileged.driver
    spec = unprivileged.spec()
    await driver.create(spec)
    await driver.start(spec.name)
    logs = await driver.log_files(spec.name)
    assert {"lxc.log", "console.log"} <= set(logs)
    await unprivileged.run(spec.name, ["sh", "-c", "echo hello-$((6*7)) > /dev/console"])
    # The monitor copies console output to the log as it comes: poll for it.
    for _ in range(600):
        if logs["console.log"].exists() and b"hello-42" in logs["console.log"].read_bytes():
            break
        await asyncio.sleep(0.05)
    assert b"hello-42" in logs["console.log"].read_bytes()


@pytest.mark.parametrize("victim", ["init", "monitor"])
async def test_an_instance_killed_behind_the_drivers_back_is_seen_stopped(
    unprivileged: Host, victim: str
):
    driver = unprivileged.driver
    spec = unprivileged.spec()
    await driver.create(spec)
    state = await driver.start(spec.name)
    if victim == "init":
        os.kill(state.pid, signal.SIGKILL)
    else:
        monitors = (CGROUP_ROOT / "pids" / f"lxc.monitor.{spec.name}" / "cgroup.procs").read_text()
        for pid in {int(pid) for pid in monitors.split()} - {os.getpid()}:
            os.kill(pid, signal.SIGKILL)
    for _ in range(600):
        if (await driver.state(spec.name)).status is Status.STOPPED:
            break
        await asyncio.sleep(0.05)
    assert (await driver.state(spec.name)).status is Status.STOPPED
    assert (await driver.start(spec.name)).status is Status.RUNNING  # and it starts again
    await driver.stop(spec.name, force=True)
    await driver.delete(spec.name)
    assert lxc_cgroups(spec.name) == []


async def test_limits_at_start_and_live(unprivileged: Host):
    driver = unprivileged.driver
    if not driver.capabilities.live_limits:
        pytest.skip("driver cannot change limits live")
    spec = unprivileged.spec(
        Limits(cpu=1, cpu_allowance="50ms/100ms", memory=256 * MiB, processes=200)
    )
    await driver.create(spec)
    await driver.start(spec.name)
    name = spec.name
    assert read_cgroup(name, "memory", "memory.limit_in_bytes") == str(256 * MiB)
    assert read_cgroup(name, "pids", "pids.max") == "200"
    assert read_cgroup(name, "cpuset", "cpuset.cpus") == "0"
    assert read_cgroup(name, "cpu", "cpu.cfs_quota_us") == "50000"

    await driver.set_limits(name, Limits(memory=32 * MiB, processes=50))
    assert read_cgroup(name, "memory", "memory.limit_in_bytes") == str(32 * MiB)
    assert read_cgroup(name, "pids", "pids.max") == "50"
    assert read_cgroup(name, "cpu", "cpu.cfs_quota_us") == "-1"  # absent limits are lifted
    # Enforced: a process touching 64 MiB is killed by the OOM killer, a small one is fine.
    big = ["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"]
    code, _, _ = await unprivileged.run(name, big)
    assert code != 0
    assert (
        await unprivileged.run(name, ["dd", "if=/dev/zero", "of=/dev/null", "bs=1M", "count=1"])
    )[0] == 0

    await driver.set_limits(name, Limits(memory=192 * MiB))  # raising works too (memsw first)
    assert read_cgroup(name, "memory", "memory.limit_in_bytes") == str(192 * MiB)
    assert (await unprivileged.run(name, big))[0] == 0
    await driver.set_limits(name, Limits())
    assert int(read_cgroup(name, "memory", "memory.limit_in_bytes")) > 1 << 40
    assert read_cgroup(name, "pids", "pids.max") == "max"


async def test_list_sees_exactly_the_instances_present(unprivileged: Host):
    driver = unprivileged.driver
    assert await driver.list() == []
    first, second = unprivileged.spec(), unprivileged.spec()
    await driver.create(first)
    await driver.create(second)
    await driver.start(second.name)
    assert await driver.list() == sorted([first.name, second.name])
    await driver.delete(first.name)
    assert await driver.list() == [second.name]
    # A crash half-way through create leaves a bare directory: listed, not existing, deletable.
    half = host_name_for(uuid.uuid4())
    unprivileged.names.append(half)
    (driver.root / half).mkdir()
    assert await driver.list() == sorted([second.name, half])
    assert not await driver.exists(half)
    await driver.delete(half)
    assert await driver.list() == [second.name]
    # A driver root of another Warren (another lxcpath) sees none of them.
    other = type(driver)(unprivileged.workdir / "elsewhere")
    assert await other.list() == []


async def test_bad_requests_change_nothing(unprivileged: Host):
    driver = unprivileged.driver
    spec = unprivileged.spec()
    missing = host_name_for(uuid.uuid4())
    for call in (
        driver.start(missing),
        driver.stop(missing),
        driver.state(missing),
        driver.delete(missing),
        driver.exec(missing, ExecRequest(command=["true"])),
    ):
        with pytest.raises(NotFound):
            await call
    with pytest.raises(BadRequest):
        await driver.create(spec.model_copy(update={"rootfs": spec.rootfs / "nope"}))
    with pytest.raises(BadRequest):
        await driver.state("../etc")
    # Host failures come out as WarrenErrors (DriverError), never as raw OSErrors.
    (unprivileged.workdir / "a-file").write_text("")
    with pytest.raises(WarrenError) as failure:
        await type(driver)(unprivileged.workdir / "a-file").create(spec)
    assert failure.value.code == 500
    assert await driver.list() == []

    await driver.create(spec)
    with pytest.raises(Conflict):
        await driver.create(spec)
    await driver.start(spec.name)
    with pytest.raises(Conflict):
        await driver.start(spec.name)
    assert await driver.list() == [spec.name]


async def test_a_failed_start_is_a_clear_error_and_leaves_nothing_behind(unprivileged: Host):
    driver = unprivileged.driver
    spec = unprivileged.spec(init=("/no/such/init",))
    await driver.create(spec)
    with pytest.raises(WarrenError, match="no/such/init") as failure:
        await driver.start(spec.name)
    assert failure.value.code == 500
    assert (await driver.state(spec.name)).status is Status.STOPPED
    # Fixed by a new definition, it starts.
    await driver.update(spec.model_copy(update={"init": ("/sbin/init",)}))
    assert (await driver.start(spec.name)).status is Status.RUNNING
    await driver.stop(spec.name, force=True)
    await driver.delete(spec.name)
    assert lxc_cgroups(spec.name) == []
    assert await driver.list() == []
