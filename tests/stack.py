"""Test helpers that drive real processes: a bare nats-server and a whole Warren stack.

``NatsServer`` is a ``nats-server -js`` on a free port with its own store directory.
``Stack`` starts ``python -m services.common.supervisor`` in a WARREN_DIR of its own and talks
HTTP to the gateway over the unix socket. Both are synchronous on purpose: they manage processes,
and a test can call them from sync or async code alike (``Stack.arequest`` runs the request in a
thread for tests that must keep their event loop turning).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
STATUS_FILE = "run/status.json"


def nats_server_binary() -> str:
    """The nats-server on PATH, or Debian's, which lives in /usr/sbin."""
    found = shutil.which("nats-server") or "/usr/sbin/nats-server"
    if not os.access(found, os.X_OK):
        raise RuntimeError("nats-server is not installed (run ./ops/test, which installs it)")
    return found


def free_port() -> int:
    """A TCP port nobody listens on right now (the kernel's choice)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy; raise TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def short_tempdir(prefix: str) -> Path:
    """A short temporary directory: unix socket paths must stay under 108 bytes."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


class NatsServer:
    """A real ``nats-server -js`` on a fixed port and store, restartable in place."""

    def __init__(self, store_dir: Path, port: int | None = None, name: str = "warren-test") -> None:
        self.store_dir = Path(store_dir)
        self.port = port or free_port()
        self.name = name
        self.log_path = self.store_dir.parent / f"{self.store_dir.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start (or restart) on the same port and store; return once JetStream is up."""
        if self.proc is not None and self.proc.poll() is None:
            return
        self.store_dir.mkdir(parents=True, exist_ok=True)
        argv = [nats_server_binary(), "-js", "-a", "127.0.0.1", "-p", str(self.port)]
        argv += ["-sd", str(self.store_dir), "-n", self.name]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        wait_for(self._ready, 15, f"nats-server on port {self.port} (log: {self.log_path})")

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"nats-server exited: {self.log_path.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                info = sock.recv(4096)
        except OSError:
            return False
        # The INFO line only advertises jetstream once the JetStream subsystem is enabled.
        return info.startswith(b"INFO ") and b'"jetstream":true' in info

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the server (SIGTERM by default, SIGKILL to simulate a crash)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class UnixHTTPConnection(http.client.HTTPConnection):
    """``http.client`` over a unix socket (what ``lxc`` does with LXD_SOCKET)."""

    def __init__(self, path: str | os.PathLike[str], timeout: float = 30) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = str(path)

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock


def http_unix(
    socket_path: str | os.PathLike[str],
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> tuple[int, dict[str, str], Any]:
    """One HTTP request over a unix socket. ``body``: dict/list (sent as JSON), str or bytes.

    Returns ``(status, headers, parsed JSON or raw text if the reply is not JSON)``.
    """
    conn = UnixHTTPConnection(socket_path, timeout=timeout)
    try:
        send_headers = dict(headers or {})
        data: bytes | None
        if body is None:
            data = None
        elif isinstance(body, bytes):
            data = body
        elif isinstance(body, str):
            data = body.encode()
        else:
            data = json.dumps(body).encode()
            send_headers.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=data, headers=send_headers)
        resp = conn.getresponse()
        raw = resp.read()
        reply_headers = {k.lower(): v for k, v in resp.getheaders()}
        try:
            parsed: Any = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode(errors="replace")
        return resp.status, reply_headers, parsed
    finally:
        conn.close()


