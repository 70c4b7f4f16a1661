"""A throwaway single-node Warren for benchmarks: ``./ops/run`` in a temporary WARREN_DIR.

Ready means the unix socket accepts and ``GET /1.0`` answers 200. Stopping sends SIGTERM to
``ops/run`` (which stops what it started), then kills any process of this Warren that is
still alive (and says so: that is a supervisor bug) and deletes the directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchkit import REPO, socket_answers
from proctree import descendants, process_table, tree_memory, warren_processes

OPS_RUN = REPO / "ops" / "run"


def available() -> bool:
    """Can a Warren be started from this tree?"""
    return OPS_RUN.exists() and os.access(OPS_RUN, os.X_OK)


class WarrenStack:
    """Start ``ops/run`` with its own WARREN_DIR; stop it and remove everything."""

    def __init__(self, ready_timeout: float = 300.0, extra_env: dict[str, str] | None = None):
        if not available():
            raise RuntimeError(f"{OPS_RUN} does not exist yet: cannot start a Warren")
        self.ready_timeout = ready_timeout
        self.dir = Path(tempfile.mkdtemp(prefix="warren-bench-"))
        self.log = self.dir.with_name(self.dir.name + ".run.log")
        # Bridge names are host-wide: this Warren's default network gets its own.
        network = {"WARREN_DEFAULT_NETWORK": f"wb{uuid.uuid4().hex[:8]}"}
        self.env = {**os.environ, "WARREN_DIR": str(self.dir), **network, **(extra_env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.start_seconds = 0.0
        self.leftovers: list[str] = []

    @property
    def socket(self) -> Path:
        return self.dir / "unix.socket"

    def start(self) -> WarrenStack:
        began = time.monotonic()
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [str(OPS_RUN)],
                cwd=REPO,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_ready(began)
        except Exception:
            print(f"--- tail of {self.log} ---", file=sys.stderr)
            print(self.log.read_text(errors="replace")[-3000:], file=sys.stderr)
            self.stop()
            raise
        self.start_seconds = time.monotonic() - began
        return self

    def _wait_ready(self, began: float) -> None:
        assert self.proc is not None
        while not socket_answers(str(self.socket)):
            if self.proc.poll() is not None:
                raise RuntimeError(f"ops/run exited with {self.proc.returncode} before ready")
            if time.monotonic() - began > self.ready_timeout:
                raise TimeoutError(f"Warren not ready after {self.ready_timeout:g}s")
            time.sleep(0.05)

    def pids(self) -> set[int]:
        """Every process of this Warren: ops/run, its descendants, and anything else that
        runs with this WARREN_DIR."""
        table = process_table()
        roots = [self.proc.pid] if self.proc is not None else []
        return descendants(roots, table) | warren_processes(self.dir, table)

    def memory(self) -> dict[str, Any]:
        """RSS/PSS over the whole stack (supervisor, nats-server, services, gateway)."""
        return tree_memory(self.pids())

    def stop(self, timeout: float = 30.0) -> None:
        """Graceful stop through ops/run, then remove whatever it left."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.leftovers.append(f"ops/run did not exit within {timeout:g}s of SIGTERM")
        # Give children a moment to follow their parent out before judging them leftovers.
        deadline = time.monotonic() + 5
        remaining = self.pids() - {os.getpid()}
        while remaining and time.monotonic() < deadline:
            time.sleep(0.1)
            remaining = self.pids() - {os.getpid()}
        table = process_table()
        for pid in remaining:
            name = table[pid].cmdline if pid in table else str(pid)
            self.leftovers.append(f"killed leftover process {pid}: {name[:120]}")
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc is not None and self.proc.poll() is None:
            self.proc.wait(5)
        self._remove_networks()
        for line in self.leftovers:
            print(f"warren_stack: {line}", file=sys.stderr)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.log.unlink(missing_ok=True)

    def _remove_networks(self) -> None:
        """Like containers, networks outlive Warren: remove this one's bridges, nftables
        tables and dnsmasqs (what the network driver makes: see services/network/drivers)."""
        root = self.dir / "networks"
        if not root.is_dir():
            return
        for entry in sorted(root.iterdir()):
            name = entry.name
            with contextlib.suppress(OSError, ValueError):
                os.kill(int((entry / "dnsmasq.pid").read_text()), signal.SIGKILL)
            table = "warren_" + name.replace("-", "_")
            subprocess.run(["nft", "delete", "table", "inet", table], capture_output=True)
            subprocess.run(["ip", "link", "delete", name], capture_output=True)

    def __enter__(self) -> WarrenStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
