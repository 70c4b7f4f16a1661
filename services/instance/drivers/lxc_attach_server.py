"""The attach helper: a small process that runs ``lxc attach`` for the LXC driver.

python-lxc's attach forks the calling process; forked from the instance service (~70 MB of
Python heap) that costs ~7 ms, forked from this helper ~3 ms. The driver starts it once
(``python -P lxc_attach_server.py <fd>``, as a file, so it imports only the standard library
and python-lxc; ``-P`` keeps this directory's lxc.py from shadowing python-lxc) and talks to
it over a SOCK_SEQPACKET socket:

- request: a JSON object (``id``, ``lxcpath``, ``name``, ``command``, ``env``, ``cwd``, ``uid``,
  ``gid``) with the command's stdin, stdout and stderr as SCM_RIGHTS, and optionally a fourth
  fd, a gate (see :func:`exec_when_opened`);
- reply: ``{"id": n, "pid": p}``, ``{"id": n, "refused": "frozen" | "not running"}`` (the
  container's state, checked here before the attach) or ``{"id": n, "error": "..."}``;
- later, for each attached command (the helper's child): ``{"exit": p, "code": c}`` (128+N
  when killed by signal N).

The attached command joins the container's cgroup v1 hierarchies itself (see
:class:`Placement`): LXC would write its pid into each hierarchy's ``cgroup.procs`` before the
attach returns, and the first such write waits for an RCU grace period (~8 ms here, often far
more under load), while a single-threaded process writing ``0`` to a v1 ``tasks`` file does
not take the lock that needs it. On a host whose cgroup2 hierarchy has no controllers (only
process tracking, as here) the helper moves it there ``FOLLOW_AFTER`` after the attach: the
move holds up the command's exit for a grace period, so a short command is never moved.

It exits when the socket closes (the driver is gone) and dies with its parent.
"""

from __future__ import annotations

import array
import contextlib
import ctypes
import errno
import json
import os
import select
import signal
import socket
import sys
import threading
from typing import Any, NamedTuple

import lxc

_PR_SET_PDEATHSIG = 1
_MAX_MESSAGE = 1 << 20
#: How long after its attach a command is moved into the cgroup2 payload (if still on). The
#: move waits for an RCU grace period (~8-12 ms) during which the command cannot exit or
#: fork; a command done sooner (``lxc exec c -- true``) is never moved.
FOLLOW_AFTER = 0.1
# spec.GATE_OPEN and spec.GATE_CLOSED_CODE (this file imports only the standard library).
GATE_OPEN = b"\x01"
GATE_CLOSED_CODE = 126
_LIBC = ctypes.CDLL(None, use_errno=True)


#: LXC states in which a container takes commands, and those in which an attach would hang.
_RUNNING = frozenset({"RUNNING", "STARTING", "STOPPING", "THAWED"})
_FROZEN = frozenset({"FROZEN", "FREEZING"})


class Refused(Exception):
    """The container is not in a state to attach to (frozen, or not running)."""


def exec_when_opened(payload: tuple[tuple[int, ...], int, list[str]]) -> int:
    """Run in the attached child (in the container, as the command's user): join the
    container's v1 cgroups, wait for the gate's byte, then exec the command. The attach
    itself is done while the client still connects; the command starts only once it is let.

    ``payload``: the ``tasks`` fds to write ``0`` into (empty when LXC moved it), the gate
    (< 0: none) and the command. Exit codes as ``lxc.attach_run_command`` gives them: 127 not
    found, 126 not executable.
    """
    tasks, gate, command = payload
    try:
        for fd in tasks:
            os.write(fd, b"0")  # this (single-threaded) process
            os.close(fd)
    except OSError as exc:
        # Never run a command outside the container's limits.
        os.write(2, f"warren: cannot join the container's cgroups: {exc}\n".encode())
        return 255
    if gate >= 0:
        try:
            opened = os.read(gate, 1) == GATE_OPEN
        except OSError:
            opened = False
        os.close(gate)
        if not opened:
            return GATE_CLOSED_CODE
    # libc's execvp, not os.execvp: liblxc set up the C environment (its clearenv and the
    # command's variables), which Python's os.environ does not see.
    argv = (ctypes.c_char_p * (len(command) + 1))(*(os.fsencode(a) for a in command), None)
    _LIBC.execvp(argv[0], argv)
    failure = ctypes.get_errno()
    return {errno.ENOENT: 127, errno.ENOEXEC: 126, errno.EACCES: 126}.get(failure, 255)


