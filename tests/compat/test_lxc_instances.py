"""Containers through the real LXD 5.0 ``lxc`` client: the user-level scenario.

Import the busybox image with an alias, launch, list (default columns, ``-c``, csv, filters),
exec (exit codes, stdin, env, an interactive shell on a pty), push and pull files (single and
``-r``), set a memory limit and watch it bite, stop/start/restart/pause, rename, delete,
info (with the log), config show, storage; and the errors a user makes.

Every test makes its own containers (``unique`` names) and removes them, so one failure does not
cascade. Run with ``WARREN_COMPAT_LXD_SOCKET=<lxd unix.socket>`` to check the expectations
against a real LXD (see LXD-REFERENCE.md, "Instances").
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import io
import os
import pty
import re
import select
import shutil
import stat
import struct
import subprocess
import termios
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from _helpers import (
    LxcMonitor,
    LxdReference,
    lifecycle,
    lxc_ok,
    mentions,
    metadata,
    prime_listener,
    unique,
)
from _helpers import status_of as http_status

from services.image.builders.busybox import build_busybox

pytestmark = [
    pytest.mark.skipif(shutil.which("lxc") is None, reason="the lxc client is missing"),
    pytest.mark.skipif(not Path("/bin/busybox").exists(), reason="busybox-static not installed"),
    pytest.mark.timeout(180),
]

# awk doubling a string up to 2**27 bytes: ~134 MB resident at the end, ~0.1 s.
ALLOCATE_134MB = 'BEGIN { s = "x"; while (length(s) < 100000000) s = s s; print length(s) }'
ALLOCATE_16MB = 'BEGIN { s = "x"; while (length(s) < 10000000) s = s s; print length(s) }'


@dataclass(frozen=True)
class Image:
    alias: str
    fingerprint: str


@pytest.fixture(scope="module")
def image(target: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Image]:
    """The busybox image, built by the repository's builder and imported with ``lxc``."""
    path = Path(build_busybox(tmp_path_factory.mktemp("busybox")).path)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    alias = unique("busybox")
    # A shared reference daemon may hold the same bytes already (built in the same second).
    owned = http_status(target, f"/1.0/images/{sha}") == 404
    if owned:
        out = lxc_ok(target, "image", "import", str(path), "--alias", alias)
        assert f"Image imported with fingerprint: {sha}" in out
    else:
        lxc_ok(target, "image", "alias", "create", alias, sha)
    yield Image(alias, sha)
    if owned:
        target.lxc("image", "delete", sha)
    else:
        target.lxc("image", "alias", "delete", alias)


class Containers:
    """Launches containers for one test and force-deletes every one of them afterwards."""

    def __init__(self, target: Any, image: Image) -> None:
        self.target = target
        self.image = image
        self.names: list[str] = []

    def track(self, name: str) -> str:
        self.names.append(name)
        return name

    def launch(self, prefix: str = "c", *options: str, start: bool = True) -> str:
        name = self.track(unique(prefix))
        verb = "launch" if start else "init"
        out = lxc_ok(self.target, verb, self.image.alias, name, *options)
        assert f"Creating {name}" in out
        if start:
            assert f"Starting {name}" in out
        return name

    def cleanup(self) -> None:
        for name in self.names:
            if http_status(self.target, f"/1.0/instances/{name}") != 404:
                self.target.lxc("delete", "--force", name)


@pytest.fixture
def containers(target: Any, image: Image) -> Iterator[Containers]:
    made = Containers(target, image)
    try:
        yield made
    finally:
        made.cleanup()


def instance(target: Any, name: str) -> dict[str, Any]:
    return metadata(target, f"/1.0/instances/{name}")


def api_state(target: Any, name: str) -> dict[str, Any]:
    return metadata(target, f"/1.0/instances/{name}/state")


