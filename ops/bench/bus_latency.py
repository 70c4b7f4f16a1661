"""Where a Warren API call spends its time: the same calls measured on the bus, without the
gateway, next to the primitive round trips they are made of.

A profile create in the instance service costs a projection barrier (``stream_info``), a
name claim (``get_last_msg`` + a JetStream append) and the profile's own append; a get costs
a barrier. Measuring each primitive on the same nats-server shows which ones dominate, and
comparing with ``api_latency.py`` shows what the gateway adds.

    python ops/bench/bus_latency.py --warren-dir /var/lib/warren [--n 500]

The JetStream append is measured on a temporary stream of its own (deleted afterwards), so
the Warren's event log gets nothing but the profiles created and deleted here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from benchkit import add_repo_to_path, fmt_num, machine_note, summarize, table, write_json

add_repo_to_path()

from nats.js import api  # noqa: E402

from schemas import subjects  # noqa: E402
from schemas.client import Bus  # noqa: E402


def nats_url_of(warren_dir: str) -> str:
    """The bus of a running Warren, from the supervisor's status file."""
    status = json.loads((Path(warren_dir) / "run" / "status.json").read_text())
    if not status.get("nats_url"):
        raise RuntimeError(f"{warren_dir}: the supervisor has not published a NATS URL yet")
    return status["nats_url"]


async def timed(n: int, call: Callable[[int], Awaitable[Any]]) -> dict[str, Any]:
    samples = []
    for i in range(n):
        start = time.perf_counter()
        await call(i)
        samples.append(time.perf_counter() - start)
    return summarize(samples)


async def primitives(bus: Bus, n: int) -> dict[str, Any]:
    """Round trips every command is built from, on the Warren's own nats-server."""
    out: dict[str, Any] = {}
    echo_subject = f"bench.echo.{uuid.uuid4().hex}"

    async def echo(msg: Any) -> None:
        await msg.respond(msg.data)

    sub = await bus.nc.subscribe(echo_subject, cb=echo)
    out["core request/reply (echo)"] = await timed(
        n, lambda _: bus.nc.request(echo_subject, b"x" * 200, timeout=5)
    )
    await sub.unsubscribe()
    out["stream_info (projection barrier)"] = await timed(
        n, lambda _: bus.js.stream_info(subjects.EVENTS_STREAM)
    )
    default_project = await bus.js.get_last_msg(
        subjects.EVENTS_STREAM, subjects.aggregate_events("project")
    )
    out["get_last_msg (load last event)"] = await timed(
        n, lambda _: bus.js.get_last_msg(subjects.EVENTS_STREAM, default_project.subject)
    )
    name = f"BENCH{uuid.uuid4().hex[:8].upper()}"
    subject = f"bench.{name.lower()}"
    await bus.js.add_stream(
        api.StreamConfig(name=name, subjects=[subject], storage=api.StorageType.FILE)
    )
    try:
        payload = b"x" * 600  # about the size of a profile event
        out["JetStream append + ack (file store)"] = await timed(
            n,
            lambda i: bus.js.publish(
                subject, payload, headers={"Nats-Msg-Id": f"{name}-{i}"}, timeout=5
            ),
        )
    finally:
        await bus.js.delete_stream(name)
    return out


async def service_calls(bus: Bus, n: int) -> dict[str, Any]:
    """The instance service's profile endpoints, called directly on the bus."""
    out: dict[str, Any] = {}
    out["profile get (service)"] = await timed(
        n, lambda _: bus.request(subjects.PROFILES_GET, {"name": "default"})
    )
    out["profile list (service)"] = await timed(
        n, lambda _: bus.request(subjects.PROFILES_LIST, {"recursion": 0})
    )
    prefix = f"bench-bus-{uuid.uuid4().hex[:8]}"
    created: list[str] = []

    async def create(i: int) -> None:
        body = {
            "name": f"{prefix}-{i}",
            "description": "bus benchmark",
            "config": {"limits.cpu": "1"},
            "devices": {},
        }
        await bus.request(subjects.PROFILES_CREATE, body)
        created.append(body["name"])

    async def delete(i: int) -> None:
        await bus.request(subjects.PROFILES_DELETE, {"name": created[i]})

    try:
        out["profile create (service)"] = await timed(n, create)
        out["profile delete (service)"] = await timed(len(created), delete)
        created.clear()
    finally:
        for name in created:  # only after a failure half-way
            try:
                await bus.request(subjects.PROFILES_DELETE, {"name": name})
            except Exception as exc:
                print(f"cleanup of {name} failed: {exc}", file=sys.stderr)
    return out


async def measure(nats_url: str, n: int, n_write: int) -> dict[str, Any]:
    bus = await Bus.open(nats_url, "bench-bus")
    try:
        return {
            "primitives": await primitives(bus, n),
            "service": await service_calls(bus, n_write),
        }
    finally:
        await bus.close()


def render(results: dict[str, Any]) -> str:
    rows = []
    for group in ("primitives", "service"):
        for name, r in results[group].items():
            rows.append(
                [name, fmt_num(r.get("n")), fmt_num(r.get("p50"), 3), fmt_num(r.get("p99"), 3)]
            )
    head = f"On the bus, no gateway (ms); {machine_note()}"
    return head + "\n" + table(["call", "n", "p50", "p99"], rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--warren-dir", help="WARREN_DIR of a running Warren")
    target.add_argument("--nats-url", help="its bus, if known")
    parser.add_argument("--n", type=int, default=500, help="calls per primitive")
    parser.add_argument("--n-write", type=int, default=200, help="profiles created")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    url = args.nats_url or nats_url_of(args.warren_dir)
    results = asyncio.run(measure(url, args.n, args.n_write))
    print(render(results))
    write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
