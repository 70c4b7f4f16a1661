"""The real LXD as the reference: a throwaway daemon with its own LXD_DIR under /tmp.

It gets a minimal preseed (a ``dir`` storage pool and a default profile, no network: the
``lxd init --auto`` bridge cannot find a free subnet here and no bridge is wanted), is
measured exactly like Warren, and is shut down with ``lxd shutdown``; its mounts and
directory are removed so nothing is left behind. There is no systemd: the daemon is a child
of this script.

    python ops/bench/lxd_reference.py --n 1000      # latency + memory of LXD 5.0.2
    python ops/bench/lxd_reference.py --hold        # keep it running until Ctrl-C
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchkit import socket_answers, wait_until, write_json
from proctree import descendants, tree_memory

LXD = shutil.which("lxd")

PRESEED = """\
config: {}
networks: []
storage_pools:
- name: default
  driver: dir
profiles:
- name: default
  description: Default LXD profile
  devices:
    root:
      path: /
      pool: default
      type: disk
"""


def installed() -> bool:
    """Is the real LXD daemon available on this machine?"""
    return LXD is not None


def version() -> str:
    if LXD is None:
        return "not installed"
    return subprocess.run([LXD, "version"], capture_output=True, text=True).stdout.strip()


class ThrowawayLXD:
    """Start an LXD daemon in a temporary LXD_DIR; stop it and remove everything."""

    def __init__(self, ready_timeout: float = 60.0) -> None:
        if LXD is None:
            raise RuntimeError("lxd is not installed (apt-get install lxd)")
        self.ready_timeout = ready_timeout
        self.dir = Path(tempfile.mkdtemp(prefix="lxd-bench-"))
        self.log = self.dir.with_name(self.dir.name + ".log")
        self.proc: subprocess.Popen[bytes] | None = None
        self.start_seconds = 0.0
        self.env = {
            **os.environ,
            "LXD_DIR": str(self.dir),
            # The daemon fetches instance types from the internet at start; a dead loopback
            # proxy keeps it from leaving the machine (it only logs a warning).
            "HTTPS_PROXY": "http://127.0.0.1:9",
            "HTTP_PROXY": "http://127.0.0.1:9",
        }

    @property
    def socket(self) -> Path:
        return self.dir / "unix.socket"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def _lxd(self, *args: str, stdin: str | None = None, timeout: float = 60) -> str:
        assert LXD is not None
        done = subprocess.run(
            [LXD, *args],
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise RuntimeError(f"lxd {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def start(self) -> ThrowawayLXD:
        assert LXD is not None
        began = time.monotonic()
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [LXD, "--group", "root", "--logfile", str(self.log)],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._lxd("waitready", "--timeout", str(int(self.ready_timeout)))
            self.start_seconds = time.monotonic() - began
            self._lxd("init", "--preseed", stdin=PRESEED)
            wait_until(lambda: socket_answers(str(self.socket)), 10, what="LXD socket")
        except Exception:
            print(self.log.read_text()[-2000:], file=sys.stderr)
            self.stop()
            raise
        return self

    def memory(self) -> dict[str, Any]:
        """RSS/PSS of the daemon and anything it forked."""
        return tree_memory(descendants([self.pid]))

    def stop(self) -> None:
        """``lxd shutdown``, then make sure the process, its mounts and files are gone."""
        if self.proc is not None and self.proc.poll() is None:
            tree = descendants([self.proc.pid])
            try:
                self._lxd("shutdown", "--timeout", "30", timeout=45)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                print(f"lxd shutdown: {exc}", file=sys.stderr)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            for pid in descendants(tree) - {os.getpid()}:
                os.kill(pid, signal.SIGKILL)  # only what our daemon forked
        self._unmount()
        shutil.rmtree(self.dir, ignore_errors=True)
        self.log.unlink(missing_ok=True)

    def _unmount(self) -> None:
        # LXD mounts small tmpfs (shmounts, devlxd) under LXD_DIR; a clean shutdown
        # unmounts them, a killed daemon does not.
        prefix = str(self.dir) + "/"
        mounts = [
            line.split()[1]
            for line in Path("/proc/mounts").read_text().splitlines()
            if line.split()[1].startswith(prefix)
        ]
        for mount in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", mount], check=False)

    def __enter__(self) -> ThrowawayLXD:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def measure(n: int, n_write: int | None, max_seconds: float, settle: float) -> dict[str, Any]:
    """Start a throwaway LXD, measure idle memory and API latency, stop it."""
    from api_latency import run_latency

    with ThrowawayLXD() as lxd:
        time.sleep(settle)
        idle = lxd.memory()
        latency = run_latency(str(lxd.socket), n, n_write, max_seconds=max_seconds)
        after = lxd.memory()
    return {
        "version": version(),
        "start_seconds": lxd.start_seconds,
        "memory_idle": idle,
        "memory_after": after,
        "latency": latency,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Measure a throwaway real LXD daemon")
    parser.add_argument("--n", type=int, default=1000, help="GET /1.0 requests per mode")
    parser.add_argument("--n-write", type=int, help="profiles created per mode (default: --n)")
    parser.add_argument("--max-seconds", type=float, default=60, help="time limit per phase")
    parser.add_argument("--settle", type=float, default=3, help="idle seconds before memory")
    parser.add_argument("--hold", action="store_true", help="start it and wait for Ctrl-C")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    if not installed():
        print("LXD is not installed; nothing to compare with", file=sys.stderr)
        return 1
    if args.hold:
        with ThrowawayLXD() as lxd:
            print(f"LXD {version()} running: LXD_DIR={lxd.dir} (socket {lxd.socket})")
            print("Ctrl-C stops it and removes everything")
            try:
                while lxd.proc is not None and lxd.proc.poll() is None:
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
        return 0

    from api_latency import render

    results = measure(args.n, args.n_write, args.max_seconds, args.settle)
    print(render(results["latency"]))
    for key in ("memory_idle", "memory_after"):
        mem = results[key]
        print(
            f"LXD daemon memory ({key.removeprefix('memory_')}): RSS {mem['rss_mib']:.1f} MiB, "
            f"PSS {mem['pss_mib']:.1f} MiB over {mem['processes']} process(es)"
        )
    write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
