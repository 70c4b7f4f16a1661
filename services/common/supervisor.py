"""The single-node supervisor: ``python -m services.common.supervisor``.

It owns one WARREN_DIR: takes its lock, starts nats-server (unless WARREN_NATS_URL names an
external one), makes sure the EVENTS stream exists, starts every service of the table and then
the gateway, restarts whatever exits unexpectedly, and on SIGINT/SIGTERM stops the gateway and
services (they drain) before nats-server. ``$WARREN_DIR/run/status.json`` tells tests and
humans what runs where.

Layout of WARREN_DIR: ``unix.socket`` (API), ``gateway-<n>.socket`` (extra gateway replicas),
``warren.pid`` (lock), ``nats/`` (config, port, JetStream store), ``logs/<process>.log``,
``snapshots/``, ``run/status.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from typing import IO

from pydantic import BaseModel

from services.common.supervisor_nats import NatsPlan, ensure_stream
from services.common.supervisor_proc import Child, Probe, project_pythonpath
from services.common.supervisor_table import (
    ServiceSpec,
    gateway_socket,
    label,
    load_table,
    parse_replicas,
    replica_counts,
)

log = logging.getLogger("warren.supervisor")


class SupervisorSettings(BaseModel):
    """Settings from the environment, overridden by command-line flags."""

    warren_dir: Path
    node: str
    socket: Path
    external_nats_url: str | None = None
    replicas: dict[str, int] = {}
    table: Path | None = None
    stop_timeout: float = 10.0
    ready_timeout: float = 60.0

    @classmethod
    def load(cls, argv: list[str] | None = None) -> SupervisorSettings:
        parser = argparse.ArgumentParser(
            prog="python -m services.common.supervisor",
            description="Run a single-node Warren in the foreground.",
        )
        parser.add_argument("--dir", help="state directory (env WARREN_DIR, /var/lib/warren)")
        parser.add_argument(
            "--replicas", help="e.g. instance=2,gateway=2 (env WARREN_REPLICAS; flag wins)"
        )
        parser.add_argument("--table", help="JSON service table replacing the real one (tests)")
        args = parser.parse_args(argv)
        env = os.environ
        warren_dir = Path(args.dir or env.get("WARREN_DIR") or "/var/lib/warren").absolute()
        replicas = parse_replicas(env.get("WARREN_REPLICAS"))
        replicas.update(parse_replicas(args.replicas))
        table = args.table or env.get("WARREN_SERVICE_TABLE")
        return cls(
            warren_dir=warren_dir,
            node=env.get("WARREN_NODE") or socket.gethostname().split(".")[0],
            socket=Path(env.get("WARREN_SOCKET") or warren_dir / "unix.socket"),
            external_nats_url=env.get("WARREN_NATS_URL") or None,
            replicas=replicas,
            table=Path(table) if table else None,
            stop_timeout=float(env.get("WARREN_STOP_TIMEOUT", "10")),
            ready_timeout=float(env.get("WARREN_READY_TIMEOUT", "60")),
        )


class AlreadyRunning(RuntimeError):
    """Another supervisor holds this WARREN_DIR."""


def take_lock(warren_dir: Path) -> IO[str]:
    """Hold ``warren.pid`` locked for our lifetime (the kernel drops the lock if we die)."""
    path = warren_dir / "warren.pid"
    handle = open(path, "a+")  # held open (and locked) until the process exits
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "?"
        handle.close()
        raise AlreadyRunning(
            f"another Warren supervisor (pid {holder}) is running on {warren_dir}"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


class Supervisor:
    """Starts, watches and stops every process of one Warren."""

    def __init__(self, settings: SupervisorSettings, python: str = sys.executable) -> None:
        self.settings = settings
        self.python = python
        self.table: list[ServiceSpec] = load_table(settings.table)
        self.counts = replica_counts(self.table, settings.replicas)
        self.nats = NatsPlan(settings.warren_dir)
        self.nats_child: Child | None = None
        self.children: list[Child] = []
        self.state = "starting"
        self._stop = asyncio.Event()
        self._signals = 0

    @property
    def dir(self) -> Path:
        return self.settings.warren_dir

    @property
    def nats_url(self) -> str:
        return self.settings.external_nats_url or self.nats.url

    # -- status ---------------------------------------------------------------------------
    def write_status(self) -> None:
        """Atomically rewrite ``run/status.json`` (read by tests and ``Stack``)."""
        procs = [c.status() for c in ([self.nats_child] if self.nats_child else [])]
        procs += [c.status() for c in self.children]
        status = {
            "state": self.state,
            "supervisor_pid": os.getpid(),
            "warren_dir": str(self.dir),
            "node": self.settings.node,
            "socket": str(self.settings.socket),
            "nats_url": self.nats_url
            if self.nats.port or self.settings.external_nats_url
            else None,
            "processes": procs,
        }
        path = self.dir / "run" / "status.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(status, indent=1))
        os.replace(tmp, path)

    # -- children -------------------------------------------------------------------------
    def _child_env(self, spec: ServiceSpec, replica: int, sock: Path | None) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("WARREN_REPLICAS", "WARREN_SERVICE_TABLE", "WARREN_SOCKET")
        }
        env.update(
            WARREN_DIR=str(self.dir),
            WARREN_NATS_URL=self.nats_url,
            WARREN_NODE=self.settings.node,
            WARREN_SERVICE=spec.name,
            WARREN_REPLICA=str(replica),
            PYTHONUNBUFFERED="1",
        )
        if sock is not None:
            env["WARREN_SOCKET"] = str(sock)
        env["PYTHONPATH"] = project_pythonpath(env.get("PYTHONPATH", ""))
        return env

    def _make_child(self, spec: ServiceSpec, replica: int) -> Child:
        name = label(spec.name, replica)
        sock = None
        if spec.role == "gateway":
            sock = gateway_socket(self.settings.socket, self.dir, replica)
        if spec.ready.kind == "socket":
            probe = Probe(kind="socket", path=sock)
        else:
            probe = Probe(kind=spec.ready.kind, pattern=spec.ready.pattern)

        def clear_socket() -> None:
            # A killed gateway leaves its socket file behind; the next one binds afresh.
            if sock is not None:
                sock.unlink(missing_ok=True)

        return Child(
            service=spec.name,
            replica=replica,
            label=name,
            argv=spec.command(self.python),
            env=self._child_env(spec, replica, sock),
            log_path=self.dir / "logs" / f"{name}.log",
            probe=probe,
            on_change=self.write_status,
            before_spawn=clear_socket,
        )

    async def _start_group(self, specs: list[ServiceSpec]) -> None:
        group = [self._make_child(s, i) for s in specs for i in range(self.counts[s.name])]
        self.children.extend(group)
        for child in group:
            child.start()
        await self._await_ready(group)

    async def _await_ready(self, group: list[Child]) -> None:
        waits = [c.wait_ready(self.settings.ready_timeout) for c in group]
        stop = asyncio.create_task(self._stop.wait())
        ready = asyncio.gather(*waits)
        done, _ = await asyncio.wait({stop, ready}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if ready not in done:
            ready.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ready
            raise asyncio.CancelledError("stop requested during start-up")
        late = [c.label for c, ok in zip(group, ready.result(), strict=True) if not ok]
        if late:
            logs = ", ".join(str(self.dir / "logs" / f"{n}.log") for n in late)
            raise RuntimeError(f"not ready after {self.settings.ready_timeout:.0f}s: {logs}")

    async def start(self) -> None:
        for sub in ("logs", "run", "snapshots"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        self.write_status()
        if self.settings.external_nats_url is None:
            argv = self.nats.prepare()
            self.nats_child = Child(
                service="nats",
                replica=0,
                label="nats",
                argv=argv,
                env=dict(os.environ),
                log_path=self.dir / "logs" / "nats.log",
                probe=Probe(kind="tcp", port=self.nats.port),
                on_change=self.write_status,
                stop_signal=signal.SIGINT,
            )
            self.nats_child.start()
            await self._await_ready([self.nats_child])
        log.info("nats: %s", self.nats_url)
        await ensure_stream(self.nats_url)
        await self._start_group([s for s in self.table if s.role != "gateway"])
        await self._start_group([s for s in self.table if s.role == "gateway"])
        self.state = "ready"
        self.write_status()

    async def stop(self) -> None:
        self.state = "stopping"
        self.write_status()
        timeout = self.settings.stop_timeout
        await asyncio.gather(*(c.stop(timeout) for c in self.children))
        if self.nats_child is not None:
            # Last, so services could flush and drain their connections.
            await self.nats_child.stop(timeout)
        for child in self.children:
            if child.probe.path is not None:
                child.probe.path.unlink(missing_ok=True)
        self.state = "stopped"
        self.write_status()

    def request_stop(self, signum: int) -> None:
        self._signals += 1
        if self._signals == 1:
            log.info("%s: stopping Warren (again to kill at once)", signal.Signals(signum).name)
            self._stop.set()
        else:
            log.warning("second signal: killing every process now")
            for child in [*self.children, *([self.nats_child] if self.nats_child else [])]:
                child.kill_now()

    def announce(self) -> None:
        sock = self.settings.socket
        extra = [c.probe.path for c in self.children if c.probe.path and c.probe.path != sock]
        lines = [
            f"Warren is ready: API on unix socket {sock}",
            f"  try:  LXD_SOCKET={sock} lxc info",
            f"  nats: {self.nats_url}   logs: {self.dir / 'logs'}",
        ]
        if extra:
            lines.append("  more gateway replicas: " + " ".join(map(str, extra)))
        lines.append("Press Ctrl-C to stop.")
        print("\n".join(lines), flush=True)

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.request_stop, sig)
        code = 0
        try:
            await self.start()
            self.announce()
            await self._stop.wait()
        except asyncio.CancelledError:
            pass
        except Exception as exc:
            log.error("start-up failed: %s", exc)
            code = 1
        await self.stop()
        log.info("Warren stopped")
        return code


def configure_logging(warren_dir: Path) -> None:
    fmt = logging.Formatter("%(asctime)s supervisor %(levelname)s: %(message)s")
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for handler in (
        logging.StreamHandler(sys.stderr),
        logging.FileHandler(warren_dir / "logs" / "supervisor.log"),
    ):
        handler.setFormatter(fmt)
        root.addHandler(handler)
    # The short-lived bus connection that creates the stream would log its own disconnect.
    logging.getLogger("schemas.client").setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    try:
        settings = SupervisorSettings.load(argv)
        (settings.warren_dir / "logs").mkdir(parents=True, exist_ok=True)
        lock = take_lock(settings.warren_dir)
    except (AlreadyRunning, ValueError, OSError) as exc:
        print(f"warren: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.warren_dir)
    try:
        supervisor = Supervisor(settings)
    except (ValueError, OSError) as exc:
        log.error("%s", exc)
        return 2
    try:
        return asyncio.run(supervisor.run())
    finally:
        lock.close()


if __name__ == "__main__":
    sys.exit(main())
