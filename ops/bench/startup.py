"""Start-up time of a new process over a large log: spawn -> caught up -> answering.

Two measurements, each timed from spawning a fresh interpreter:

- ``projection_process_start``: a minimal process that imports, connects and starts the
  projection through ``ProjectionRunner`` (restoring the snapshot if there is one), then
  prints its inner timings;
- ``service_start``: the real instance service (``python -m services.instance``), ready when
  it answers a profile list on the bus (its endpoints open only after its projections have
  caught up); stopped with SIGTERM so it writes its snapshot like a real shutdown.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchkit import REPO, add_repo_to_path

add_repo_to_path()

from bench_projection import count_objects, load_projection  # noqa: E402

from schemas import codec, subjects  # noqa: E402
from schemas.client import Bus  # noqa: E402
from schemas.errors import Unavailable  # noqa: E402
from services.common.eventstore import EventStore  # noqa: E402
from services.common.projection import ProjectionRunner  # noqa: E402


def service_available() -> bool:
    """Is the instance service in the tree?"""
    return (REPO / "services" / "instance" / "__main__.py").exists()


def projection_process_start(nats_url: str, snapshot_dir: str, stand_in: bool) -> dict[str, Any]:
    """Run :func:`child_main` in a new process and time it from spawn to its report."""
    cmd = [sys.executable, __file__, nats_url, snapshot_dir] + (["--stand-in"] if stand_in else [])
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"start-up child failed: {done.stderr[-2000:]}")
    inner = json.loads(done.stdout.strip().splitlines()[-1])
    return {"wall_seconds": wall, **inner}


def child_main(nats_url: str, snapshot_dir: str, stand_in: bool) -> None:
    """Inside the child: connect, restore/replay, report timings, snapshot and exit."""

    async def run() -> dict[str, Any]:
        t0 = time.perf_counter()
        bus = await Bus.open(nats_url, "bench-startup")
        store = EventStore(bus.js)
        await store.ensure_stream()
        t1 = time.perf_counter()
        projection = load_projection(stand_in)
        runner = ProjectionRunner(store, projection, Path(snapshot_dir))
        snapshot = runner.snapshot_path
        restored_from = 0
        if snapshot is not None and snapshot.exists():
            restored_from = int(codec.unpack(snapshot.read_bytes())["seq"])
        await runner.start()  # restore + replay + write a fresh snapshot
        t2 = time.perf_counter()
        runner.save_snapshot()  # again, alone, to show what one snapshot write costs
        t3 = time.perf_counter()
        await runner.stop()
        await bus.close()
        return {
            "connect_seconds": t1 - t0,
            "projection_start_seconds": t2 - t1,
            "snapshot_write_seconds": t3 - t2,
            "snapshot_seq": restored_from,
            "replayed": projection.applied_seq - restored_from,
            "objects": count_objects(projection),
            "snapshot_bytes": snapshot.stat().st_size if snapshot and snapshot.exists() else 0,
        }

    print(json.dumps(asyncio.run(run())))


async def _wait_answering(nats_url: str, proc: subprocess.Popen[bytes], timeout: float) -> int:
    """Poll the profile list until the service answers; return how many profiles it lists."""
    bus = await Bus.open(nats_url, "bench-probe")
    deadline = time.monotonic() + timeout
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"instance service exited with {proc.returncode}")
            try:
                names = await bus.request(subjects.PROFILES_LIST, {"recursion": 0}, timeout=2)
                return len(names)
            except Unavailable:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.01)
    finally:
        await bus.close()


def service_start(nats_url: str, warren_dir: str, timeout: float = 600) -> dict[str, Any]:
    """Spawn the real instance service, time it until it answers, then stop it cleanly."""
    env = {
        **os.environ,
        "WARREN_DIR": warren_dir,
        "WARREN_NATS_URL": nats_url,
        "WARREN_NODE": "bench",
        "PYTHONPATH": str(REPO),
    }
    snapshot = Path(warren_dir) / "snapshots" / "instance" / "catalog.msgpack"
    had_snapshot = snapshot.exists()
    log_path = Path(warren_dir) / "instance.log"
    with open(log_path, "ab") as log:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.instance"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        profiles = asyncio.run(_wait_answering(nats_url, proc, timeout))
        wall = time.perf_counter() - start
    except Exception:
        print(log_path.read_text(errors="replace")[-3000:], file=sys.stderr)
        raise
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return {
        "wall_seconds": wall,
        "had_snapshot": had_snapshot,
        "profiles_listed": profiles,
        "snapshot_bytes": snapshot.stat().st_size if snapshot.exists() else 0,
    }


if __name__ == "__main__":
    child_main(sys.argv[1], sys.argv[2], "--stand-in" in sys.argv[3:])
