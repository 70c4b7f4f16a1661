"""Networks: time from launch to a DHCP address, launch with and without a nic, and TCP
throughput between two containers on one bridge next to the host's loopback.

On a throwaway Warren (its default network, as a user gets it) with the busybox image:

- ``--n`` launches with the default profile (``eth0`` on the default bridge): create+start
  wall time, and the time from the launch's start until ``GET .../state`` shows the
  container's IPv4 (udhcpc got a lease from dnsmasq and applied it);
- ``--n`` launches with a profile without a nic (root disk only): create+start;
- ``--mb`` MB pushed with busybox ``nc`` from one container to another (bridge, veths), and
  the same over the host's loopback; MB/s from the sender's wall time.

    .venv/bin/python ops/bench/networks.py --n 20 --mb 500
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchkit import machine_note, summarize, write_json
from lxd_api import Api, import_busybox
from warren_stack import WarrenStack

BUSYBOX = "/bin/busybox"
PORT = 5001


def launch(api: Api, name: str, fingerprint: str, profiles: list[str]) -> float:
    start = time.perf_counter()
    body = {"name": name, "source": {"type": "image", "fingerprint": fingerprint}}
    api.run("POST", "/1.0/instances", {**body, "profiles": profiles})
    api.run("PUT", f"/1.0/instances/{name}/state", {"action": "start", "timeout": -1})
    return time.perf_counter() - start


def ipv4(api: Api, name: str) -> str | None:
    state = api.sync("GET", f"/1.0/instances/{name}/state")
    for nic, net in (state.get("network") or {}).items():
        for address in net["addresses"] if nic != "lo" else []:
            if address["family"] == "inet" and address["scope"] == "global":
                return str(address["address"])
    return None


def wait_ipv4(api: Api, name: str, since: float, timeout: float = 30) -> tuple[str, float]:
    while time.perf_counter() - since < timeout:
        found = ipv4(api, name)
        if found:
            return found, time.perf_counter() - since
        time.sleep(0.005)
    raise TimeoutError(f"{name}: no address in {timeout} s")


def remove(api: Api, name: str) -> None:
    api.run("PUT", f"/1.0/instances/{name}/state", {"action": "stop", "force": True})
    api.run("DELETE", f"/1.0/instances/{name}")


def lxc(stack: WarrenStack, *args: str, timeout: float = 120) -> str:
    env = {**stack.env, "LXD_SOCKET": str(stack.socket)}
    done = subprocess.run(["lxc", *args], env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"lxc {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def push(run: list[str], nc: str, target: str, mb: int) -> float:
    """Seconds it takes ``run`` (a command prefix taking a shell script) to push ``mb`` MB
    to ``target`` with ``nc``."""
    script = f"dd if=/dev/zero bs=1M count={mb} 2>/dev/null | {nc} -w5 {target} {PORT}"
    start = time.perf_counter()
    subprocess.run([*run, script], check=True, capture_output=True, timeout=300)
    return time.perf_counter() - start


def throughput(stack: WarrenStack, api: Api, a: str, b: str, mb: int) -> dict[str, float]:
    target = ipv4(api, b)
    assert target is not None
    # The listener hands the connection to a sink (nc -l with its own stdin at EOF would
    # close it at once): the sender's time is the transfer's.
    sink = "printf '#!/bin/sh\\ncat >/dev/null\\n' >/tmp/sink; chmod +x /tmp/sink"
    server = f'{sink}; setsid nc -l -p {PORT} -e /tmp/sink </dev/null >/dev/null 2>&1 &'
    lxc(stack, "exec", b, "--", "sh", "-c", server)
    time.sleep(0.3)
    client = ["env", f"LXD_SOCKET={stack.socket}", "lxc", "exec", a, "--", "sh", "-c"]
    bridge = push(client, "nc", target, mb)
    with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as script:
        script.write("#!/bin/sh\ncat >/dev/null\n")
    Path(script.name).chmod(0o755)
    listener = subprocess.Popen([BUSYBOX, "nc", "-l", "-p", str(PORT), "-e", script.name])
    time.sleep(0.2)
    try:
        loop = push(["sh", "-c"], f"{BUSYBOX} nc", "127.0.0.1", mb)
    finally:
        listener.kill()
        Path(script.name).unlink()
    return {"bridge_mb_s": mb / bridge, "loopback_mb_s": mb / loop, "mb": mb}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=20)
    p.add_argument("--mb", type=int, default=500)
    p.add_argument("--json")
    args = p.parse_args(argv)
    results: dict[str, Any] = {}
    with WarrenStack() as stack, tempfile.TemporaryDirectory() as work:
        api = Api(str(stack.socket))
        fingerprint, _ = import_busybox(api, Path(work))
        default = api.sync("GET", "/1.0/profiles/default")
        root = {k: v for k, v in default["devices"].items() if v.get("type") == "disk"}
        api.sync("POST", "/1.0/profiles", {"name": "nonic", "devices": root})
        made: list[str] = []
        try:
            launches, leases, plain = [], [], []
            for i in range(args.n):
                name = f"nic-{i}"
                made.append(name)
                since = time.perf_counter()
                launches.append(launch(api, name, fingerprint, ["default"]))
                leases.append(wait_ipv4(api, name, since)[1])
            for i in range(args.n):
                name = f"plain-{i}"
                made.append(name)
                plain.append(launch(api, name, fingerprint, ["nonic"]))
            results["launch_with_nic"] = summarize(launches)
            results["launch_to_address"] = summarize(leases)
            results["launch_without_nic"] = summarize(plain)
            if args.mb:
                results["throughput"] = throughput(stack, api, "nic-0", "nic-1", args.mb)
        finally:
            for name in made:
                remove(api, name)
            api.close()
    print(f"== Networks ({machine_note()})")
    for key in ("launch_with_nic", "launch_without_nic", "launch_to_address"):
        r = results[key]
        print(f"{key:22} p50 {r['p50']:7.1f} ms  p99 {r['p99']:7.1f} ms  (n={r['n']})")
    if "throughput" in results:
        t = results["throughput"]
        bridge, loop = t["bridge_mb_s"], t["loopback_mb_s"]
        print(f"TCP {t['mb']} MB: bridge {bridge:.0f} MB/s, loopback {loop:.0f} MB/s")
    write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