def lxc_fails(target: Any, *args: str, input: str | None = None) -> str:
    """Run ``lxc``; it must fail with status 1. Returns its stderr."""
    result = target.lxc(*args, input=input)
    assert result.returncode == 1, (
        f"lxc {' '.join(args)} should have failed:\n{result.stdout}\n{result.stderr}"
    )
    # A hint may come before the error (no network attached) or after it (a failed state
    # change may add "Try `lxc info --show-log <name>` for more info").
    lines = result.stderr.splitlines()
    assert any(line.startswith("Error: ") for line in lines), result.stderr
    return result.stderr


def csv_rows(output: str) -> list[list[str]]:
    return [row for row in csv.reader(io.StringIO(output)) if row]


def listed(target: Any, *args: str) -> dict[str, list[str]]:
    """``lxc list <args> --format csv`` as ``{name: row}``."""
    return {row[0]: row for row in csv_rows(lxc_ok(target, "list", *args, "--format", "csv"))}


def sh(target: Any, name: str, script: str) -> str:
    """Run a shell script in the container; it must succeed. Returns stdout."""
    return lxc_ok(target, "exec", name, "--", "sh", "-c", script)


# -- launch and list ------------------------------------------------------------------------
def test_launch_from_alias(target: Any, containers: Containers, image: Image) -> None:
    name = containers.launch("c1")
    got = instance(target, name)
    assert got["status"] == "Running" and got["status_code"] == 103
    assert got["type"] == "container" and got["architecture"] == "x86_64"
    assert got["config"]["volatile.base_image"] == image.fingerprint
    assert got["config"]["image.os"] == "busybox"
    assert got["profiles"] == ["default"]
    state = api_state(target, name)
    assert state["status"] == "Running" and state["pid"] > 0
    assert sh(target, name, "echo ready") == "ready\n"


