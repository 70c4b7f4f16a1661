"""The Debian bookworm image Warren builds boots as a system container under Warren.

What a user relies on, through the real ``lxc`` client: ``lxc launch`` brings the container up
to its init (sysvinit's ``/sbin/init``, from ``sysvinit-core``), which runs the boot scripts,
enters runlevel 2 and keeps a getty on the console; the container carries the instance's name;
``lxc exec`` runs commands (pipes and an interactive terminal); ``lxc stop`` is a clean halt by
the init, well within its timeout; ``lxc start`` boots it again. Unprivileged (the default) and
privileged.

Building the image takes about a minute and needs the Debian mirror, so this is opt-in
(``WARREN_TEST_DEBIAN=1``, as for the build test). ``WARREN_TEST_DEBIAN_IMAGE=<tarball>`` uses
an image already built by ``ops/build-image debian`` instead of building one.
"""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import signal
import time
from pathlib import Path

import pytest
from _helpers import lxc_ok, unique
from stack import Stack, wait_for

from services.image.builders.debian import build_debian

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(600),
    pytest.mark.skipif(
        os.environ.get("WARREN_TEST_DEBIAN") != "1", reason="set WARREN_TEST_DEBIAN=1"
    ),
    pytest.mark.skipif(os.geteuid() != 0, reason="containers need root"),
]

BOOT_TIMEOUT = 60
#: What a clean halt may take here (sysvinit's rc 0 in a minimal image: well under a second).
STOP_BUDGET = 10.0
CONSOLE_GETTY = "/sbin/getty --noclear 38400 console linux"


@pytest.fixture(scope="module")
def debian_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("WARREN_TEST_DEBIAN_IMAGE")
    if given:
        return Path(given)
    if shutil.which("debootstrap") is None:
        pytest.skip("debootstrap not installed")
    return Path(build_debian(tmp_path_factory.mktemp("debian-image")).path)


def run_in_terminal(stack: Stack, argv: list[str], keys: list[bytes], timeout: float = 30):
    """Run ``lxc argv`` on a pseudo-terminal as a user at a shell would, typing ``keys`` one
    line at a time once the previous output has settled; returns (exit code, all output)."""
    pid, main = pty.fork()
    if pid == 0:  # the child: its stdin/stdout/stderr are the terminal
        try:
            os.execvpe("lxc", ["lxc", *argv], stack.env)
        finally:
            os._exit(127)
    output = bytearray()
    deadline = time.monotonic() + timeout

    def settle(quiet: float = 0.5) -> None:
        last = time.monotonic()
        while time.monotonic() - last < quiet and time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 0.05)
            if ready:
                try:
                    chunk = os.read(main, 65536)
                except OSError:  # EIO: the terminal was hung up (lxc exited)
                    return
                if not chunk:
                    return
                output.extend(chunk)
                last = time.monotonic()

    try:
        settle(1.0)
        for key in keys:
            os.write(main, key)
            settle()
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status), output.decode(errors="replace")
            settle(0.1)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise AssertionError(f"lxc {' '.join(argv)} still running:\n{output.decode()}")
    finally:
        os.close(main)


def in_container(stack: Stack, name: str, *command: str) -> str:
    return lxc_ok(stack, "exec", name, "--", *command)


def wait_booted(stack: Stack, name: str) -> None:
    """Until init has run the boot scripts and entered runlevel 2 (``runlevel`` reads utmp)."""

    def booted() -> bool:
        result = stack.lxc("exec", name, "--", "runlevel")
        return result.returncode == 0 and result.stdout.split()[-1:] == ["2"]

    wait_for(booted, BOOT_TIMEOUT, f"{name} in runlevel 2", interval=0.1)


def ipv4_of(stack: Stack, name: str) -> str | None:
    for entry in json.loads(lxc_ok(stack, "list", name, "--format", "json")):
        network = (entry.get("state") or {}).get("network") or {}
        for address in (network.get("eth0") or {}).get("addresses", []):
            if address["family"] == "inet" and address["scope"] == "global":
                return str(address["address"])
    return None


def status(stack: Stack, name: str) -> str:
    return lxc_ok(stack, "list", name, "-c", "s", "--format", "csv").strip()


