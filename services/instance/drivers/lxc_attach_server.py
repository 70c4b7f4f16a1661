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

It exits when the socket closes (the driver is gone) and dies with its parent.
"""

from __future__ import annotations

import array
import ctypes
import errno
import json
import os
import signal
import socket
import sys
import threading
from typing import Any

import lxc

_PR_SET_PDEATHSIG = 1
_MAX_MESSAGE = 1 << 20
# spec.GATE_OPEN and spec.GATE_CLOSED_CODE (this file imports only the standard library).
GATE_OPEN = b"\x01"
GATE_CLOSED_CODE = 126
_LIBC = ctypes.CDLL(None, use_errno=True)


#: LXC states in which a container takes commands, and those in which an attach would hang.
_RUNNING = frozenset({"RUNNING", "STARTING", "STOPPING", "THAWED"})
_FROZEN = frozenset({"FROZEN", "FREEZING"})


class Refused(Exception):
    """The container is not in a state to attach to (frozen, or not running)."""


def exec_when_opened(payload: tuple[int, list[str]]) -> int:
    """Run in the attached child (in the container, as the command's user): wait for the
    gate's byte, then exec the command. The attach itself (namespaces, cgroups, ~5 ms) is
    done while the client still connects; the command starts only once it is let.

    Exit codes as ``lxc.attach_run_command`` gives them: 127 not found, 126 not executable.
    """
    gate, command = payload
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


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:  # the parent died before the prctl
        os._exit(0)


class Server:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.send_lock = threading.Lock()

    def send(self, message: dict[str, object]) -> None:
        with self.send_lock:
            self.sock.send(json.dumps(message).encode())

    def wait_for(self, pid: int) -> None:
        """Report the end of one attached command. Only its own pid is waited for: liblxc
        waits for the helpers it forks itself, and a wait for any child would steal them."""
        _, status = os.waitpid(pid, 0)
        code = 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        self.send({"exit": pid, "code": code})

    @staticmethod
    def attach(request: dict[str, Any], fds: list[int]) -> int:
        container = lxc.Container(str(request["name"]), str(request["lxcpath"]))
        state = container.state
        if state in _FROZEN:
            raise Refused("frozen")  # attaching would hang until it is thawed
        if state not in _RUNNING:
            raise Refused("not running")
        env = dict(request["env"])
        command = [str(arg) for arg in request["command"]]
        run, argument = (
            (exec_when_opened, (fds[3], command))
            if len(fds) == 4
            else (lxc.attach_run_command, command)
        )
        return int(
            container.attach(
                run,
                argument,
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