def test_list_columns_and_formats(target: Any, containers: Containers) -> None:
    name = containers.launch("ls")
    table = lxc_ok(target, "list")
    header = next(line for line in table.splitlines() if "NAME" in line)
    assert [c.strip() for c in header.strip("|").split("|")] == [
        "NAME",
        "STATE",
        "IPV4",
        "IPV6",
        "TYPE",
        "SNAPSHOTS",
    ]
    row = next(line for line in table.splitlines() if f"| {name} " in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[0] == name and cells[1] == "RUNNING"
    assert cells[4] == "CONTAINER" and cells[5] == "0"

    narrow = lxc_ok(target, "list", "-c", "ns4t")
    header = next(line for line in narrow.splitlines() if "NAME" in line)
    assert [c.strip() for c in header.strip("|").split("|")] == ["NAME", "STATE", "IPV4", "TYPE"]

    row = listed(target)[name]
    assert len(row) == 6 and row[1] == "RUNNING" and row[4:] == ["CONTAINER", "0"]
    row = listed(target, "-c", "ns4t")[name]
    assert len(row) == 4 and row[1] == "RUNNING" and row[3] == "CONTAINER"
    assert listed(target, "-c", "n")[name] == [name]

    documents = yaml.safe_load(lxc_ok(target, "list", "--format", "json"))
    mine = next(d for d in documents if d["name"] == name)
    assert mine["status"] == "Running" and mine["state"]["status"] == "Running"
    assert mine["expanded_devices"]["root"]["type"] == "disk"


def test_list_filters(target: Any, containers: Containers) -> None:
    prefix = unique("flt")
    running = containers.track(f"{prefix}-a")
    lxc_ok(target, "launch", containers.image.alias, running)
    stopped = containers.track(f"{prefix}-b")
    lxc_ok(target, "init", containers.image.alias, stopped)

    # status=... is a server-side filter (GET /1.0/instances?filter=status+eq+running).
    names = listed(target, "status=running", "-c", "ns")
    assert names.get(running) == [running, "RUNNING"] and stopped not in names
    names = listed(target, "status=stopped", "-c", "ns")
    assert names.get(stopped) == [stopped, "STOPPED"] and running not in names
    # A bare word matches names from their start (the client filters the full list).
    assert set(listed(target, prefix, "-c", "n")) == {running, stopped}
    assert set(listed(target, running, "-c", "n")) == {running}
    assert listed(target, unique("nothing"), "-c", "n") == {}


# -- exec -----------------------------------------------------------------------------------
def test_exec_exit_code_and_streams(target: Any, containers: Containers) -> None:
    name = containers.launch("ex")
    result = target.lxc("exec", name, "--", "sh", "-c", "echo hi; exit 3")
    assert result.returncode == 3 and result.stdout == "hi\n", result
    result = target.lxc("exec", name, "--", "sh", "-c", "echo out; echo err >&2")
    assert (result.returncode, result.stdout, result.stderr) == (0, "out\n", "err\n")
    # stdin is not a terminal here: non-interactive exec, stdin carried on its own websocket.
    result = target.lxc("exec", name, "--", "cat", input="line 1\nline 2\n")
    assert (result.returncode, result.stdout) == (0, "line 1\nline 2\n")
    assert lxc_ok(target, "exec", name, "--env", "FOO=bar baz", "--", "sh", "-c", "echo $FOO") == (
        "bar baz\n"
    )
    assert lxc_ok(target, "exec", name, "--cwd", "/tmp", "--", "pwd") == "/tmp\n"
    assert lxc_ok(target, "exec", name, "--", "id", "-u") == "0\n"
    # A command that does not exist: LXD reports 127 like a shell.
    assert target.lxc("exec", name, "--", "/no/such/binary").returncode == 127
    # Output still in flight when the command ends reaches the client whole, on both streams.
    burst = "head -c 20000000 /dev/zero; echo end >&2; exit 4"
    result = target.lxc("exec", name, "--", "sh", "-c", burst)
    assert (result.returncode, len(result.stdout), result.stderr) == (4, 20_000_000, "end\n")


def run_on_pty(env: dict[str, str], argv: list[str], keys: bytes, timeout: float = 30):
    """Run ``argv`` with a pty (80x24) as its terminal, type ``keys``; return output and status."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    proc = subprocess.Popen(
        argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
    )
    os.close(slave)
    output = b""
    try:
        os.write(master, keys)
        deadline = time.monotonic() + timeout
        exited_at = None
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    data = os.read(master, 4096)
                except OSError:  # EIO: every holder of the slave side is gone
                    break
                if not data:
                    break
                output += data
            elif proc.poll() is not None:
                # Drain what the client wrote just before it exited, then stop.
                exited_at = exited_at or time.monotonic()
                if time.monotonic() - exited_at > 0.5:
                    break
        return output.decode(errors="replace"), proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


def test_exec_interactive_shell_on_a_pty(target: Any, containers: Containers) -> None:
    name = containers.launch("pty")
    env = {**target.env, "TERM": "xterm-256color"}
    # Typed before the remote shell is up: the local terminal echoes it once, the remote once.
    keys = b"stty size; echo $TERM; tty; echo $((6*7)); exit 7\n"
    output, code = run_on_pty(env, ["lxc", "exec", name, "--", "sh"], keys)
    lines = [line.strip() for line in output.splitlines()]
    assert code == 7, output
    assert "42" in lines, output
    assert "24 80" in lines, output  # the client sent the window size
    assert "xterm-256color" in lines, output
    assert any(line.startswith("/dev/pts/") for line in lines), output


# -- files ----------------------------------------------------------------------------------
def test_file_push_and_pull_single(target: Any, containers: Containers, tmp_path: Path) -> None:
    name = containers.launch("fp")
    text = tmp_path / "hello.txt"
    text.write_text("hello from the host\n")
    lxc_ok(target, "file", "push", str(text), f"{name}/root/hello.txt")
    assert sh(target, name, "cat /root/hello.txt") == "hello from the host\n"

    blob = tmp_path / "blob.bin"
    blob.write_bytes(os.urandom(200_000) + b"\0\r\n\xff")
    lxc_ok(target, "file", "push", "--mode", "0640", str(blob), f"{name}/tmp/blob.bin")
    assert sh(target, name, "stat -c '%a %s %u' /tmp/blob.bin") == "640 200004 0\n"
    pulled = tmp_path / "pulled.bin"
    lxc_ok(target, "file", "pull", f"{name}/tmp/blob.bin", str(pulled))
    assert pulled.read_bytes() == blob.read_bytes()

    # Pushing over an existing file replaces its content.
    text.write_text("second version\n")
    lxc_ok(target, "file", "push", str(text), f"{name}/root/hello.txt")
    lxc_ok(target, "file", "pull", f"{name}/root/hello.txt", str(tmp_path / "back.txt"))
    assert (tmp_path / "back.txt").read_text() == "second version\n"

    error = lxc_fails(target, "file", "pull", f"{name}/root/missing", str(tmp_path / "x"))
    assert "Not Found" in error or "not found" in error


def make_tree(root: Path) -> dict[str, tuple[str, bytes | str]]:
    """A small tree: nested directories, files with their own modes, a relative symlink."""
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "a.txt").write_text("one\n")
    (root / "sub" / "b.txt").write_text("two\n")
    (root / "sub" / "b.txt").chmod(0o600)
    (root / "sub" / "deeper" / "c.bin").write_bytes(b"\x00\x01\x02")
    (root / "link").symlink_to("a.txt")
    return {
        "a.txt": ("644", b"one\n"),
        "sub": ("755", ""),
        "sub/b.txt": ("600", b"two\n"),
        "sub/deeper": ("755", ""),
        "sub/deeper/c.bin": ("644", b"\x00\x01\x02"),
    }


def test_file_push_and_pull_recursive(target: Any, containers: Containers, tmp_path: Path):
    name = containers.launch("fr")
    src = tmp_path / "tree"
    src.mkdir()
    src.chmod(0o755)
    expected = make_tree(src)
    # `push -r <dir> c/root/` makes /root/tree (the directory's own name under the target).
    lxc_ok(target, "file", "push", "-r", str(src), f"{name}/root/")
    listing = sh(target, name, "cd /root/tree && find . | sort")
    assert listing.split() == [
        ".",
        "./a.txt",
        "./link",
        "./sub",
        "./sub/b.txt",
        "./sub/deeper",
        "./sub/deeper/c.bin",
    ]
    assert sh(target, name, "cat /root/tree/sub/b.txt") == "two\n"
    assert sh(target, name, "stat -c %a /root/tree/sub/b.txt") == "600\n"
    assert sh(target, name, "readlink /root/tree/link") == "a.txt\n"
    assert sh(target, name, "cat /root/tree/link") == "one\n"

    dest = tmp_path / "pulled"
    lxc_ok(target, "file", "pull", "-r", f"{name}/root/tree", str(dest))
    back = dest / "tree"
    for rel, (mode, content) in expected.items():
        path = back / rel
        assert oct(stat.S_IMODE(path.lstat().st_mode))[2:] == mode, rel
        if content:
            assert path.read_bytes() == content, rel
        else:
            assert path.is_dir(), rel
    # LXD 5.0.2 hands a symlink back with its target made absolute (/root/tree/a.txt).
    assert (back / "link").is_symlink()
    assert os.readlink(back / "link") in ("a.txt", "/root/tree/a.txt")


# -- limits ---------------------------------------------------------------------------------
@pytest.mark.parametrize("when", ["running", "before-start"])
def test_memory_limit_is_enforced(target: Any, containers: Containers, when: str) -> None:
    name = containers.launch("mem", start=when == "running")
    if when == "running":
        # Without a limit the 134 MB allocation succeeds.
        assert lxc_ok(target, "exec", name, "--", "awk", ALLOCATE_134MB) == "134217728\n"
    lxc_ok(target, "config", "set", name, "limits.memory", "64MB")
    assert lxc_ok(target, "config", "get", name, "limits.memory") == "64MB\n"
    assert instance(target, name)["config"]["limits.memory"] == "64MB"
    if when != "running":
        lxc_ok(target, "start", name)
    killed = target.lxc("exec", name, "--", "awk", ALLOCATE_134MB)
    assert killed.returncode != 0 and "134217728" not in killed.stdout, killed
    assert killed.returncode == 137  # SIGKILL from the OOM killer, reported like a shell
    assert lxc_ok(target, "exec", name, "--", "awk", ALLOCATE_16MB) == "16777216\n"
    # LXD 5.0.2 leaves /sys/fs/cgroup empty inside (cgroup:mixed on this v1/v2 hybrid); a
    # manager that mounts the container's cgroup there must show the limit.
    inside = sh(target, name, "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null; :")
    assert inside in ("", "64000000\n")


# -- state changes --------------------------------------------------------------------------
def test_stop_start_restart(target: Any, containers: Containers) -> None:
    name = containers.launch("st")
    first_pid = api_state(target, name)["pid"]
    lxc_ok(target, "stop", name)
    got = instance(target, name)
    assert (got["status"], got["status_code"]) == ("Stopped", 102)
    assert listed(target, "-c", "ns")[name] == [name, "STOPPED"]
    assert "The instance is already stopped" in lxc_fails(target, "stop", name)
    assert "Instance is not running" in lxc_fails(target, "exec", name, "--", "true")

    lxc_ok(target, "start", name)
    assert instance(target, name)["status"] == "Running"
    assert "The instance is already running" in lxc_fails(target, "start", name)
    second_pid = api_state(target, name)["pid"]
    assert second_pid > 0 and second_pid != first_pid

    lxc_ok(target, "restart", name)
    assert instance(target, name)["status"] == "Running"
    third_pid = api_state(target, name)["pid"]
    assert third_pid > 0 and third_pid != second_pid
    assert sh(target, name, "echo back") == "back\n"

    lxc_ok(target, "stop", "--force", name)
    assert instance(target, name)["status"] == "Stopped"


def test_pause_and_resume(target: Any, containers: Containers) -> None:
    name = containers.launch("pz")
    lxc_ok(target, "pause", name)
    got = instance(target, name)
    assert (got["status"], got["status_code"]) == ("Frozen", 110)
    assert listed(target, "-c", "ns")[name] == [name, "FROZEN"]
    assert "Instance is frozen" in lxc_fails(target, "exec", name, "--", "true")
    assert "The container is already frozen" in lxc_fails(target, "pause", name)
    # `lxc start` of a frozen instance sends "unfreeze".
    lxc_ok(target, "start", name)
    assert instance(target, name)["status"] == "Running"
    assert sh(target, name, "echo thawed") == "thawed\n"


def test_rename(target: Any, containers: Containers) -> None:
    name = containers.launch("rn")
    new = containers.track(unique("rn"))
    assert "Renaming of running container not allowed" in lxc_fails(target, "rename", name, new)
    lxc_ok(target, "stop", "--force", name)
    lxc_ok(target, "rename", name, new)
    assert http_status(target, f"/1.0/instances/{name}") == 404
    assert instance(target, new)["name"] == new
    names = listed(target, "-c", "n")
    assert new in names and name not in names
    lxc_ok(target, "start", new)
    assert sh(target, new, "echo renamed") == "renamed\n"

    other = containers.launch("rn", start=False)
    lxc_ok(target, "stop", "--force", new)
    assert f'Name "{other}" already in use' in lxc_fails(target, "rename", new, other)


def test_delete(target: Any, containers: Containers) -> None:
    name = containers.launch("del")
    # The client refuses by itself after a GET (LXD's server says the same with a 400).
    error = lxc_fails(target, "delete", name)
    assert "The instance is currently running, stop it first or pass --force" in error
    status, _, body = target.request("DELETE", f"/1.0/instances/{name}")
    assert (status, body["error"]) == (400, "Instance is running")
    assert instance(target, name)["status"] == "Running"
    lxc_ok(target, "delete", "--force", name)
    assert http_status(target, f"/1.0/instances/{name}") == 404
    assert name not in listed(target, "-c", "n")

    stopped = containers.launch("del", start=False)
    lxc_ok(target, "delete", stopped)
    assert http_status(target, f"/1.0/instances/{stopped}") == 404


def counts_dir_pools(target: Any) -> bool:
    """Whether the target reports a dir pool's disk usage: Warren does (the overlay's upper
    layer); LXD 5.0.2 only on pools with quotas (btrfs qgroups, zfs, lvm), ``disk: {}`` else."""
    return not isinstance(target, LxdReference)


def test_init_then_start(target: Any, containers: Containers) -> None:
    name = containers.launch("in", start=False)
    got = instance(target, name)
    assert got["status"] == "Stopped"
    if counts_dir_pools(target):  # a stopped instance has its root's usage too
        assert api_state(target, name)["disk"]["root"]["total"] == 0
    assert listed(target, "-c", "ns")[name] == [name, "STOPPED"]
    lxc_ok(target, "start", name)
    assert instance(target, name)["status"] == "Running"
    assert sh(target, name, "echo started") == "started\n"


# -- inspection -----------------------------------------------------------------------------
def test_info_and_log(target: Any, containers: Containers) -> None:
    name = containers.launch("inf")
    sh(target, name, "head -c 300000 /dev/zero > /root/blob")
    info = lxc_ok(target, "info", name)
    for line in (f"Name: {name}", "Status: RUNNING", "Type: container", "Architecture: x86_64"):
        assert line in info.splitlines(), info
    pid = api_state(target, name)["pid"]
    assert f"PID: {pid}" in info.splitlines()
    assert "Resources:" in info and "Processes:" in info and "Memory usage:" in info
    assert "Log:" not in info
    if counts_dir_pools(target):
        # What the root holds of its own (the file just written, not the image).
        assert "\n  Disk usage:\n" in info and re.search(r"^    root: [\d.]+\w*B$", info, re.M)
        usage = api_state(target, name)["disk"]["root"]["usage"]
        assert 300_000 <= usage < 2_000_000
        pool = instance(target, name)["expanded_devices"]["root"]["pool"]
        volume = metadata(target, f"/1.0/storage-pools/{pool}/volumes/container/{name}/state")
        # The container keeps writing a little (its DHCP lease, logs) between the two reads.
        assert volume["usage"]["total"] == 0
        assert abs(volume["usage"]["used"] - usage) < 100_000, (volume, usage)

    with_log = lxc_ok(target, "info", "--show-log", name)
    assert f"Name: {name}" in with_log
    assert "\nLog:\n" in with_log
    status, _, body = target.request("GET", f"/1.0/instances/{name}/logs")
    assert status == 200 and f"/1.0/instances/{name}/logs/lxc.log" in body["metadata"]


def test_config_show(target: Any, containers: Containers, image: Image) -> None:
    name = containers.launch("cfg", "-c", "user.note=from launch")
    expanded = yaml.safe_load(lxc_ok(target, "config", "show", name, "--expanded"))
    assert expanded["config"]["user.note"] == "from launch"
    assert expanded["config"]["volatile.base_image"] == image.fingerprint
    assert expanded["config"]["image.os"] == "busybox"
    assert expanded["devices"]["root"] == {"path": "/", "pool": "default", "type": "disk"}
    assert expanded["profiles"] == ["default"]
    assert expanded["ephemeral"] is False and expanded["architecture"] == "x86_64"
    plain = yaml.safe_load(lxc_ok(target, "config", "show", name))
    assert plain["devices"] == {}  # the root disk comes from the default profile
    assert plain["config"]["user.note"] == "from launch"


def test_storage_list_and_info(target: Any, containers: Containers) -> None:
    name = containers.launch("sto")
    pools = {row[0]: row for row in csv_rows(lxc_ok(target, "storage", "list", "--format", "csv"))}
    assert "default" in pools
    info = yaml.safe_load(lxc_ok(target, "storage", "info", "default"))
    assert info["info"]["name"] == "default" and info["info"]["driver"]
    assert "total space" in info["info"] and "space used" in info["info"]
    assert name in info["used by"]["instances"]
    assert "default" in info["used by"]["profiles"]


def test_lifecycle_events(target: Any, containers: Containers) -> None:
    name = containers.track(unique("ev"))
    source = f"/1.0/instances/{name}"
    monitor = LxcMonitor(target)
    try:
        prime_listener(target, lambda probe: mentions(monitor.events(), probe))
        lxc_ok(target, "launch", containers.image.alias, name)
        lxc_ok(target, "exec", name, "--", "true")
        lxc_ok(target, "pause", name)
        lxc_ok(target, "start", name)
        lxc_ok(target, "delete", "--force", name)
        events = monitor.wait_for(
            lambda evs: ("instance-deleted", source) in lifecycle(evs, {source}),
            "the instance-deleted event",
        )
    finally:
        monitor.stop()
    assert [action for action, _ in lifecycle(events, {source})] == [
        "instance-created",
        "instance-started",
        "instance-exec",
        "instance-paused",
        "instance-resumed",
        "instance-stopped",  # a forced stop; a clean `lxc stop` is "instance-shutdown"
        "instance-deleted",
    ]


# -- bad input ------------------------------------------------------------------------------
def test_unknown_config_key(target: Any, containers: Containers) -> None:
    name = containers.launch("bad", start=False)
    before = instance(target, name)["config"]
    assert "Unknown configuration key: foo.bar" in lxc_fails(
        target, "config", "set", name, "foo.bar", "1"
    )
    assert "lots" in lxc_fails(target, "config", "set", name, "limits.memory", "lots")
    assert instance(target, name)["config"] == before

    other = containers.track(unique("bad"))
    error = lxc_fails(target, "launch", containers.image.alias, other, "-c", "foo.bar=1")
    assert "Unknown configuration key: foo.bar" in error
    assert http_status(target, f"/1.0/instances/{other}") == 404


def test_launch_missing_image(target: Any, containers: Containers) -> None:
    name = containers.track(unique("noimg"))
    assert "Image not found" in lxc_fails(target, "launch", unique("missing-image"), name)
    assert http_status(target, f"/1.0/instances/{name}") == 404


def test_launch_duplicate_name(target: Any, containers: Containers) -> None:
    name = containers.launch("dup")
    created = instance(target, name)["created_at"]
    assert "already exists" in lxc_fails(target, "launch", containers.image.alias, name)
    assert "already exists" in lxc_fails(target, "init", containers.image.alias, name)
    got = instance(target, name)
    assert got["status"] == "Running" and got["created_at"] == created


def test_missing_instance(target: Any) -> None:
    name = unique("nope")
    for args in (
        ("info", name),
        ("exec", name, "--", "true"),
        ("stop", name),
        ("start", name),
        ("config", "show", name),
    ):
        assert "Instance not found" in lxc_fails(target, *args), args
    assert "Instance not found" in lxc_fails(target, "delete", name)


def test_instances_recursion(target: Any, containers: Containers) -> None:
    """What `lxc list` reads: recursion=1 (no state) and recursion=2 (state, snapshots)."""
    name = containers.launch("rec")
    assert f"/1.0/instances/{name}" in metadata(target, "/1.0/instances")
    full = {i["name"]: i for i in metadata(target, "/1.0/instances?recursion=1")}
    assert full[name]["status"] == "Running" and "state" not in full[name]
    assert full[name]["expanded_devices"]["root"]["type"] == "disk"
    deep = {i["name"]: i for i in metadata(target, "/1.0/instances?recursion=2")}
    state = deep[name]["state"]
    assert state["status"] == "Running" and state["pid"] > 0 and state["processes"] >= 1
    assert {"cpu", "disk", "memory", "network"} <= set(state)
    assert not deep[name]["snapshots"]  # null in LXD 5.0.2 when there are none
    one = metadata(target, f"/1.0/instances/{name}?recursion=1")  # what `lxc info` reads
    assert one["state"]["pid"] == state["pid"]
    filtered = metadata(target, "/1.0/instances?recursion=1&filter=status+eq+stopped")
    assert name not in {i["name"] for i in filtered}
