"""Small helpers shared by the benchmark scripts: statistics, an HTTP client over a unix
socket, free loopback ports, a private nats-server, and figures output.

The scripts run as plain files (``python ops/bench/<name>.py``), so this module sits beside
them and is imported by its bare name.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


def add_repo_to_path() -> None:
    """Let a script run as a plain file import ``services`` and ``schemas``."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))


def percentile(sorted_samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of already sorted samples."""
    if not sorted_samples:
        return math.nan
    rank = math.ceil(q / 100 * len(sorted_samples))
    return sorted_samples[min(max(rank, 1), len(sorted_samples)) - 1]


def summarize(samples_s: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99/mean/min/max in milliseconds of durations given in seconds."""
    ms = sorted(s * 1000 for s in samples_s)
    if not ms:
        return {"n": 0}
    return {
        "n": len(ms),
        "p50": percentile(ms, 50),
        "p90": percentile(ms, 90),
        "p99": percentile(ms, 99),
        "mean": sum(ms) / len(ms),
        "min": ms[0],
        "max": ms[-1],
    }


def fmt_num(value: Any, digits: int = 2) -> str:
    """A number for a table cell; missing values are a dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain text table with aligned columns (first column left, others right)."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        parts = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        return " | ".join(parts).rstrip()

    sep = "-+-".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), sep, *(line(r) for r in cells[1:])])


def machine_note() -> str:
    """CPU count and load: other work on the machine inflates every wall-clock figure."""
    load1, _, _ = os.getloadavg()
    return f"{os.cpu_count()} CPUs, load average {load1:.2f} (1 min)"


def wait_for_quiet(max_load: float, timeout: float = 180.0) -> float:
    """Wait (at most ``timeout`` s) until the 1-minute load average is below ``max_load``
    (0: do not wait); return the load average then."""
    deadline = time.monotonic() + timeout
    while max_load > 0 and os.getloadavg()[0] >= max_load and time.monotonic() < deadline:
        time.sleep(2)
    return os.getloadavg()[0]


def write_json(path: str | None, data: Any) -> None:
    """Write figures for ``run-all`` (or any other consumer) when asked to."""
    if path:
        Path(path).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class UnixHTTPConnection(http.client.HTTPConnection):
    """``http.client`` over a unix socket: blocking and thin, so the figures measure the
    server rather than a client library."""

    def __init__(self, path: str, timeout: float = 30.0) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


@dataclass
class Response:
    """Status and decoded JSON body of one request."""

    status: int
    body: Any
    elapsed_s: float


def http_call(
    conn: UnixHTTPConnection,
    method: str,
    path: str,
    body: Any = None,
    data: bytes | None = None,
    content_type: str = "application/octet-stream",
) -> Response:
    """One request on ``conn`` with a JSON ``body`` or raw ``data``; the timing covers send
    to last byte of the reply."""
    if data is not None:
        payload: bytes | None = data
        headers = {"Content-Type": content_type}
    else:
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if payload is not None else {}
    start = time.perf_counter()
    conn.request(method, path, body=payload, headers=headers)
    resp = conn.getresponse()
    raw = resp.read()
    elapsed = time.perf_counter() - start
    try:
        decoded = json.loads(raw) if raw else None
    except ValueError:
        decoded = raw.decode(errors="replace")
    return Response(resp.status, decoded, elapsed)


def socket_answers(path: str, timeout: float = 2.0) -> bool:
    """True once ``GET /1.0`` on the unix socket answers 200."""
    if not os.path.exists(path):
        return False
    conn = UnixHTTPConnection(path, timeout=timeout)
    try:
        return http_call(conn, "GET", "/1.0").status == 200
    except OSError:
        return False
    except http.client.HTTPException:
        return False
    finally:
        conn.close()


def wait_until(predicate: Any, timeout: float, interval: float = 0.05, what: str = "") -> None:
    """Poll ``predicate`` until true or raise TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what or predicate}")
        time.sleep(interval)


@dataclass
class PrivateNats:
    """A throwaway ``nats-server -js`` on a free loopback port with a temporary store."""

    port: int = 0
    store: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="bench-nats-")))
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> PrivateNats:
        self.port = self.port or free_port()
        args = ["-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self.store / "js")]
        with open(self.store / "nats.log", "wb") as log:
            self.proc = subprocess.Popen(
                [NATS_SERVER, *args, "--server_name", f"bench-{self.port}"],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        def up() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"nats-server exited: {(self.store / 'nats.log').read_text()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                return True
            return False

        wait_until(up, 15, what="nats-server")
        return self

    def stop(self) -> None:
        """Stop the server and delete its store."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.store, ignore_errors=True)


@contextlib.contextmanager
def private_nats() -> Iterator[PrivateNats]:
    """Context manager form of :class:`PrivateNats`."""
    server = PrivateNats().start()
    try:
        yield server
    finally:
        server.stop()
