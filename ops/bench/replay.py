"""Replay speed of the event log and start-up time over it, with and without a snapshot.

A private ``nats-server -js`` (free loopback port, temporary store) gets the real ``EVENTS``
stream and a realistic catalog log (see ``replay_log.py``: 100k profile events over 1000
profiles by default, appended the way services append). Then:

(a) replay: a fresh catalog projection (the instance service's own when it is in the tree)
    is rebuilt from the whole log by ``services.common.projection.ProjectionRunner``, with a
    breakdown of where the time goes (transport alone, decoding alone, folding alone);
(b) start-up: a new process starts the projection with no snapshot, then with a snapshot
    covering the log plus a few events after it; the same for the real instance service
    (spawn -> answering on the bus) when it exists.

    python ops/bench/replay.py                            # 100k events over 1000 profiles
    python ops/bench/replay.py --events 20000 --profile   # smaller, with a cProfile report
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import sys
import tempfile
import time
from typing import Any

from benchkit import (
    add_repo_to_path,
    fmt_num,
    machine_note,
    private_nats,
    table,
    write_json,
)

add_repo_to_path()

import startup  # noqa: E402
from bench_projection import count_objects, describe, load_projection  # noqa: E402
from replay_log import LogWriter, prepare  # noqa: E402

from schemas import codec, subjects  # noqa: E402
from schemas.client import Bus  # noqa: E402
from services.common.eventstore import EventStore, decode_msg  # noqa: E402
from services.common.projection import ProjectionRunner  # noqa: E402


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


def fold_only(raw: list[tuple[int, bytes]], stand_in: bool) -> float:
    """Seconds spent in ``Projection.apply`` alone, on events decoded beforehand."""
    decoded = [decode_msg(seq, data) for seq, data in raw]
    projection = load_projection(stand_in)
    start = time.perf_counter()
    for stored in decoded:
        projection.apply(stored)
    return time.perf_counter() - start


async def rebuild(store: EventStore, profile: bool, stand_in: bool) -> dict[str, Any]:
    """Time a full rebuild through ProjectionRunner (no snapshot directory)."""
    projection = load_projection(stand_in)
    runner = ProjectionRunner(store, projection, snapshot_dir=None)
    profiler = cProfile.Profile() if profile else None
    cpu = time.process_time()
    start = time.perf_counter()
    if profiler:
        profiler.enable()
    await runner.start()
    if profiler:
        profiler.disable()
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu
    await runner.stop()
    out: dict[str, Any] = {
        "seconds": elapsed,
        "cpu_seconds": cpu,
        "applied_seq": projection.applied_seq,
        "objects": count_objects(projection),
    }
    if profiler:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(25)
        out["profile"] = text.getvalue()
    return out


async def bench(
    events: int, profiles: int, tail: int, profile: bool, stand_in: bool
) -> dict[str, Any]:
    """Fill a private log, then measure replay and start-up over it."""
    results: dict[str, Any] = {"projection": describe(load_projection(stand_in))}
    with (
        private_nats() as nats,
        tempfile.TemporaryDirectory(prefix="bench-snap-") as snap,
        tempfile.TemporaryDirectory(prefix="bench-wdir-") as wdir,
    ):
        bus = await Bus.open(nats.url, "bench-replay")
        store = EventStore(bus.js)
        await store.ensure_stream()
        await prepare(store)
        writer = LogWriter(store)
        results["fill"] = await writer.fill(events, profiles)
        n = await store.last_seq()
        results["rebuild"] = await rebuild(store, profile, stand_in)
        transport_s = await transport_only(store)
        pull_s, raw = await pull_only(store)
        unpack_s, decode_s = decode_only(raw)
        fold_s = fold_only(raw, stand_in)
        del raw
        results["breakdown"] = {
            "events": n,
            "push_transport_seconds": transport_s,
            "pull_transport_seconds": pull_s,
            "msgpack_unpack_seconds": unpack_s,
            "decode_seconds": decode_s,
            "fold_seconds": fold_s,
        }
        # (b) first without a snapshot (each start writes one), then with it plus a tail.
        cold = asyncio.to_thread(startup.projection_process_start, nats.url, snap, stand_in)
        results["startup_cold"] = await cold
        if startup.service_available():
            results["service_cold"] = await asyncio.to_thread(startup.service_start, nats.url, wdir)
        results["tail_events"] = await writer.tail(tail)
        warm = asyncio.to_thread(startup.projection_process_start, nats.url, snap, stand_in)
        results["startup_snapshot"] = await warm
        if startup.service_available():
            results["service_snapshot"] = await asyncio.to_thread(
                startup.service_start, nats.url, wdir
            )
        await bus.close()
    return results


def render(r: dict[str, Any]) -> str:
    """Replay rates with their breakdown, then the start-up times."""
    b = r["breakdown"]
    n = b["events"]
    steps = [
        ("fill (concurrent appends)", r["fill"]["seconds"]),
        ("rebuild via ProjectionRunner", r["rebuild"]["seconds"]),
        ("  the same in CPU time of this process", r["rebuild"]["cpu_seconds"]),
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
        "Start-up of a new process over that log (spawn -> caught up / answering)",
    ]
    srows = []
    cases = (
        ("startup_cold", "projection process, no snapshot"),
        ("startup_snapshot", "projection process, snapshot"),
        ("service_cold", "instance service, no snapshot"),
        ("service_snapshot", "instance service, snapshot"),
    )
    for key, label in cases:
        if key not in r:
            continue
        s = r[key]
        replayed = s.get("replayed")
        if replayed is None:  # the service does not say; the log does
            replayed = r["tail_events"] if s["had_snapshot"] else n
        srows.append(
            [
                label,
                fmt_num(s["wall_seconds"], 3),
                fmt_num(s.get("connect_seconds"), 3),
                fmt_num(s.get("projection_start_seconds"), 3),
                fmt_num(s.get("snapshot_write_seconds"), 3),
                fmt_num(replayed),
                fmt_num(s["snapshot_bytes"]),
            ]
        )
    headers = [
        "case",
        "total s",
        "connect s",
        "projection s",
        "snapshot write s",
        "events replayed",
        "snapshot bytes",
    ]
    out.append(table(headers, srows))
    out.append(
        "total = spawn of a new interpreter until caught up (projection process) or until it "
        "answers a profile list on the bus (instance service); " + machine_note()
    )
    if "profile" in r["rebuild"]:
        out += ["", "cProfile of the rebuild (by own time):", r["rebuild"]["profile"]]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Replay speed and start-up over a large log")
    parser.add_argument("--events", type=int, default=100_000, help="profile events")
    parser.add_argument("--profiles", type=int, default=1000)
    parser.add_argument("--tail", type=int, default=100, help="events after the snapshot")
    parser.add_argument("--profile", action="store_true", help="cProfile the rebuild")
    parser.add_argument(
        "--stand-in", action="store_true", help="use the simple stand-in projection"
    )
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    results = asyncio.run(bench(args.events, args.profiles, args.tail, args.profile, args.stand_in))
    print(render(results))
    write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