#: Key of the cgroup2 hierarchy in :func:`cgroup_mounts` (its /proc/<pid>/cgroup line has no
#: controllers).
UNIFIED = ""


def cgroup_mounts(mounts: str) -> dict[str, str]:
    """Controller (or ``name=...``; :data:`UNIFIED` for cgroup2) -> mount point of each
    cgroup hierarchy, from /proc/self/mounts."""
    found: dict[str, str] = {}
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        if fields[2] == "cgroup2":
            found[UNIFIED] = fields[1]
        elif fields[2] == "cgroup":
            for option in fields[3].split(","):
                if option not in ("rw", "ro") and not option.startswith(("relatime", "no")):
                    found[option] = fields[1]
    return found


class PayloadCgroups(NamedTuple):
    """A container's payload cgroups: the v1 ``tasks`` files, the cgroup2 ``cgroup.procs``."""

    tasks: list[str]
    unified: str | None


def payload_cgroups(name: str, proc_cgroup: str, mounts: dict[str, str]) -> PayloadCgroups | None:
    """Container ``name``'s payload cgroup in each hierarchy, from its init's
    /proc/<pid>/cgroup (cut at ``lxc.payload.<name>``, where LXC's attach puts commands even
    if init moved deeper); None (LXC moves the command) on a host without cgroup v1
    hierarchies or when the layout is not the one expected."""
    tasks: list[str] = []
    unified: str | None = None
    for line in proc_cgroup.splitlines():
        _, controllers, path = line.split(":", 2)
        mount = mounts.get(controllers.split(",")[0])
        parts = path.split("/")
        payload = [i for i, part in enumerate(parts) if part.startswith(f"lxc.payload.{name}")]
        if mount is None or not payload:
            return None
        directory = f"{mount}{'/'.join(parts[: payload[0] + 1])}"
        if controllers:
            tasks.append(f"{directory}/tasks")
        else:
            unified = f"{directory}/cgroup.procs"
    return PayloadCgroups(tasks, unified) if tasks else None


class Placement:
    """How this helper's attached commands get into their container's cgroups."""

    def __init__(self, mounts: str, own_cgroups: str) -> None:
        self.mounts = cgroup_mounts(mounts)
        unified = self.mounts.get(UNIFIED)
        #: The cgroup2 cgroup.procs where attached children start (this helper's own).
        self.start_procs: str | None = None
        self.fast = True
        if unified is not None:
            with open(f"{unified}/cgroup.subtree_control") as fh:
                # Controllers there hold limits the command may not run without.
                self.fast = not fh.read().strip()
            own = [line for line in own_cgroups.splitlines() if line.startswith("0::")]
            self.start_procs = f"{unified}{own[0][3:]}/cgroup.procs" if own else None

    def payload(self, name: str, init_pid: int) -> PayloadCgroups | None:
        """Where container ``name``'s commands go; None: LXC moves them."""
        if not self.fast:
            return None
        try:
            with open(f"/proc/{init_pid}/cgroup") as fh:
                found = payload_cgroups(name, fh.read(), self.mounts)
        except (OSError, ValueError):
            return None
        if found is not None and found.unified is not None and self.start_procs is None:
            return None
        return found

    def follow(self, pid: int, pidfd: int, init_pid: int, unified: str) -> None:
        """:data:`FOLLOW_AFTER` after the attach, move the command into the cgroup2 payload,
        with whatever it forked before the move (still where this helper is: found by their
        pid namespace). ``pidfd`` (closed here) tells whether it ended before that."""
        try:
            ended = _ends_within(pidfd, FOLLOW_AFTER)
        finally:
            os.close(pidfd)
        try:
            pidns = os.stat(f"/proc/{init_pid}/ns/pid").st_ino
            if not ended:
                _move(pid, unified)
            assert self.start_procs is not None
            with open(self.start_procs) as fh:
                stragglers = [int(p) for p in fh.read().split() if int(p) != pid]
            # Even when the command has ended already: what it forked may still run.
            for other in stragglers:
                with contextlib.suppress(OSError):
                    if os.stat(f"/proc/{other}/ns/pid").st_ino == pidns:
                        _move(other, unified)
        except OSError as exc:
            print(f"attach helper: cannot move {pid} into {unified}: {exc}", file=sys.stderr)


def _ends_within(pidfd: int, seconds: float) -> bool:
    """Whether the process of ``pidfd`` ends within ``seconds`` (its pidfd turns readable)."""
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return bool(poller.poll(seconds * 1000))


