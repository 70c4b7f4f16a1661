"""Replay speed of the event log and projection start-up time, with and without a snapshot.

A private ``nats-server -js`` (free loopback port, temporary store) gets the real ``EVENTS``
stream and N realistic catalog events (profile-created then profile-updated, spread over P
profiles, appended the way services append: ``Nats-Msg-Id`` plus the expected last subject
sequence). Then:

(a) replay: a fresh profile projection is rebuilt from the whole log by
    ``services.common.projection.ProjectionRunner``, with a breakdown of where the time goes
    (transport alone, decoding alone, folding alone);
(b) start-up: a new process imports, connects and starts the projection with no snapshot,
    then with a snapshot covering the log plus a few events after it.

    python ops/bench/replay.py                   # 100k events over 1000 profiles
    python ops/bench/replay.py --events 20000 --profile   # smaller, with a cProfile report
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchkit import add_repo_to_path, fmt_num, private_nats, table, write_json

add_repo_to_path()

from bench_projection import count_objects, describe, load_projection  # noqa: E402

from schemas import codec, subjects  # noqa: E402
from schemas.client import Bus  # noqa: E402
from schemas.envelope import Event  # noqa: E402
from schemas.events import PROFILE_CREATED, PROFILE_UPDATED  # noqa: E402
from services.common.eventstore import EventStore, decode_msg  # noqa: E402
from services.common.projection import ProjectionRunner  # noqa: E402

BATCH = 1000  # at most one event per profile per concurrent batch keeps each in order


def profile_event(profile_id: str, index: int, version: int) -> Event:
    """The ``version``-th event of profile number ``index``: created, then updated."""
    payload = {
        "name": f"profile-{index}",
        "description": f"profile {index}, revision {version}",
        "config": {
            "limits.cpu": str(1 + version % 4),
            "limits.memory": f"{256 * (1 + version % 8)}MiB",
            "user.revision": str(version),
        },
        "devices": {
            "root": {"type": "disk", "path": "/", "pool": "default"},
            "eth0": {"type": "nic", "network": "lxdbr0", "name": "eth0"},
        },
    }
    return Event(
        type=PROFILE_CREATED if version == 1 else PROFILE_UPDATED,
        aggregate="profile",
        aggregate_id=profile_id,
        version=version,
        project="default",
        requestor="bench",
        node="bench",
        payload=payload,
    )


async def fill(store: EventStore, total: int, profiles: int) -> dict[str, Any]:
    """Append ``total`` events round-robin over ``profiles`` profiles, concurrently."""
    import uuid

    ids = [str(uuid.uuid4()) for _ in range(profiles)]
    last_seq = dict.fromkeys(ids, 0)
    version = dict.fromkeys(ids, 0)
    start = time.perf_counter()
    done = 0
    while done < total:
        batch = []
        for i in range(min(profiles, BATCH, total - done)):
            index = (done + i) % profiles
            pid = ids[index]
            version[pid] += 1
            batch.append((pid, profile_event(pid, index, version[pid])))

        async def one(pid: str, event: Event) -> None:
            last_seq[pid] = await store.append([event], expected_seq=last_seq[pid])

        await asyncio.gather(*(one(pid, ev) for pid, ev in batch))
        done += len(batch)
    elapsed = time.perf_counter() - start
    return {"events": total, "profiles": profiles, "seconds": elapsed, "rate": total / elapsed}


async def transport_only(store: EventStore) -> float:
    """Seconds to receive the whole stream through the same ordered push consumer as the
    runner, doing nothing with the messages."""
    target = await store.last_seq()
    done = asyncio.Event()
    count = 0

    async def on_msg(msg: Any) -> None:
        nonlocal count
        count += 1
        if msg.metadata.sequence.stream >= target:
            done.set()

    start = time.perf_counter()
    sub = await store.js.subscribe(
        subjects.ALL_EVENTS,
        stream=subjects.EVENTS_STREAM,
        cb=on_msg,
        ordered_consumer=True,
        pending_msgs_limit=-1,
        pending_bytes_limit=-1,
    )
    await asyncio.wait_for(done.wait(), 600)
    elapsed = time.perf_counter() - start
    await sub.unsubscribe()
    return elapsed


async def pull_only(store: EventStore) -> tuple[float, list[tuple[int, bytes]]]:
    """Seconds to pull the whole stream with ``EventStore.replay_raw``, and the messages."""
    start = time.perf_counter()
    raw = [item async for item in store.replay_raw()]
    return time.perf_counter() - start, raw


def decode_only(raw: list[tuple[int, bytes]]) -> tuple[float, float]:
    """Seconds to msgpack-unpack alone, and to fully decode (unpack + validate + upcast).
    Nothing is kept, as in a real replay (keeping 100k models would time the GC instead)."""
    start = time.perf_counter()
    for _, data in raw:
        codec.unpack(data)
    unpack_s = time.perf_counter() - start
    start = time.perf_counter()
    for seq, data in raw:
        decode_msg(seq, data)
    return unpack_s, time.perf_counter() - start


def fold_only(raw: list[tuple[int, bytes]]) -> float:
    """Seconds spent in ``Projection.apply`` alone, on events decoded beforehand."""
    decoded = [decode_msg(seq, data) for seq, data in raw]
    projection = load_projection()
    start = time.perf_counter()
    for stored in decoded:
        projection.apply(stored)
    return time.perf_counter() - start


async def rebuild(store: EventStore, profile: bool) -> dict[str, Any]:
    """Time a full rebuild through ProjectionRunner (no snapshot directory)."""
    projection = load_projection()
    runner = ProjectionRunner(store, projection, snapshot_dir=None)
    profiler = cProfile.Profile() if profile else None
    start = time.perf_counter()
    if profiler:
        profiler.enable()
    await runner.start()
    if profiler:
        profiler.disable()
    elapsed = time.perf_counter() - start
    await runner.stop()
    out: dict[str, Any] = {
        "seconds": elapsed,
        "applied_seq": projection.applied_seq,
        "objects": count_objects(projection),
    }
    if profiler:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(25)
        out["profile"] = text.getvalue()
    return out


def child_start(nats_url: str, snapshot_dir: str) -> dict[str, Any]:
    """Start a projection in a brand new process, as a service does; the parent times the
    whole thing from spawn to the JSON line printed here."""
    cmd = [sys.executable, __file__, "--child", nats_url, snapshot_dir]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"child failed: {done.stderr[-2000:]}")
    inner = json.loads(done.stdout.strip().splitlines()[-1])
    return {"wall_seconds": wall, **inner}


def child_main(nats_url: str, snapshot_dir: str) -> None:
    """Inside the child: connect, restore/replay, report timings, snapshot and exit."""

    async def run() -> dict[str, Any]:
        t0 = time.perf_counter()
        bus = await Bus.open(nats_url, "bench-startup")
        store = EventStore(bus.js)
        await store.ensure_stream()
        t1 = time.perf_counter()
        projection = load_projection()
        runner = ProjectionRunner(store, projection, Path(snapshot_dir))
        snapshot = runner.snapshot_path
        restored_from = 0
        if snapshot is not None and snapshot.exists():
            restored_from = int(codec.unpack(snapshot.read_bytes())["seq"])
        await runner.start()  # restore + replay + write a fresh snapshot
        t2 = time.perf_counter()
        await runner.stop()
        await bus.close()
        return {
            "connect_seconds": t1 - t0,
            "projection_start_seconds": t2 - t1,
            "snapshot_seq": restored_from,
            "replayed": projection.applied_seq - restored_from,
            "objects": count_objects(projection),
            "snapshot_bytes": snapshot.stat().st_size if snapshot and snapshot.exists() else 0,
        }

    print(json.dumps(asyncio.run(run())))


async def bench(events: int, profiles: int, tail: int, profile: bool) -> dict[str, Any]:
    results: dict[str, Any] = {"projection": describe(load_projection())}
    with private_nats() as nats, tempfile.TemporaryDirectory(prefix="bench-snap-") as snap:
        bus = await Bus.open(nats.url, "bench-replay")
        store = EventStore(bus.js)
        await store.ensure_stream()
        results["fill"] = await fill(store, events, profiles)
        n = await store.last_seq()
        results["rebuild"] = await rebuild(store, profile)
        transport_s = await transport_only(store)
        pull_s, raw = await pull_only(store)
        unpack_s, decode_s = decode_only(raw)
        fold_s = fold_only(raw)
        results["breakdown"] = {
            "events": n,
            "push_transport_seconds": transport_s,
            "pull_transport_seconds": pull_s,
            "msgpack_unpack_seconds": unpack_s,
            "decode_seconds": decode_s,
            "fold_seconds": fold_s,
        }
        del raw
        # (b) start-up of a new process: first without a snapshot (it writes one at the end),
        # then with that snapshot plus `tail` events appended after it.
        results["startup_cold"] = await asyncio.to_thread(child_start, nats.url, snap)
        tail_fill = await fill_tail(store, tail, profiles)
        results["startup_snapshot"] = await asyncio.to_thread(child_start, nats.url, snap)
        results["startup_snapshot"]["tail_events"] = tail_fill
        await bus.close()
    return results


async def fill_tail(store: EventStore, tail: int, profiles: int) -> int:
    """Append ``tail`` events for brand new profiles (no expected-sequence bookkeeping)."""
    import uuid

    for i in range(tail):
        pid = str(uuid.uuid4())
        await store.append([profile_event(pid, profiles + i, 1)], expected_seq=0)
    return tail


def render(r: dict[str, Any]) -> str:
    """Replay rates with their breakdown, then the start-up times."""
    b = r["breakdown"]
    n = b["events"]
    steps = [
        ("fill (concurrent appends)", r["fill"]["seconds"]),
        ("rebuild via ProjectionRunner", r["rebuild"]["seconds"]),
        ("  transport: ordered push consumer", b["push_transport_seconds"]),
        ("  transport: EventStore.replay_raw (pull)", b["pull_transport_seconds"]),
        ("  msgpack unpack only", b["msgpack_unpack_seconds"]),
        ("  decode_msg (unpack+pydantic+upcast)", b["decode_seconds"]),
        ("  fold (Projection.apply) only", b["fold_seconds"]),
    ]
    rows = [[name, fmt_num(sec, 3), fmt_num(int(n / sec)) if sec else "-"] for name, sec in steps]
    out = [
        f"Replay of {n:,} events ({r['projection']})",
        table(["step", "seconds", "events/s"], rows),
        "",
        "Start-up of a new process with the projection (spawn -> caught up)",
    ]
    srows = []
    for key, label in (("startup_cold", "no snapshot"), ("startup_snapshot", "with snapshot")):
        s = r[key]
        srows.append(
            [
                label,
                fmt_num(s["wall_seconds"], 3),
                fmt_num(s["projection_start_seconds"], 3),
                fmt_num(s["replayed"]),
                fmt_num(s["snapshot_bytes"]),
            ]
        )
    headers = ["case", "total s", "projection s", "events replayed", "snapshot bytes"]
    out.append(table(headers, srows))
    if "profile" in r["rebuild"]:
        out += ["", "cProfile of the rebuild (by own time):", r["rebuild"]["profile"]]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        child_main(argv[1], argv[2])
        return 0
    parser = argparse.ArgumentParser(description="Replay speed and projection start-up")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--profiles", type=int, default=1000)
    parser.add_argument("--tail", type=int, default=100, help="events after the snapshot")
    parser.add_argument("--profile", action="store_true", help="cProfile the rebuild")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    results = asyncio.run(bench(args.events, args.profiles, args.tail, args.profile))
    print(render(results))
    write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
