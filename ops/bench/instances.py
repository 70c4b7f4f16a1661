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

Every container it creates is deleted again (also on failure or Ctrl-C). The pieces:
``lxd_api`` (the socket client), ``instance_targets`` (the daemons and their memory),
``instance_fleet`` (the containers made), ``instance_phases`` (the measurements),
``instance_report`` (the table).

    python ops/bench/instances.py                           # throwaway Warren + LXD
    python ops/bench/instances.py --skip warren             # LXD only
    python ops/bench/instances.py --warren-socket /var/lib/warren/unix.socket --skip lxd
    python ops/bench/instances.py --lxd-socket /var/lib/lxd/unix.socket --skip warren
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import lxd_reference
import warren_stack
from benchkit import machine_note, wait_for_quiet, write_json
from instance_fleet import Fleet
from instance_phases import ScaleOptions, phase_launch, phase_lxd_benchmark, phase_scale
from instance_report import errors_of, render
from instance_targets import Target, lxd_label, lxd_target, warren_target
from lxd_api import Api, import_busybox


def _guard(results: dict[str, Any], key: str, fn: Callable[[], Any], cooldown: float) -> None:
    """One phase, after the machine is quiet enough; its failure is recorded, not raised."""
    load = wait_for_quiet(cooldown)
    print(f"-- {key} ({machine_note()})", flush=True)
    try:
        results[key] = fn()
    except Exception as exc:
        traceback.print_exc()
        results[key] = {"error": f"{type(exc).__name__}: {exc}"}
    results.setdefault("load_before", {})[key] = load


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
        cool = args.cooldown
        if args.launches:
            launch = partial(phase_launch, fleet, args.launches, args.exec_n)
            _guard(results, "launch", launch, cool)
        if args.benchmark_count:
            bench = partial(phase_lxd_benchmark, target, fingerprint, args.benchmark_count)
            _guard(results, "lxd_benchmark", bench, cool)
        if counts:
            opt = ScaleOptions(args.parallel, args.list_n, args.lxc_list_n, args.settle, cool, idle)
            # The scale phase waits for quiet itself, after each fill.
            _guard(results, "scale", partial(phase_scale, fleet, counts, opt), 0)
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


def parse_counts(values: list[str]) -> list[int]:
    counts = []
    for value in values:
        counts.extend(int(v) for v in value.replace(",", " ").split() if v)
    return [c for c in counts if c > 0]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument("--warren-socket", help="measure this running Warren instead")
    p.add_argument("--lxd-socket", help="measure this running LXD instead")
    p.add_argument("--skip", action="append", default=[], choices=["warren", "lxd"])
    p.add_argument("--launches", type=int, default=20, help="single launches (20)")
    p.add_argument("--exec-n", type=int, default=20, help="lxc exec round trips (20)")
    p.add_argument(
        "--benchmark-count", type=int, default=20, help="lxd-benchmark launch --count (20)"
    )
    p.add_argument(
        "--counts", nargs="+", default=["50", "500"], help="running containers, Warren (50 500)"
    )
    p.add_argument(
        "--lxd-counts", "--lxd-count", nargs="+", default=["50"], help="the same for LXD (50)"
    )
    p.add_argument("--list-n", type=int, default=20, help="GETs per list measurement (20)")
    p.add_argument("--lxc-list-n", type=int, default=5, help="lxc list runs per count (5)")
    p.add_argument("--parallel", type=int, default=4, help="concurrent launches (4)")
    p.add_argument("--settle", type=float, default=2.0, help="idle seconds before memory (2)")
    p.add_argument(
        "--cooldown",
        type=float,
        default=0.0,
        metavar="LOAD",
        help="before each phase and each list/memory measurement, wait (at most 180 s) until "
        "the 1-minute load average is below LOAD (0: no wait)",
    )
    p.add_argument("--json", help="also write every figure to this file")
    return p


def _run(label: str, target_cm: Any, args: argparse.Namespace, counts: list[int]) -> dict[str, Any]:
    print(f"== {label} ({machine_note()})", flush=True)
    try:
        with target_cm as target:
            return measure(target, args, counts)
    except Exception as exc:
        traceback.print_exc()
        return {"label": label, "error": f"{type(exc).__name__}: {exc}"}


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    warren: dict[str, Any] | None = None
    lxd: dict[str, Any] | None = None
    if "warren" not in args.skip and (args.warren_socket or warren_stack.available()):
        target_cm = warren_target(args.warren_socket)
        warren = _run("Warren", target_cm, args, parse_counts(args.counts))
    if "lxd" not in args.skip and (args.lxd_socket or lxd_reference.installed()):
        target_cm = lxd_target(args.lxd_socket)
        lxd = _run(lxd_label(), target_cm, args, parse_counts(args.lxd_counts))

    print(f"\n== Containers ({machine_note()})")
    print(render(warren, lxd))
    for name, result in (("Warren", warren), ("LXD", lxd)):
        for line in errors_of(result):
            print(f"{name}: {line}")
    write_json(args.json, {"warren": warren, "lxd": lxd})
    return 0


if __name__ == "__main__":
    sys.exit(main())