def assert_runs_its_init(stack: Stack, name: str) -> None:
    # PID 1 is the image's sysvinit (it names itself "init [<runlevel>]"), not a stand-in.
    exe = in_container(stack, name, "readlink", "-f", "/proc/1/exe").strip()
    assert exe == in_container(stack, name, "readlink", "-f", "/sbin/init").strip()
    assert in_container(stack, name, "dpkg-query", "-W", "-f", "${Status}", "sysvinit-core") == (
        "install ok installed"
    )
    assert in_container(stack, name, "cat", "/proc/1/cmdline").split("\0")[0] == "init [2]"
    # Its services: the console getty inittab respawns in runlevel 2, a child of init.
    processes = in_container(stack, name, "ps", "-eo", "pid=,ppid=,args=").splitlines()
    table = [line.split(None, 2) for line in processes]
    assert ["1", "0"] == table[0][:2] and table[0][2].startswith("init [2]"), processes
    assert any(ppid == "1" and args == CONSOLE_GETTY for _, ppid, args in table), processes


def halts(stack: Stack, name: str) -> int:
    """How many times the console log shows init completing a halt."""
    return lxc_ok(stack, "console", name, "--show-log").count("Will now halt.")


def assert_stops_cleanly(stack: Stack, name: str) -> float:
    halts_before = halts(stack, name)
    began = time.monotonic()
    lxc_ok(stack, "stop", name)  # lxc's default: a clean shutdown, forced only after 30 s
    took = time.monotonic() - began
    assert status(stack, name) == "STOPPED"
    assert took < STOP_BUDGET, f"lxc stop took {took:.1f} s"
    # Init itself halted the system (SIGPWR -> inittab's powerwait -> shutdown -h), not a kill.
    assert halts(stack, name) == halts_before + 1, lxc_ok(stack, "console", name, "--show-log")
    return took


@pytest.mark.parametrize("privileged", [False, True], ids=["unprivileged", "privileged"])
def test_debian_boots_to_its_init_and_services(
    warren: Stack, debian_image: Path, privileged: bool
) -> None:
    lxc_ok(warren, "image", "import", str(debian_image), "--alias", "debian")
    name = unique("deb")
    extra = ["-c", "security.privileged=true"] if privileged else []
    lxc_ok(warren, "launch", "debian", name, *extra)
    try:
        assert status(warren, name) == "RUNNING"
        wait_booted(warren, name)
        assert_runs_its_init(warren, name)
        console = lxc_ok(warren, "console", name, "--show-log")
        assert "INIT: Entering runlevel: 2" in console, console[-3000:]
        # ifupdown's dhclient got an address from the default network's dnsmasq.
        wait_for(lambda: ipv4_of(warren, name), 15, f"{name} holding a DHCP address", 0.1)
        # The instance's name: the image's template rendered it into /etc/hostname, from
        # which sysvinit's hostname.sh sets it.
        assert in_container(warren, name, "cat", "/etc/hostname") == f"{name}\n"
        assert in_container(warren, name, "hostname").strip() == name
        assert in_container(warren, name, "id", "-u").strip() == "0"

        # exec: a Debian userland, exit codes, piped stdin.
        assert in_container(warren, name, "apt-get", "--version").startswith("apt 2.")
        assert "bookworm" in in_container(warren, name, "cat", "/etc/os-release")
        assert warren.lxc("exec", name, "--", "sh", "-c", "exit 7").returncode == 7
        assert lxc_ok(warren, "exec", name, "--", "tr", "a-z", "A-Z", input="debian\n") == (
            "DEBIAN\n"
        )
        # An interactive shell on a terminal, as `lxc exec -t NAME -- bash` gives a user.
        code, screen = run_in_terminal(
            warren,
            ["exec", "-t", name, "--", "bash"],
            [b"echo answer=$((6*7)) ${TERM:+term-set}\n", b"exit 3\n"],
        )
        assert code == 3, screen
        assert f"root@{name}:~#" in screen, screen
        assert "answer=42 term-set" in screen, screen

        took = assert_stops_cleanly(warren, name)
        print(f"{name}: clean stop in {took:.2f} s")

        lxc_ok(warren, "start", name)
        wait_booted(warren, name)
        assert_runs_its_init(warren, name)
        assert in_container(warren, name, "hostname").strip() == name
        assert in_container(warren, name, "apt-get", "--version").startswith("apt 2.")
        assert_stops_cleanly(warren, name)
    finally:
        warren.lxc("delete", "-f", name)
    assert name not in lxc_ok(warren, "list", "--format", "csv", "-c", "n")
