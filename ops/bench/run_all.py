"""Run every benchmark and print ``metric | Warren | LXD 5.0.2 | target``.

A throwaway Warren (``ops/run`` in a temporary WARREN_DIR) and, when installed, a throwaway
real LXD are started, measured the same way (idle memory, API latency, memory again) and
stopped; then the replay benchmark runs on its own private nats-server, and the container
benchmark (``instances.py``: launch, lxd-benchmark, list at scale, exec, memory per container)
in its own process with its own throwaway Warren and LXD. Use ``ops/bench/run-all`` (it picks
the project's Python).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import bus_latency
import instance_report
import lxd_reference
import warren_stack
from api_latency import render as render_latency
from api_latency import run_latency
from benchkit import fmt_num, machine_note, table, write_json

HERE = Path(__file__).resolve().parent
TARGETS = {
    ("GET /1.0", "keepalive", "p50"): 2.0,
    ("profile create", "keepalive", "p50"): 5.0,
}


def measure_warren(n: int, n_write: int, max_seconds: float, settle: float) -> dict[str, Any]:
    """Start a throwaway Warren and measure it like the LXD reference."""
    if not warren_stack.available():
        return {"error": "ops/run does not exist yet"}
    with warren_stack.WarrenStack() as warren:
        time.sleep(settle)
        idle = warren.memory()
        latency = run_latency(str(warren.socket), n, n_write, max_seconds=max_seconds)
        after = warren.memory()
        start_seconds = warren.start_seconds
        bus = asyncio.run(bus_latency.measure(bus_latency.nats_url_of(str(warren.dir)), n, n_write))
    out = {"start_seconds": start_seconds, "memory_idle": idle, "memory_after": after}
    out["latency"] = latency
    out["bus"] = bus
    out["leftovers"] = warren.leftovers
    return out


def measure_replay(events: int, profiles: int) -> dict[str, Any]:
    """The replay benchmark in its own process (it fills and replays a large log)."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        cmd = [sys.executable, str(HERE / "replay.py"), "--events", str(events)]
        cmd += ["--profiles", str(profiles), "--json", out.name]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        if done.returncode != 0:
            return {"error": done.stderr[-2000:]}
        print(done.stdout)
        return json.loads(Path(out.name).read_text())