def _move(pid: int, procs: str) -> None:
    """Write ``pid`` into ``procs`` (nothing to do once it has ended)."""
    with contextlib.suppress(ProcessLookupError), open(procs, "w") as fh:
        fh.write(str(pid))


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:  # the parent died before the prctl
        os._exit(0)


class Server:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.send_lock = threading.Lock()
        # Mounted once at boot (/proc/self/mounts grows with every container's mounts).
        with open("/proc/self/mounts") as mounts, open("/proc/self/cgroup") as own:
            self.placement = Placement(mounts.read(), own.read())

    def send(self, message: dict[str, object]) -> None:
        with self.send_lock:
            self.sock.send(json.dumps(message).encode())

    def wait_for(self, pid: int) -> None:
        """Report the end of one attached command. Only its own pid is waited for: liblxc
        waits for the helpers it forks itself, and a wait for any child would steal them."""
        _, status = os.waitpid(pid, 0)
        code = 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        self.send({"exit": pid, "code": code})

    def attach(self, request: dict[str, Any], fds: list[int]) -> int:
        name = str(request["name"])
        container = lxc.Container(name, str(request["lxcpath"]))
        state = container.state
        if state in _FROZEN:
            raise Refused("frozen")  # attaching would hang until it is thawed
        if state not in _RUNNING:
            raise Refused("not running")
        env = dict(request["env"])
        command = [str(arg) for arg in request["command"]]
        init_pid = container.init_pid
        cgroups = self.placement.payload(name, init_pid)
        tasks: list[int] = []
        try:
            for path in cgroups.tasks if cgroups is not None else ():
                tasks.append(os.open(path, os.O_WRONLY | os.O_CLOEXEC))
        except OSError:  # gone or not writable: LXC moves it, as it always can
            cgroups = None
            for fd in tasks:
                os.close(fd)
            tasks.clear()
        flags = lxc.LXC_ATTACH_DEFAULT
        if cgroups is not None:
            flags &= ~lxc.LXC_ATTACH_MOVE_TO_CGROUP
        try:
            pid = int(
                container.attach(
                    exec_when_opened,
                    (tuple(tasks), fds[3] if len(fds) == 4 else -1, command),
                    attach_flags=flags,
                    env_policy=lxc.LXC_ATTACH_CLEAR_ENV,
                    extra_env_vars=[f"{key}={value}" for key, value in env.items()],
                    initial_cwd=str(request["cwd"]),
                    uid=int(request["uid"]),
                    gid=int(request["gid"]),
                    stdin=fds[0],
                    stdout=fds[1],
                    stderr=fds[2],
                )
            )
        finally:
            for fd in tasks:
                os.close(fd)
        if pid > 0 and cgroups is not None and cgroups.unified is not None:
            # Opened before anyone can reap the child, so it cannot name a reused pid.
            pidfd = os.pidfd_open(pid)
            threading.Thread(
                target=self.placement.follow,
                args=(pid, pidfd, init_pid, cgroups.unified),
                daemon=True,
            ).start()
        return pid

    def serve(self) -> None:
        fd_size = socket.CMSG_SPACE(4 * array.array("i").itemsize)
        while True:
            data, ancdata, _flags, _addr = self.sock.recvmsg(_MAX_MESSAGE, fd_size)
            if not data:
                return  # the driver closed its end
            fds: list[int] = []
            for level, kind, payload in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.extend(array.array("i", payload[: len(payload) - len(payload) % 4]))
            pid = 0
            request: dict[str, Any] = {}
            try:
                request = json.loads(data)
                if len(fds) not in (3, 4):
                    raise ValueError(f"expected 3 or 4 file descriptors, got {len(fds)}")
                pid = self.attach(request, fds)
                if pid > 0:
                    reply: dict[str, object] = {"id": request["id"], "pid": pid}
                else:
                    reply = {"id": request["id"], "error": "lxc attach failed"}
            except Refused as exc:
                reply = {"id": request.get("id"), "refused": str(exc)}
            except Exception as exc:  # answered, never fatal: the next request may be fine
                reply = {"id": request.get("id"), "error": f"{type(exc).__name__}: {exc}"}
            finally:
                for fd in fds:
                    os.close(fd)
            self.send(reply)
            if pid > 0:
                threading.Thread(target=self.wait_for, args=(pid,), daemon=True).start()


def main() -> None:
    _die_with_parent()
    fd = int(sys.argv[1])
    # Never inherited by an attached command: a container must not get a line to the helper
    # (and the driver sees the helper's death as the socket closing).
    os.set_inheritable(fd, False)
    sock = socket.socket(fileno=fd)
    Server(sock).serve()


if __name__ == "__main__":
    main()