def pid_alive(pid: int) -> bool:
    """True if ``pid`` is a live process (zombies count as dead)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


class Stack:
    """A whole Warren (nats-server, services, gateway) under one supervisor and WARREN_DIR.

    ``replicas`` maps a service name to its number of copies (``{"instance": 2}``);
    ``table`` is a path to a JSON service table that replaces the real one (supervisor tests);
    ``extra_env`` is added to the supervisor's environment (and so to every child's).
    """

    def __init__(
        self,
        directory: Path | None = None,
        replicas: dict[str, int] | None = None,
        table: Path | None = None,
        extra_env: dict[str, str] | None = None,
        ready_timeout: float = 60,
    ) -> None:
        self.dir = Path(directory) if directory else short_tempdir("warren-")
        self.replicas = dict(replicas or {})
        self.table = table
        self.extra_env = dict(extra_env or {})
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.output_path = self.dir / "supervisor.out"
        self.default_network = f"wt{uuid.uuid4().hex[:8]}"

    # -- paths and environment ------------------------------------------------------------
    @property
    def socket(self) -> Path:
        return self.dir / "unix.socket"

    @property
    def status_path(self) -> Path:
        return self.dir / STATUS_FILE

    @property
    def nats_url(self) -> str:
        return self.status()["nats_url"]

    @property
    def env(self) -> dict[str, str]:
        """Environment for running ``lxc`` (or pylxd) against this stack."""
        env = dict(os.environ)
        env["LXD_SOCKET"] = str(self.socket)
        # The lxc client keeps its config (remotes, current project) here: one per stack. It
        # writes config.yml into it but does not create the directory itself.
        client_dir = self.dir / "lxc-client"
        client_dir.mkdir(parents=True, exist_ok=True)
        env["LXD_CONF"] = str(client_dir)
        env["WARREN_DIR"] = str(self.dir)
        return env

    def supervisor_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("WARREN_")}
        env["WARREN_DIR"] = str(self.dir)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        env["PYTHONUNBUFFERED"] = "1"
        # Bridge names are host-wide: each stack's default network gets its own.
        env["WARREN_DEFAULT_NETWORK"] = self.default_network
        if self.replicas:
            env["WARREN_REPLICAS"] = ",".join(f"{k}={v}" for k, v in self.replicas.items())
        if self.table is not None:
            env["WARREN_SERVICE_TABLE"] = str(self.table)
        env.update(self.extra_env)
        return env

    # -- life cycle -----------------------------------------------------------------------
    def launch(self) -> subprocess.Popen[bytes]:
        """Start the supervisor without waiting (see :meth:`start`)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.output_path, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "services.common.supervisor"],
                cwd=REPO,
                env=self.supervisor_env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return self.proc

    def start(self) -> Stack:
        """Start the supervisor and return once it reports ready (gateway socket accepting)."""
        if self.proc is not None and self.proc.poll() is None:
            return self
        # A previous run's status would look ready: forget it before waiting.
        self.status_path.unlink(missing_ok=True)
        self.launch()
        wait_for(self._ready, self.ready_timeout, f"Warren ready in {self.dir}", interval=0.1)
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(
                f"supervisor exited with {self.proc.returncode}:\n{self.output()[-4000:]}"
            )
        status = self.status(missing_ok=True)
        return bool(status) and status.get("state") == "ready"

    def clean_host(self) -> None:
        """Kill this stack's containers and unmount its volumes.

        Like LXD, Warren leaves containers running when it stops; a test stack must not.
        """
        lxcpath = self.dir / "lxc"
        if lxcpath.is_dir():
            for name in os.listdir(lxcpath):
                subprocess.run(
                    ["lxc-stop", "-k", "-P", str(lxcpath), "-n", name],
                    capture_output=True,
                    timeout=60,
                    check=False,
                )
        self._remove_networks()
        prefix = f"{self.dir}/"
        with open("/proc/self/mounts") as mounts:
            points = [line.split()[1] for line in mounts]
        for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)

    def _remove_networks(self) -> None:
        """Like containers, networks outlive Warren: a test stack removes its own."""
        root = self.dir / "networks"
        if not root.is_dir():
            return
        from services.network.drivers import DRIVERS

        async def remove_all() -> None:
            for cls in DRIVERS.values():
                driver = cls(root)
                for name in await driver.managed():
                    await driver.remove(name)

        asyncio.run(remove_all())

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int | None:
        """Stop the supervisor (it stops everything it started); return its exit code."""
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def restart(self) -> Stack:
        """Whole-stack restart on the same directory (state must come back from the log)."""
        self.stop()
        return self.start()

    # -- status and processes -------------------------------------------------------------
    def status(self, missing_ok: bool = False) -> dict[str, Any]:
        """The supervisor's status file: state, nats_url, socket and one entry per process."""
        try:
            return json.loads(self.status_path.read_text())
        except (FileNotFoundError, ValueError):
            if missing_ok:
                return {}
            raise

    def processes(self, name: str | None = None) -> list[dict[str, Any]]:
        """Status entries of every process (or of one service's replicas), by replica index."""
        procs = self.status()["processes"]
        chosen = [p for p in procs if name is None or p["service"] == name]
        return sorted(chosen, key=lambda p: (p["service"], p["replica"]))

    def pids(self, name: str) -> list[int]:
        """Current pids of a service's replicas (``"nats"`` for the nats-server)."""
        return [p["pid"] for p in self.processes(name) if p.get("pid")]

    def pid(self, name: str, replica: int = 0) -> int:
        for p in self.processes(name):
            if p["replica"] == replica and p.get("pid"):
                return p["pid"]
        raise LookupError(f"no running process {name}[{replica}]")

    def all_pids(self) -> list[int]:
        """Every child pid the supervisor reports, nats-server included."""
        return [p["pid"] for p in self.processes() if p.get("pid")]

    def live_processes(self) -> list[int]:
        """Pids of every live process whose environment names this WARREN_DIR (any depth)."""
        marker = f"WARREN_DIR={self.dir}".encode()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                environ = (entry / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if marker in environ and pid_alive(int(entry.name)):
                found.append(int(entry.name))
        return found

    def kill(self, name: str, sig: int = signal.SIGKILL, replica: int = 0) -> int:
        """Send ``sig`` to one replica of a service; return the pid that got it."""
        pid = self.pid(name, replica)
        os.kill(pid, sig)
        return pid

    def wait_restarted(self, name: str, old_pid: int, replica: int = 0, timeout: float = 60) -> int:
        """Wait until the supervisor has replaced ``old_pid`` with a new, ready process."""

        def new_pid() -> int | None:
            for p in self.processes(name):
                if p["replica"] == replica and p.get("pid") not in (None, old_pid) and p["ready"]:
                    return p["pid"]
            return None

        return wait_for(new_pid, timeout, f"{name}[{replica}] to be restarted", interval=0.05)

    # -- HTTP -----------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        socket_path: Path | None = None,
    ) -> tuple[int, dict[str, str], Any]:
        """HTTP over the gateway's unix socket: ``(status, lower-cased headers, json)``."""
        return http_unix(socket_path or self.socket, method, path, body, headers)

    async def arequest(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, str], Any]:
        """:meth:`request` in a thread, for async tests that must keep their loop running."""
        return await asyncio.to_thread(self.request, *args, **kwargs)

    def lxc(self, *args: str, input: str | None = None, timeout: float = 60):
        """Run the real ``lxc`` client against this stack; returns the CompletedProcess."""
        return subprocess.run(
            ["lxc", *args],
            env=self.env,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    # -- diagnostics ----------------------------------------------------------------------
    def output(self) -> str:
        try:
            return self.output_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log(self, name: str) -> str:
        """The log of one process, e.g. ``"gateway"``, ``"instance-2"``, ``"nats"``."""
        try:
            return (self.dir / "logs" / f"{name}.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def dump_logs(self, tail: int = 8000) -> str:
        """The supervisor's output and the tail of every log, for a failed test's report."""
        parts = [f"==== supervisor output ({self.output_path})\n{self.output()[-tail:]}"]
        logs = self.dir / "logs"
        if logs.is_dir():
            for path in sorted(logs.glob("*.log")):
                text = path.read_text(errors="replace")
                parts.append(f"==== {path}\n{text[-tail:]}")
        return "\n".join(parts)
