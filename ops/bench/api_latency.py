"""Latency of the LXD REST API over a unix socket: ``GET /1.0`` and the profile life cycle.

Works against any LXD-API socket (Warren's ``$WARREN_DIR/unix.socket`` or the real LXD's).
Two connection modes are measured:

- ``keepalive``: one persistent HTTP/1.1 connection for every request (pylxd, a gateway
  client that pools connections);
- ``fresh``: a new connection per request, as each ``lxc`` invocation makes.

For each mode: ``GET /1.0`` n times, then ``POST /1.0/profiles`` (unique names), ``GET`` each
profile and ``DELETE`` each one. Anything created is deleted again, even on failure.

    python ops/bench/api_latency.py --socket /var/lib/warren/unix.socket --n 1000
    python ops/bench/api_latency.py --start-warren          # a throwaway Warren in /tmp
    python ops/bench/api_latency.py --start-lxd             # a throwaway LXD 5.0.2 in /tmp
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from benchkit import (
    UnixHTTPConnection,
    fmt_num,
    http_call,
    machine_note,
    summarize,
    table,
    write_json,
)

MODES = ("keepalive", "fresh")
OPS = ("GET /1.0", "profile create", "profile get", "profile delete")


class Client:
    """Issues requests either on one kept-alive connection or on a fresh one each time."""

    def __init__(self, socket_path: str, mode: str) -> None:
        self.socket_path = socket_path
        self.mode = mode
        self._conn: UnixHTTPConnection | None = None

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any, float]:
        if self.mode == "fresh":
            conn = UnixHTTPConnection(self.socket_path)
            try:
                # The connect is part of what a fresh client pays, so it is timed too.
                start = time.perf_counter()
                conn.connect()
                resp = http_call(conn, method, path, body)
                return resp.status, resp.body, time.perf_counter() - start
            finally:
                conn.close()
        if self._conn is None:
            self._conn = UnixHTTPConnection(self.socket_path)
        # http.client reopens the connection by itself if the server ever closes it.
        resp = http_call(self._conn, method, path, body)
        return resp.status, resp.body, resp.elapsed_s

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _error_text(status: int, body: Any) -> str:
    if isinstance(body, dict):
        return f"{status} {body.get('error') or body.get('status')}"
    return f"{status} {str(body)[:200]}"


class Phase:
    """Runs one kind of request up to ``count`` times or ``max_seconds``, recording timings."""

    def __init__(self, name: str, max_seconds: float) -> None:
        self.name = name
        self.max_seconds = max_seconds
        self.samples: list[float] = []
        self.errors = 0
        self.first_error = ""
        self.truncated = False

    def run(self, items: list[Any], call: Callable[[Any], tuple[int, Any, float]]) -> list[Any]:
        """Call ``call(item)`` for each item; return the items that succeeded."""
        ok = []
        deadline = time.monotonic() + self.max_seconds
        for item in items:
            if time.monotonic() > deadline:
                self.truncated = True
                break
            status, body, elapsed = call(item)
            if 200 <= status < 300:
                self.samples.append(elapsed)
                ok.append(item)
            else:
                self.errors += 1
                self.first_error = self.first_error or _error_text(status, body)
        return ok

    def result(self) -> dict[str, Any]:
        out: dict[str, Any] = summarize(self.samples)
        out.update(errors=self.errors, truncated=self.truncated)
        if self.first_error:
            out["first_error"] = self.first_error
        return out


def _profile_body(name: str, i: int) -> dict[str, Any]:
    # A realistic small profile: a description, a couple of config keys, one device.
    return {
        "name": name,
        "description": f"benchmark profile {i}",
        "config": {"limits.cpu": "1", "limits.memory": "256MiB"},
        "devices": {"eth0": {"type": "nic", "nictype": "p2p"}},
    }


@contextlib.contextmanager
def _cleanup(socket_path: str, created: set[str]) -> Iterator[None]:
    try:
        yield
    finally:
        leftover = sorted(created)
        if leftover:
            client = Client(socket_path, "keepalive")
            for name in leftover:
                with contextlib.suppress(Exception):
                    client.call("DELETE", f"/1.0/profiles/{name}")
            client.close()


def run_mode(
    socket_path: str, mode: str, n: int, n_write: int, max_seconds: float, warmup: int = 20
) -> dict[str, Any]:
    """All four measurements in one connection mode."""
    client = Client(socket_path, mode)
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    names = [f"{prefix}-{i}" for i in range(n_write)]
    created: set[str] = set()
    phases = {op: Phase(op, max_seconds) for op in OPS}
    try:
        with _cleanup(socket_path, created):
            for _ in range(warmup):
                client.call("GET", "/1.0")
            phases["GET /1.0"].run(list(range(n)), lambda _: client.call("GET", "/1.0"))

            def create(item: tuple[int, str]) -> tuple[int, Any, float]:
                i, name = item
                result = client.call("POST", "/1.0/profiles", _profile_body(name, i))
                if 200 <= result[0] < 300:
                    created.add(name)
                return result

            made = phases["profile create"].run(list(enumerate(names)), create)
            made_names = [name for _, name in made]
            phases["profile get"].run(
                made_names, lambda name: client.call("GET", f"/1.0/profiles/{name}")
            )

            def delete(name: str) -> tuple[int, Any, float]:
                result = client.call("DELETE", f"/1.0/profiles/{name}")
                if 200 <= result[0] < 300:
                    created.discard(name)
                return result

            phases["profile delete"].run(made_names, delete)
    finally:
        client.close()
    return {op: phase.result() for op, phase in phases.items()}


def server_info(socket_path: str) -> dict[str, Any]:
    """Name and version the server reports, to label the figures."""
    _, body, _ = Client(socket_path, "fresh").call("GET", "/1.0")
    meta = (body or {}).get("metadata") or {}
    env = meta.get("environment") or {}
    return {
        "server": env.get("server", "?"),
        "server_version": env.get("server_version", "?"),
        "api_extensions": len(meta.get("api_extensions") or []),
    }


def run_latency(
    socket_path: str,
    n: int = 1000,
    n_write: int | None = None,
    modes: tuple[str, ...] = MODES,
    max_seconds: float = 60.0,
) -> dict[str, Any]:
    """Every mode against one socket; ``n_write`` profiles per mode (default ``n``)."""
    n_write = n if n_write is None else n_write
    out: dict[str, Any] = {"socket": socket_path, **server_info(socket_path), "modes": {}}
    for mode in modes:
        out["modes"][mode] = run_mode(socket_path, mode, n, n_write, max_seconds)
    return out


def render(results: dict[str, Any]) -> str:
    """A table of the figures, one row per mode and operation."""
    rows = []
    for mode, ops in results["modes"].items():
        for op, r in ops.items():
            note = "truncated by time limit" if r.get("truncated") else ""
            if r.get("errors"):
                note = f"{r['errors']} errors, first: {r.get('first_error', '')}"
            rows.append(
                [
                    f"{op} ({mode})",
                    fmt_num(r.get("n")),
                    fmt_num(r.get("p50"), 3),
                    fmt_num(r.get("p90"), 3),
                    fmt_num(r.get("p99"), 3),
                    fmt_num(r.get("max"), 3),
                    note,
                ]
            )
    title = (
        f"{results['server']} {results['server_version']} at {results['socket']} "
        f"({results['api_extensions']} API extensions), latency in ms; {machine_note()}"
    )
    return title + "\n" + table(["request", "n", "p50", "p90", "p99", "max", "note"], rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--socket", help="an LXD-API unix socket")
    target.add_argument("--start-warren", action="store_true", help="start a throwaway Warren")
    target.add_argument("--start-lxd", action="store_true", help="start a throwaway LXD")
    parser.add_argument("--n", type=int, default=1000, help="GET /1.0 requests per mode")
    parser.add_argument("--n-write", type=int, help="profiles created per mode (default: --n)")
    parser.add_argument("--mode", choices=[*MODES, "both"], default="both")
    parser.add_argument("--max-seconds", type=float, default=60, help="time limit per phase")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    modes = MODES if args.mode == "both" else (args.mode,)

    with contextlib.ExitStack() as stack:
        if args.start_warren:
            from warren_stack import WarrenStack

            socket_path = str(stack.enter_context(WarrenStack()).socket)
        elif args.start_lxd:
            from lxd_reference import ThrowawayLXD

            socket_path = str(stack.enter_context(ThrowawayLXD()).socket)
        else:
            socket_path = args.socket
        if not os.path.exists(socket_path):
            print(f"no socket at {socket_path}", file=sys.stderr)
            return 2
        results = run_latency(socket_path, args.n, args.n_write, modes, args.max_seconds)
    print(render(results))
    write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
