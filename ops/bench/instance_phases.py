"""The measurements of the container benchmark, each against one target:

- :func:`phase_launch`: single launches one at a time (create, start, both), ``lxc exec -- true``
  on the first, then the forced stop + delete of each;
- :func:`phase_lxd_benchmark`: ``lxd-benchmark launch --count N`` and ``delete``, wall time;
- :func:`phase_scale`: with N running, ``GET /1.0/instances?recursion=1|2``, ``lxc list`` and
  memory per container.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from benchkit import summarize, wait_for_quiet
from instance_fleet import Fleet, benchmark_containers
from instance_targets import LXC, Target
from lxd_api import Api, ApiError, error_of

LXD_BENCHMARK = shutil.which("lxd-benchmark")


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


def _timed_lxc(target: Target, args: tuple[str, ...], n: int, timeout: float) -> dict[str, Any]:
    """Wall time of ``lxc <args>`` run ``n`` times after one warm-up (the client's first run
    writes its config)."""
    target.lxc(*args, timeout=timeout)
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        done = target.lxc(*args, timeout=timeout)
        samples.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise RuntimeError(f"lxc {' '.join(args)} failed: {done.stderr.strip()}")
    return summarize(samples)


def phase_exec(target: Target, name: str, n: int) -> dict[str, Any]:
    return _timed_lxc(target, ("exec", name, "--", "true"), n, timeout=60)


def timed_lxc_list(target: Target, n: int) -> dict[str, Any]:
    if LXC is None:
        return {"n": 0}
    return _timed_lxc(target, ("list",), n, timeout=600)


def _run_lxd_benchmark(target: Target, args: list[str], count: int, api: Api) -> dict[str, Any]:
    assert LXD_BENCHMARK is not None
    action = args[0]
    start = time.perf_counter()
    done = subprocess.run(
        [LXD_BENCHMARK, *args], env=target.env, capture_output=True, text=True, timeout=1800
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        return {f"{action}_error": (done.stderr or done.stdout).strip()[-400:]}
    match = re.search(r"Batch processing completed in ([\d.]+)s", done.stdout)
    out: dict[str, Any] = {
        f"{action}_seconds": wall,
        f"{action}_batch_seconds": float(match.group(1)) if match else None,
    }
    # lxd-benchmark logs a failed container and carries on (exit status 0).
    failures = [line for line in done.stdout.splitlines() if "ailed" in line]
    if action == "launch":
        running = benchmark_containers(api, running_only=True)
        out["launch_running"] = len(running)
        if len(running) != count:
            failures.insert(0, f"{len(running)} of {count} containers running")
    if failures:
        out[f"{action}_error"] = "; ".join(failures)[:400]
    return out


def phase_lxd_benchmark(target: Target, fingerprint: str, count: int) -> dict[str, Any]:
    """``lxd-benchmark`` honours ``LXD_SOCKET`` and uses the old ``/1.0/containers`` routes."""
    if LXD_BENCHMARK is None:
        return {"error": "lxd-benchmark not installed (apt-get install lxd-tools)"}
    out: dict[str, Any] = {"count": count}
    api = Api(target.socket)
    try:
        for args in (["launch", "--count", str(count), fingerprint], ["delete"]):
            step = _run_lxd_benchmark(target, args, count, api)
            out.update(step)
            if f"{args[0]}_seconds" not in step:
                break
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
    """``GET path`` n times on one kept-alive connection after one warm-up."""
    api.call("GET", path)
    samples = []
    body: Any = None
    for _ in range(n):
        status, body, elapsed = api.call("GET", path)
        if status != 200:
            raise ApiError(f"GET {path} -> {status} {error_of(body)}")
        samples.append(elapsed)
    out = summarize(samples)
    out["items"] = len((body or {}).get("metadata") or [])
    return out


def _per_container(mem: dict[str, Any], idle: dict[str, Any], count: int) -> dict[str, Any]:
    per: dict[str, Any] = {"rss_mib": mem["rss_mib"] / count, "pss_mib": mem["pss_mib"] / count}
    if idle:
        per["marginal_rss_mib"] = (mem["rss_mib"] - idle["rss_mib"]) / count
        per["marginal_pss_mib"] = (mem["pss_mib"] - idle["pss_mib"]) / count
    if mem["monitors"]:
        per["monitor_rss_mib"] = mem["monitor_rss_mib"] / mem["monitors"]
        per["monitor_pss_mib"] = mem["monitor_pss_mib"] / mem["monitors"]
    return per


@dataclass(frozen=True)
class ScaleOptions:
    parallel: int  # concurrent launches while filling
    list_n: int  # GETs per list measurement
    lxc_list_n: int  # lxc list runs per count
    settle: float  # seconds after filling, before measuring
    cooldown: float  # then wait for a 1-minute load average below this (0: no wait)
    idle: dict[str, Any]  # the target's idle memory, for the marginal per container


def phase_scale(fleet: Fleet, counts: list[int], opt: ScaleOptions) -> dict[str, Any]:
    """Fill up to each count, settle, then list and measure memory."""
    results: dict[str, Any] = {}
    running: list[str] = []
    for count in sorted(set(counts)):
        missing = count - len(running)
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=max(1, opt.parallel)) as pool:
            running.extend(pool.map(lambda _: fleet.launch()[0], range(missing)))
        fill_seconds = time.perf_counter() - start
        time.sleep(opt.settle)
        load = wait_for_quiet(opt.cooldown)
        api = Api(fleet.target.socket)
        try:
            rec1 = timed_gets(api, "/1.0/instances?recursion=1", opt.list_n)
            rec2 = timed_gets(api, "/1.0/instances?recursion=2", opt.list_n)
        finally:
            api.close()
        lxc_list = timed_lxc_list(fleet.target, opt.lxc_list_n)
        mem = fleet.target.memory(set(running))
        per = _per_container(mem, opt.idle, count)
        results[str(count)] = {
            "load": load,
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
            f"{per['pss_mib']:.1f} MiB PSS per container (load average {load:.2f} before)",
            flush=True,
        )
    return results
