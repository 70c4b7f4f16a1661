"""One supervised child process: spawn, probe readiness, restart with backoff, stop cleanly.

Children run in their own session so a Ctrl-C on the terminal reaches only the supervisor,
which then stops them in order (services drain first, nats-server last). Each child also asks
the kernel for SIGTERM if the supervisor dies, so even a ``kill -9`` of the supervisor leaves
no orphans behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import re
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger("warren.supervisor")

_PR_SET_PDEATHSIG = 1
# Loaded before any fork: the child must only make one plain syscall between fork and exec.
_libc = ctypes.CDLL(None, use_errno=True)

BACKOFF_FIRST_S = 0.2
BACKOFF_MAX_S = 10.0
#: A process that stayed up this long is considered healthy: its next crash restarts quickly.
HEALTHY_AFTER_S = 10.0


#: The tree the supervisor runs from: every process it starts imports the project from it.
PROJECT_ROOT = str(Path(__file__).resolve().parents[2])


def project_pythonpath(current: str) -> str:
    """``PYTHONPATH`` for a child: the project's tree first, then ``current``'s others."""
    paths = [p for p in current.split(os.pathsep) if p and p != PROJECT_ROOT]
    return os.pathsep.join([PROJECT_ROOT, *paths])


def _die_with_parent() -> None:
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Probe:
    """Readiness check of a fresh process: a log pattern, a unix socket, or a TCP port."""

    kind: str  # "log" | "socket" | "tcp" | "none"
    pattern: str = ""
    path: Path | None = None
    port: int = 0

    def check(self, log_path: Path, offset: int) -> bool:
        if self.kind == "none":
            return True
        if self.kind == "log":
            try:
                with open(log_path, "rb") as f:
                    f.seek(offset)
                    text = f.read().decode(errors="replace")
            except FileNotFoundError:
                return False
            return re.search(self.pattern, text) is not None
        if self.kind == "socket":
            assert self.path is not None
            return _connects(socket.AF_UNIX, str(self.path))
        if self.kind == "tcp":
            return _nats_ready(self.port)
        raise ValueError(f"unknown probe {self.kind}")


def _connects(family: int, address: str | tuple[str, int]) -> bool:
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        try:
            sock.connect(address)
        except OSError:
            return False
    return True


def _nats_ready(port: int) -> bool:
    """nats-server greets with INFO; it advertises jetstream once JetStream is enabled."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            info = sock.recv(4096)
    except OSError:
        return False
    return info.startswith(b"INFO ") and b'"jetstream":true' in info


@dataclass
class Child:
    """A process the supervisor keeps running until told to stop."""

    service: str
    replica: int
    label: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    probe: Probe
    on_change: Callable[[], None] = lambda: None
    before_spawn: Callable[[], None] = lambda: None
    #: nats-server exits 0 on SIGINT but 1 on SIGTERM; services drain on SIGTERM.
    stop_signal: int = signal.SIGTERM
    proc: asyncio.subprocess.Process | None = None
    ready: bool = False
    restarts: int = 0
    started_at: float = 0.0
    _stopping: bool = False
    _task: asyncio.Task[None] | None = None
    _probe_task: asyncio.Task[None] | None = None
    _ready_event: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def pid(self) -> int | None:
        if self.proc is None or self.proc.returncode is not None:
            return None
        return self.proc.pid

    def status(self) -> dict[str, object]:
        return {
            "service": self.service,
            "replica": self.replica,
            "label": self.label,
            "pid": self.pid,
            "ready": self.ready,
            "restarts": self.restarts,
            "log": str(self.log_path),
            "socket": str(self.probe.path) if self.probe.kind == "socket" else None,
        }

    def start(self) -> None:
        """Start the keep-alive loop in the background."""
        self._task = asyncio.create_task(self._run(), name=f"child-{self.label}")

    async def wait_ready(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._ready_event.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def _open_log(self) -> tuple[BinaryIO, int]:
        """Open the log for appending, mark the start, return it and where this run begins."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log_path, "ab")  # closed by _spawn once the child holds it
        offset = out.tell()
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        out.write(f"---- {stamp} supervisor: starting {self.label}\n".encode())
        out.flush()
        return out, offset

    async def _spawn(self) -> None:
        self.before_spawn()
        out, offset = self._open_log()
        with out:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        self.started_at = time.monotonic()
        self.ready = False
        self._ready_event.clear()
        log.info("started %s (pid %d)", self.label, self.proc.pid)
        self.on_change()
        self._probe_task = asyncio.create_task(
            self._probe(self.proc, offset), name=f"probe-{self.label}"
        )

    async def _probe(self, proc: asyncio.subprocess.Process, offset: int) -> None:
        """Poll readiness of this incarnation until it is ready or gone."""
        delay = 0.02
        while proc is self.proc and proc.returncode is None and not self._stopping:
            if await asyncio.to_thread(self.probe.check, self.log_path, offset):
                if proc is self.proc and proc.returncode is None:
                    self.ready = True
                    self._ready_event.set()
                    log.info("%s is ready", self.label)
                    self.on_change()
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.25)

    async def _run(self) -> None:
        backoff = BACKOFF_FIRST_S
        while not self._stopping:
            try:
                await self._spawn()
            except OSError as exc:
                log.error("cannot start %s: %s", self.label, exc)
            else:
                assert self.proc is not None
                code = await self.proc.wait()
                self.ready = False
                self.on_change()
                if self._stopping:
                    return
                uptime = time.monotonic() - self.started_at
                if uptime >= HEALTHY_AFTER_S:
                    backoff = BACKOFF_FIRST_S
                log.warning(
                    "%s (pid %d) exited unexpectedly with %s after %.1fs; restarting in %.1fs",
                    self.label,
                    self.proc.pid,
                    _describe(code),
                    uptime,
                    backoff,
                )
            self.restarts += 1
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_S)

    def kill_now(self) -> None:
        """SIGKILL the current process (second Ctrl-C, or a stop that timed out)."""
        self._stopping = True
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()

    async def stop(self, timeout: float) -> None:
        """Send the stop signal, wait up to ``timeout`` seconds, then SIGKILL. No restart after."""
        self._stopping = True
        if self._task is not None:
            # First end the keep-alive loop (it may be waiting, backing off or spawning) so
            # nothing respawns; cancelling it does not touch a running process.
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        proc = self.proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(self.stop_signal)
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                log.warning("%s did not stop within %.0fs: killing it", self.label, timeout)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
            log.info("%s stopped (%s)", self.label, _describe(proc.returncode))
        self.ready = False
        self.on_change()


def _describe(code: int | None) -> str:
    if code is None:
        return "no exit status"
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


def pid_alive(pid: int) -> bool:
    """True if ``pid`` runs (used for the stale-lock message)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
