"""Container benchmarks, Warren and the real LXD side by side in one run.

For each target (a throwaway Warren from ``ops/run`` and, when installed, a throwaway LXD
5.0.2; or existing daemons given by their sockets) with the busybox image imported:

- single launch: ``POST /1.0/instances`` (image by fingerprint, as ``lxc launch`` sends it) then
  ``PUT .../state start``, each waited for on ``/1.0/operations/<id>/wait``, over the unix
  socket, one at a time (``--launches``, 20): p50/p99 of create, start and both; then the
  forced stop + delete of each;
- ``lxc exec <c> -- true``: wall time of the real client, p50/p99 (``--exec-n``, 20);
- ``lxd-benchmark launch --count 20 <fingerprint>`` and ``lxd-benchmark delete`` (it honours
  ``LXD_SOCKET``, and uses the old ``/1.0/containers`` routes): wall time;
- with N running containers (``--counts 50 500`` for Warren, ``--lxd-counts 50`` for LXD):
  ``GET /1.0/instances?recursion=1`` and ``recursion=2`` (p50/p99 over ``--list-n``) on a
  kept-alive connection, ``lxc list`` wall time (p50 over ``--lxc-list-n``), and memory: RSS and
  PSS of the daemon's own processes (Warren: supervisor, nats-server, services, gateway; LXD:
  the daemon and its children) plus every container's LXC monitor process (``[lxc monitor]``),
  without the containers' own processes; per container = that total / N, and the marginal
  (total - idle) / N.

Every container it creates is deleted again (also on failure or Ctrl-C).

    python ops/bench/instances.py                           # throwaway Warren + LXD
    python ops/bench/instances.py --skip warren             # LXD only
    python ops/bench/instances.py --warren-socket /var/lib/warren/unix.socket --skip lxd
    python ops/bench/instances.py --lxd-socket /var/lib/lxd/unix.socket --skip warren
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import lxd_reference
import warren_stack
from benchkit import (
    UnixHTTPConnection,
    add_repo_to_path,
    fmt_num,
    machine_note,
    summarize,
    table,
    write_json,
)
from proctree import descendants, process_table, tree_memory, warren_processes

LXC = shutil.which("lxc")
LXD_BENCHMARK = shutil.which("lxd-benchmark")
OP_TIMEOUT = 300.0


class ApiError(RuntimeError):
    pass


# -- HTTP over the unix socket --------------------------------------------------------------
class Api:
    """A kept-alive connection to an LXD-API socket with the operation plumbing."""

    def __init__(self, socket_path: str, timeout: float = OP_TIMEOUT + 30) -> None:
        self.socket_path = socket_path
        self.timeout = timeout
        self.conn = UnixHTTPConnection(socket_path, timeout=timeout)

    def close(self) -> None:
        self.conn.close()

    def raw(
        self, method: str, path: str, body: bytes | None = None, headers: dict | None = None
    ) -> tuple[int, Any, float]:
        start = time.perf_counter()
        try:
            self.conn.request(method, path, body=body, headers=headers or {})
            resp = self.conn.getresponse()
            data = resp.read()
        except (http.client.HTTPException, OSError):
            # A server that closed the kept-alive connection: one retry on a new one.
            self.conn.close()
            self.conn = UnixHTTPConnection(self.socket_path, timeout=self.timeout)
            start = time.perf_counter()
            self.conn.request(method, path, body=body, headers=headers or {})
            resp = self.conn.getresponse()
            data = resp.read()
        elapsed = time.perf_counter() - start
        try:
            decoded = json.loads(data) if data else None
        except ValueError:
            decoded = data.decode(errors="replace")
        return resp.status, decoded, elapsed

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any, float]:
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        return self.raw(method, path, payload, headers)

    def sync(self, method: str, path: str, body: Any = None) -> Any:
        status, reply, _ = self.call(method, path, body)
        if not 200 <= status < 300:
            raise ApiError(f"{method} {path} -> {status} {error_of(reply)}")
        return reply.get("metadata") if isinstance(reply, dict) else reply

    def wait(self, reply: Any) -> dict[str, Any]:
        """Wait for the operation of an async reply; raise unless it succeeded."""
        if not isinstance(reply, dict):
            return {}
        op = reply.get("operation")
        if not op:
            return reply.get("metadata") or {}  # a sync reply: nothing to wait for
        status, body, _ = self.call("GET", f"{op}/wait?timeout={int(OP_TIMEOUT)}")
        meta = (body or {}).get("metadata") or {}
        if status != 200 or meta.get("status") != "Success":
            raise ApiError(f"operation {op}: {meta.get('err') or error_of(body)}")
        return meta

    def run(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        """An async call and its operation, waited for."""
        status, reply, _ = self.call(method, path, body)
        if not 200 <= status < 300:
            raise ApiError(f"{method} {path} -> {status} {error_of(reply)}")
        return self.wait(reply)


def error_of(body: Any) -> str:
    if isinstance(body, dict):
        return str(body.get("error") or body.get("status") or body)[:300]
    return str(body)[:300]


# -- what is measured on -------------------------------------------------------------------
class Target:
    """One daemon: its socket, how to find its processes, and an lxc client environment."""

    def __init__(self, label: str, socket_path: str, kind: str, root: Path, pid: int | None):
        self.label = label
        self.socket = socket_path
        self.kind = kind  # "warren" or "lxd"
        self.root = root  # WARREN_DIR or LXD_DIR
        self.pid = pid  # the LXD daemon, or ops/run
        self.client_dir = Path(tempfile.mkdtemp(prefix="bench-lxc-client-"))
        self.env = {**os.environ, "LXD_SOCKET": socket_path, "LXD_CONF": str(self.client_dir)}
        self.extra_pids: Callable[[], set[int]] = set

    def close(self) -> None:
        shutil.rmtree(self.client_dir, ignore_errors=True)

    def stack_pids(self, table_: dict) -> set[int]:
        if self.kind == "lxd":
            return descendants([self.pid] if self.pid else [], table_)
        return warren_processes(self.root, table_) | self.extra_pids()

    def memory(self, names: set[str]) -> dict[str, Any]:
        """The daemon's processes plus the LXC monitors of its containers, without the
        containers' own processes."""
        table_ = process_table()
        stack = self.stack_pids(table_)
        root = str(self.root)
        monitors = set()
        for info in table_.values():
            if not info.cmdline.startswith("[lxc monitor]"):
                continue
            parts = info.cmdline.split()
            if root in info.cmdline or info.pid in stack or (parts and parts[-1] in names):
                monitors.add(info.pid)
        payload = descendants(monitors, table_) - monitors
        own = tree_memory((stack | monitors) - payload, table_)
        mon = tree_memory(monitors, table_)
        return {
            "rss_mib": own["rss_mib"],
            "pss_mib": own["pss_mib"],
            "processes": own["processes"],
            "monitors": mon["processes"],
            "monitor_rss_mib": mon["rss_mib"],
            "monitor_pss_mib": mon["pss_mib"],
        }

    def lxc(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        assert LXC is not None
        return subprocess.run(
            [LXC, *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )


def _server_pid(socket_path: str) -> int | None:
    api = Api(socket_path, timeout=10)
    try:
        env = (api.sync("GET", "/1.0") or {}).get("environment") or {}
        return env.get("server_pid")
    finally:
        api.close()


@contextlib.contextmanager
def warren_target(socket_path: str | None) -> Iterator[Target]:
    if socket_path:
        target = Target("Warren", socket_path, "warren", Path(socket_path).parent, None)
        try:
            yield target
        finally:
            target.close()
        return
    stack = warren_stack.WarrenStack()
    # mkdtemp makes the directory 0700; an unprivileged container's root (a mapped uid) must
    # be able to traverse it to reach its rootfs below.
    stack.dir.chmod(0o711)
    with stack:
        assert stack.proc is not None
        target = Target("Warren", str(stack.socket), "warren", stack.dir, stack.proc.pid)
        target.extra_pids = stack.pids
        try:
            yield target
        finally:
            target.close()


@contextlib.contextmanager
def lxd_target(socket_path: str | None) -> Iterator[Target]:
    if socket_path:
        pid = _server_pid(socket_path)
        target = Target(lxd_label(), socket_path, "lxd", Path(socket_path).parent, pid)
        try:
            yield target
        finally:
            target.close()
        return
    with lxd_reference.ThrowawayLXD() as lxd:
        target = Target(lxd_label(), str(lxd.socket), "lxd", lxd.dir, lxd.pid)
        try:
            yield target
        finally:
            target.close()


def lxd_label() -> str:
    return f"LXD {lxd_reference.version()}" if lxd_reference.installed() else "LXD"


# -- the image -----------------------------------------------------------------------------
def import_busybox(api: Api, workdir: Path) -> tuple[str, bool]:
    """Build the busybox image and upload it; return its fingerprint and whether it is ours."""
    add_repo_to_path()
    from services.image.builders.busybox import build_busybox

    data = Path(build_busybox(workdir).path).read_bytes()
    fingerprint = hashlib.sha256(data).hexdigest()
    status, _, _ = api.call("GET", f"/1.0/images/{fingerprint}")
    if status == 200:
        return fingerprint, False
    status, reply, _ = api.raw(
        "POST", "/1.0/images", data, {"Content-Type": "application/octet-stream"}
    )
    if not 200 <= status < 300:
        raise ApiError(f"image upload -> {status} {error_of(reply)}")
    api.wait(reply)
    return fingerprint, True


# -- containers ----------------------------------------------------------------------------
class Fleet:
    """Every container this run made on one target, so that all of them are removed."""

    def __init__(self, target: Target, fingerprint: str) -> None:
        self.target = target
        self.fingerprint = fingerprint
        self.prefix = f"bench-{uuid.uuid4().hex[:6]}"
        self.names: list[str] = []
        self._counter = 0
        self._lock = threading.Lock()
        self._local = threading.local()

    def api(self) -> Api:
        if getattr(self._local, "api", None) is None:
            self._local.api = Api(self.target.socket)
        return self._local.api

    def new_name(self) -> str:
        with self._lock:
            self._counter += 1
            name = f"{self.prefix}-{self._counter}"
            self.names.append(name)
            return name

    def create(self, name: str) -> float:
        start = time.perf_counter()
        body = {"name": name, "source": {"type": "image", "fingerprint": self.fingerprint}}
        self.api().run("POST", "/1.0/instances", body)
        return time.perf_counter() - start

    def start(self, name: str) -> float:
        start = time.perf_counter()
        self.api().run("PUT", f"/1.0/instances/{name}/state", {"action": "start", "timeout": -1})
        return time.perf_counter() - start

    def launch(self) -> tuple[str, float, float]:
        name = self.new_name()
        created = self.create(name)
        return name, created, self.start(name)

    def remove(self, name: str) -> float:
        """Forced stop (if running) and delete, as ``lxc delete --force`` does."""
        api = self.api()
        start = time.perf_counter()
        status, body, _ = api.call("GET", f"/1.0/instances/{name}")
        if status == 404:
            with self._lock:
                if name in self.names:
                    self.names.remove(name)
            return 0.0
        if (body or {}).get("metadata", {}).get("status") != "Stopped":
            api.run("PUT", f"/1.0/instances/{name}/state", {"action": "stop", "force": True})
        api.run("DELETE", f"/1.0/instances/{name}")
        with self._lock:
            self.names.remove(name)
        return time.perf_counter() - start

    def remove_all(self, parallel: int) -> list[str]:
        """Remove every container still recorded; return the errors."""
        errors: list[str] = []

        def one(name: str) -> None:
            try:
                self.remove(name)
            except Exception as exc:
                errors.append(f"{name}: {exc}")

        with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
            list(pool.map(one, list(self.names)))
        return errors


def benchmark_containers(api: Api, running_only: bool = False) -> list[str]:
    """Containers lxd-benchmark made (``user.lxd-benchmark: true``)."""
    status, body, _ = api.call("GET", "/1.0/instances?recursion=1")
    if status != 200:
        return []
    return [
        i["name"]
        for i in body.get("metadata") or []
        if (i.get("config") or {}).get("user.lxd-benchmark") == "true"
        and (not running_only or i.get("status") == "Running")
    ]


# -- the phases ----------------------------------------------------------------------------
def phase_launch(fleet: Fleet, n: int, exec_n: int) -> dict[str, Any]:
    creates, starts, launches, removes = [], [], [], []
    names = []
    for _ in range(n):
        name, created, started = fleet.launch()
        names.append(name)
        creates.append(created)
        starts.append(started)
        launches.append(created + started)
    out: dict[str, Any] = {
        "n": n,
        "first_launch_ms": launches[0] * 1000 if launches else None,
        "create": summarize(creates),
        "start": summarize(starts),
        "launch": summarize(launches),
    }
    if LXC is not None and names:
        out["exec"] = phase_exec(fleet.target, names[0], exec_n)
    for name in names:
        removes.append(fleet.remove(name))
    out["delete"] = summarize(removes)
    return out


def phase_exec(target: Target, name: str, n: int) -> dict[str, Any]:
    samples = []
    target.lxc("exec", name, "--", "true")  # warm-up (the client's first run writes its config)
    for _ in range(n):
        start = time.perf_counter()
        done = target.lxc("exec", name, "--", "true", timeout=60)
        elapsed = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"lxc exec failed: {done.stderr.strip()}")
        samples.append(elapsed)
    return summarize(samples)


def phase_lxd_benchmark(target: Target, fingerprint: str, count: int) -> dict[str, Any]:
    if LXD_BENCHMARK is None:
        return {"error": "lxd-benchmark not installed (apt-get install lxd-tools)"}
    env = dict(target.env)
    out: dict[str, Any] = {"count": count}
    api = Api(target.socket)
    try:
        for action, args in (
            ("launch", ["launch", "--count", str(count), fingerprint]),
            ("delete", ["delete"]),
        ):
            start = time.perf_counter()
            done = subprocess.run(
                [LXD_BENCHMARK, *args], env=env, capture_output=True, text=True, timeout=1800
            )
            wall = time.perf_counter() - start
            if done.returncode != 0:
                out[f"{action}_error"] = (done.stderr or done.stdout).strip()[-400:]
                break
            match = re.search(r"Batch processing completed in ([\d.]+)s", done.stdout)
            out[f"{action}_seconds"] = wall
            out[f"{action}_batch_seconds"] = float(match.group(1)) if match else None
            # lxd-benchmark logs a failed container and carries on (exit status 0).
            failures = [line for line in done.stdout.splitlines() if "ailed" in line]
            if action == "launch":
                running = benchmark_containers(api, running_only=True)
                out["launch_running"] = len(running)
                if len(running) != count:
                    failures.insert(0, f"{len(running)} of {count} containers running")
            if failures:
                out[f"{action}_error"] = "; ".join(failures)[:400]
    finally:
        # Whatever lxd-benchmark left (a failed run, a server it cannot drive) goes too.
        leftovers = benchmark_containers(api)
        api.close()
        if leftovers:
            fleet = Fleet(target, fingerprint)
            fleet.names = leftovers
            out["leftovers_removed"] = len(leftovers)
            errors = fleet.remove_all(4)
            if errors:
                out["cleanup_errors"] = errors[:5]
    return out


def timed_gets(api: Api, path: str, n: int) -> dict[str, Any]:
    api.call("GET", path)  # warm-up
    samples = []
    for _ in range(n):
        status, body, elapsed = api.call("GET", path)
        if status != 200:
            raise ApiError(f"GET {path} -> {status} {error_of(body)}")
        samples.append(elapsed)
    out = summarize(samples)
    out["items"] = len((body or {}).get("metadata") or [])
    return out


def timed_lxc_list(target: Target, n: int) -> dict[str, Any]:
    if LXC is None:
        return {"n": 0}
    target.lxc("list")  # warm-up
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        done = target.lxc("list", timeout=600)
        samples.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise RuntimeError(f"lxc list failed: {done.stderr.strip()}")
    return summarize(samples)


def phase_scale(
    fleet: Fleet,
    counts: list[int],
    parallel: int,
    list_n: int,
    lxc_list_n: int,
    settle: float,
    idle: dict[str, Any],
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    running: list[str] = []
    for count in sorted(set(counts)):
        missing = count - len(running)
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
            launched = list(pool.map(lambda _: fleet.launch()[0], range(missing)))
        running.extend(launched)
        fill_seconds = time.perf_counter() - start
        time.sleep(settle)
        api = Api(fleet.target.socket)
        try:
            rec1 = timed_gets(api, "/1.0/instances?recursion=1", list_n)
            rec2 = timed_gets(api, "/1.0/instances?recursion=2", list_n)
        finally:
            api.close()
        lxc_list = timed_lxc_list(fleet.target, lxc_list_n)
        mem = fleet.target.memory(set(running))
        per: dict[str, Any] = {
            "rss_mib": mem["rss_mib"] / count,
            "pss_mib": mem["pss_mib"] / count,
        }
        if idle:
            per["marginal_rss_mib"] = (mem["rss_mib"] - idle["rss_mib"]) / count
            per["marginal_pss_mib"] = (mem["pss_mib"] - idle["pss_mib"]) / count
        if mem["monitors"]:
            per["monitor_rss_mib"] = mem["monitor_rss_mib"] / mem["monitors"]
            per["monitor_pss_mib"] = mem["monitor_pss_mib"] / mem["monitors"]
        results[str(count)] = {
            "launched": missing,
            "launch_wall_seconds": fill_seconds,
            "recursion1": rec1,
            "recursion2": rec2,
            "lxc_list": lxc_list,
            "memory": mem,
            "per_container": per,
        }
        print(
            f"  {count} running: recursion=1 p50 {rec1['p50']:.1f} ms, recursion=2 p50 "
            f"{rec2['p50']:.1f} ms, lxc list p50 {lxc_list.get('p50', float('nan')):.0f} ms, "
            f"{per['pss_mib']:.1f} MiB PSS per container",
            flush=True,
        )
    return results


def _guard(results: dict[str, Any], key: str, fn: Callable[[], Any]) -> None:
    print(f"-- {key}", flush=True)
    try:
        results[key] = fn()
    except Exception as exc:
        traceback.print_exc()
        results[key] = {"error": f"{type(exc).__name__}: {exc}"}


def measure(target: Target, args: argparse.Namespace, counts: list[int]) -> dict[str, Any]:
    """Every phase against one target; every container made is deleted at the end."""
    results: dict[str, Any] = {"label": target.label}
    workdir = Path(tempfile.mkdtemp(prefix="bench-image-"))
    api = Api(target.socket)
    fleet: Fleet | None = None
    owned_image = False
    fingerprint = ""
    try:
        fingerprint, owned_image = import_busybox(api, workdir)
        results["fingerprint"] = fingerprint
        fleet = Fleet(target, fingerprint)
        time.sleep(args.settle)
        idle = target.memory(set())
        results["memory_idle"] = idle
        if args.launches:
            _guard(results, "launch", lambda: phase_launch(fleet, args.launches, args.exec_n))
        if args.benchmark_count:
            _guard(
                results,
                "lxd_benchmark",
                lambda: phase_lxd_benchmark(target, fingerprint, args.benchmark_count),
            )
        if counts:
            _guard(
                results,
                "scale",
                lambda: phase_scale(
                    fleet, counts, args.parallel, args.list_n, args.lxc_list_n, args.settle, idle
                ),
            )
    finally:
        if fleet is not None:
            errors = fleet.remove_all(args.parallel)
            if errors:
                results["cleanup_errors"] = errors[:10]
                print(f"cleanup: {len(errors)} container(s) not removed", file=sys.stderr)
        if owned_image and fingerprint:
            with contextlib.suppress(Exception):
                api.run("DELETE", f"/1.0/images/{fingerprint}")
        api.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return results


# -- output --------------------------------------------------------------------------------
def _get(r: dict[str, Any] | None, *keys: str) -> Any:
    cur: Any = r
    for key in keys:
        if not isinstance(cur, dict) or key not in cur:
            return None
        cur = cur[key]
    return cur


def rows(warren: dict[str, Any] | None, lxd: dict[str, Any] | None) -> list[list[str]]:
    """``[metric, Warren, LXD]`` rows (also used by run_all's summary)."""
    out: list[list[str]] = []

    def row(label: str, *keys: str, digits: int = 1, scale: float = 1.0) -> None:
        cells = []
        for r in (warren, lxd):
            value = _get(r, *keys)
            cells.append(fmt_num(value * scale if isinstance(value, float) else value, digits))
        out.append([label, *cells])

    n = _get(warren, "launch", "n") or _get(lxd, "launch", "n") or 0
    for stat in ("p50", "p99"):
        row(f"launch (create + start) {stat} ms, n={n}", "launch", "launch", stat)
    row("  create p50 ms", "launch", "create", "p50")
    row("  start p50 ms", "launch", "start", "p50")
    row("  first launch ms", "launch", "first_launch_ms")
    row("forced stop + delete p50 ms", "launch", "delete", "p50")
    for stat in ("p50", "p99"):
        row(f"lxc exec -- true {stat} ms", "launch", "exec", stat)
    count = _get(warren, "lxd_benchmark", "count") or _get(lxd, "lxd_benchmark", "count") or 0
    row(f"lxd-benchmark launch --count {count} s", "lxd_benchmark", "launch_seconds", digits=2)
    row("lxd-benchmark delete s", "lxd_benchmark", "delete_seconds", digits=2)
    row("memory idle RSS MiB", "memory_idle", "rss_mib")
    row("memory idle PSS MiB", "memory_idle", "pss_mib")
    counts = sorted(
        {int(k) for r in (warren, lxd) for k in (_get(r, "scale") or {}) if k.isdigit()}
    )
    for c in counts:
        key = str(c)
        for stat in ("p50", "p99"):
            row(
                f"GET /1.0/instances?recursion=1 {stat} ms, {c} running",
                "scale",
                key,
                "recursion1",
                stat,
            )
        for stat in ("p50", "p99"):
            row(
                f"GET /1.0/instances?recursion=2 {stat} ms, {c} running",
                "scale",
                key,
                "recursion2",
                stat,
            )
        row(f"lxc list p50 ms, {c} running", "scale", key, "lxc_list", "p50", digits=0)
        row(f"memory RSS MiB, {c} running", "scale", key, "memory", "rss_mib")
        row(f"memory PSS MiB, {c} running", "scale", key, "memory", "pss_mib")
        row(
            f"  per container RSS MiB (total / {c})",
            "scale",
            key,
            "per_container",
            "rss_mib",
            digits=2,
        )
        row(
            f"  per container PSS MiB (total / {c})",
            "scale",
            key,
            "per_container",
            "pss_mib",
            digits=2,
        )
        row(
            "  per container PSS MiB (marginal over idle)",
            "scale",
            key,
            "per_container",
            "marginal_pss_mib",
            digits=2,
        )
        row(
            "  LXC monitor PSS MiB each", "scale", key, "per_container", "monitor_pss_mib", digits=2
        )
        row(
            f"  time to launch up to {c} s (parallel)",
            "scale",
            key,
            "launch_wall_seconds",
            digits=1,
        )
    return out


def render(warren: dict[str, Any] | None, lxd: dict[str, Any] | None) -> str:
    w_label = (warren or {}).get("label", "Warren") if warren else "Warren (skipped)"
    l_label = (lxd or {}).get("label", "LXD") if lxd else "LXD (skipped)"
    return table(["metric", w_label, l_label], rows(warren, lxd))


def errors_of(result: dict[str, Any] | None) -> list[str]:
    if not result:
        return []
    found = []
    for key, value in result.items():
        if isinstance(value, dict):
            for sub, text in value.items():
                if sub.endswith("error") or sub == "error":
                    found.append(f"{key}: {str(text).strip().splitlines()[-1][:300]}")
        elif key == "error":
            found.append(str(value))
    return found


def parse_counts(values: list[str]) -> list[int]:
    counts = []
    for value in values:
        counts.extend(int(v) for v in value.replace(",", " ").split() if v)
    return [c for c in counts if c > 0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--warren-socket", help="measure this running Warren instead")
    parser.add_argument("--lxd-socket", help="measure this running LXD instead")
    parser.add_argument("--skip", action="append", default=[], choices=["warren", "lxd"])
    parser.add_argument("--launches", type=int, default=20, help="single launches (20)")
    parser.add_argument("--exec-n", type=int, default=20, help="lxc exec round trips (20)")
    parser.add_argument(
        "--benchmark-count", type=int, default=20, help="lxd-benchmark launch --count (20)"
    )
    parser.add_argument(
        "--counts", nargs="+", default=["50", "500"], help="running containers, Warren (50 500)"
    )
    parser.add_argument(
        "--lxd-counts", "--lxd-count", nargs="+", default=["50"], help="the same for LXD (50)"
    )
    parser.add_argument("--list-n", type=int, default=20, help="GETs per list measurement")
    parser.add_argument("--lxc-list-n", type=int, default=5, help="lxc list runs per count")
    parser.add_argument("--parallel", type=int, default=4, help="concurrent launches (4)")
    parser.add_argument("--settle", type=float, default=2.0, help="idle seconds before memory")
    parser.add_argument("--json", help="also write every figure to this file")
    args = parser.parse_args(argv)

    warren: dict[str, Any] | None = None
    lxd: dict[str, Any] | None = None
    if "warren" not in args.skip:
        if args.warren_socket or warren_stack.available():
            print("== Warren", flush=True)
            try:
                with warren_target(args.warren_socket) as target:
                    warren = measure(target, args, parse_counts(args.counts))
            except Exception as exc:
                traceback.print_exc()
                warren = {"label": "Warren", "error": f"{type(exc).__name__}: {exc}"}
    if "lxd" not in args.skip and (args.lxd_socket or lxd_reference.installed()):
        print(f"== {lxd_label()}", flush=True)
        try:
            with lxd_target(args.lxd_socket) as target:
                lxd = measure(target, args, parse_counts(args.lxd_counts))
        except Exception as exc:
            traceback.print_exc()
            lxd = {"label": lxd_label(), "error": f"{type(exc).__name__}: {exc}"}

    print(f"\n== Containers ({machine_note()})")
    print(render(warren, lxd))
    for name, result in (("Warren", warren), ("LXD", lxd)):
        for line in errors_of(result):
            print(f"{name}: {line}")
    write_json(args.json, {"warren": warren, "lxd": lxd})
    return 0


if __name__ == "__main__":
    sys.exit(main())