def measure_instances(skip: list[str], counts: str, lxd_counts: str) -> dict[str, Any]:
    """The container benchmark in its own process (throwaway Warren and LXD of its own)."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        cmd = [sys.executable, str(HERE / "instances.py"), "--json", out.name]
        cmd += ["--counts", *counts.split(), "--lxd-counts", *lxd_counts.split()]
        for name in ("warren", "lxd"):
            if name in skip:
                cmd += ["--skip", name]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=7200)
        print(done.stdout)
        if done.returncode != 0:
            return {"error": done.stderr[-2000:]}
        return json.loads(Path(out.name).read_text())


def _guarded(name: str, fn: Any, *args: Any) -> dict[str, Any]:
    # One failing benchmark must not hide the figures of the others.
    print(f"== {name}", flush=True)
    try:
        return fn(*args)
    except Exception as exc:
        traceback.print_exc()
        return {"error": f"{type(exc).__name__}: {exc}"}


def _lat(r: dict[str, Any] | None, op: str, mode: str, stat: str) -> float | None:
    try:
        return r["latency"]["modes"][mode][op][stat]  # type: ignore[index]
    except (KeyError, TypeError):
        return None


def _verdict(value: float | None, target: float | None) -> str:
    if target is None:
        return ""
    if value is None:
        return f"< {target:g} ms (not measured)"
    return f"< {target:g} ms ({'met' if value < target else 'MISSED'})"


def summary(
    warren: dict[str, Any],
    lxd: dict[str, Any] | None,
    replay: dict[str, Any],
    containers: dict[str, Any] | None = None,
) -> str:
    """The side-by-side table."""
    rows: list[list[str]] = []
    for op in ("GET /1.0", "profile create", "profile get", "profile delete"):
        for mode in ("keepalive", "fresh"):
            for stat in ("p50", "p99"):
                target = TARGETS.get((op, mode, stat))
                w = _lat(warren, op, mode, stat)
                lx = _lat(lxd, op, mode, stat)
                rows.append(
                    [f"{op} {stat} ms ({mode})", fmt_num(w, 3), fmt_num(lx, 3), _verdict(w, target)]
                )

    bus_rows = (
        ("service", "profile create (service)", "profile create p50 ms on the bus (no gateway)"),
        ("service", "profile get (service)", "profile get p50 ms on the bus (no gateway)"),
        ("primitives", "core request/reply (echo)", "  NATS request/reply p50 ms"),
        ("primitives", "stream_info (projection barrier)", "  JetStream stream_info p50 ms"),
        ("primitives", "get_last_msg (load last event)", "  JetStream get_last_msg p50 ms"),
        ("primitives", "JetStream append + ack (file store)", "  JetStream append p50 ms"),
    )
    for group, key, label in bus_rows:
        try:
            value = warren["bus"][group][key]["p50"]
        except KeyError:
            value = None
        rows.append([label, fmt_num(value, 3), "n/a", ""])

    def mem(r: dict[str, Any] | None, key: str, field: str) -> str:
        try:
            return fmt_num(r[key][field], 1)  # type: ignore[index]
        except (KeyError, TypeError):
            return "-"

    for key, label in (("memory_idle", "idle"), ("memory_after", "after latency run")):
        for field in ("rss_mib", "pss_mib"):
            name = f"memory {field[:3].upper()} MiB, {label}"
            rows.append([name, mem(warren, key, field), mem(lxd, key, field), ""])
    rows.append(
        [
            "processes",
            mem(warren, "memory_idle", "processes"),
            mem(lxd, "memory_idle", "processes"),
            "",
        ]
    )
    rows.append(
        [
            "start-up to API ready s",
            fmt_num(warren.get("start_seconds"), 2),
            fmt_num((lxd or {}).get("start_seconds"), 2),
            "",
        ]
    )
    if "breakdown" in replay:
        n = replay["breakdown"]["events"]
        rebuild = replay["rebuild"]["seconds"]
        rows.append([f"replay events/s ({n:,} events)", fmt_num(int(n / rebuild)), "n/a", ""])
        starts = (
            ("startup_cold", "projection process start s, no snapshot"),
            ("startup_snapshot", "projection process start s, snapshot"),
            ("service_cold", "instance service start s, no snapshot"),
            ("service_snapshot", "instance service start s, snapshot"),
        )
        for key, label in starts:
            if key in replay:
                value = replay[key]["wall_seconds"]
                rows.append([f"{label} ({n:,} events)", fmt_num(value, 2), "n/a", ""])
    if containers and "error" not in containers:
        for label, w, lx in instance_report.rows(containers.get("warren"), containers.get("lxd")):
            rows.append([f"containers: {label.strip()}", w, lx, ""])
    lxd_name = f"LXD {lxd['version']}" if lxd and "version" in lxd else "LXD (absent)"
    return table(["metric", "Warren", lxd_name, "target"], rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="GET /1.0 requests per mode")
    parser.add_argument("--n-write", type=int, default=1000, help="profiles created per mode")
    parser.add_argument("--max-seconds", type=float, default=60, help="time limit per phase")
    parser.add_argument("--settle", type=float, default=3, help="idle seconds before memory")
    parser.add_argument("--events", type=int, default=100_000, help="events for the replay")
    parser.add_argument("--profiles", type=int, default=1000, help="profiles in the replay log")
    parser.add_argument(
        "--instance-counts", default="50 500", help="running containers for Warren's list/memory"
    )
    parser.add_argument("--lxd-instance-counts", default="50", help="the same for LXD")
    parser.add_argument(
        "--skip", action="append", default=[], choices=["warren", "lxd", "replay", "instances"]
    )
    parser.add_argument("--json", help="also write every figure to this file")
    args = parser.parse_args(argv)

    lat_args = (args.n, args.n_write, args.max_seconds, args.settle)
    warren: dict[str, Any] = {"error": "skipped"}
    lxd: dict[str, Any] | None = None
    replay: dict[str, Any] = {"error": "skipped"}
    containers: dict[str, Any] = {"error": "skipped"}
    if "warren" not in args.skip:
        warren = _guarded("Warren (throwaway, ops/run)", measure_warren, *lat_args)
        if "latency" in warren:
            print(render_latency(warren["latency"]))
            print(bus_latency.render(warren["bus"]))
    if "lxd" not in args.skip and lxd_reference.installed():
        lxd = _guarded("LXD (throwaway daemon)", lxd_reference.measure, *lat_args)
        if "latency" in lxd:
            print(render_latency(lxd["latency"]))
    if "replay" not in args.skip:
        replay = _guarded("replay", measure_replay, args.events, args.profiles)
    if "instances" not in args.skip:
        containers = _guarded(
            "containers (instances.py)",
            measure_instances,
            args.skip,
            args.instance_counts,
            args.lxd_instance_counts,
        )

    print(f"\n== Summary ({machine_note()})")
    print(summary(warren, lxd, replay, containers))
    for name, r in (
        ("Warren", warren),
        ("LXD", lxd or {}),
        ("replay", replay),
        ("containers", containers),
    ):
        if "error" in r and r["error"] != "skipped":
            print(f"{name}: {r['error'].strip().splitlines()[-1]}")
    for line in warren.get("leftovers", []):
        print(f"Warren stop: {line}")
    for name in ("warren", "lxd"):
        for line in instance_report.errors_of(containers.get(name)):
            print(f"containers, {name}: {line}")
    write_json(
        args.json, {"warren": warren, "lxd": lxd, "replay": replay, "containers": containers}
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
