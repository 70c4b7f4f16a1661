"""``lxc exec <c> -- true`` on Warren and on LXD, interleaved: one exec on each in turn.

``instances.py`` measures one target after the other, so a machine that slows down between
the two (a shared VM does) skews the comparison; here both daemons run at once, each with
one busybox container, and the real ``lxc`` client alternates between them, so both see the
same conditions. Prints p50/p90/p99 of both and the ratio. With ``--solo N`` each side first
runs N execs on its own, while the other daemon idles: a daemon whose execs alternate with
another's can lose a few ms to that alone (LXD 5.0.2 here: ~4 ms), so both views are printed.

    python ops/bench/exec_ab.py --n 200          # throwaway Warren + throwaway LXD 5.0.2
    python ops/bench/exec_ab.py --warren-socket /var/lib/warren/unix.socket --lxd-socket ...
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import lxd_reference
from benchkit import machine_note, summarize, wait_for_quiet, write_json
from instance_fleet import Fleet
from instance_targets import Target, lxd_label, lxd_target, warren_target
from lxd_api import Api, import_busybox


class Side:
    """One target with its image and one running container."""

    def __init__(self, target: Target, workdir: Path) -> None:
        self.target = target
        self.api = Api(target.socket)
        self.fingerprint, self.owned_image = import_busybox(self.api, workdir)
        self.fleet = Fleet(target, self.fingerprint)
        self.name, _, _ = self.fleet.launch()
        self.samples: list[float] = []

    def exec_once(self) -> None:
        start = time.perf_counter()
        done = self.target.lxc("exec", self.name, "--", "true", timeout=60)
        self.samples.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise RuntimeError(f"lxc exec on {self.target.label} failed: {done.stderr.strip()}")

    def close(self) -> None:
        self.fleet.remove_all(1)
        if self.owned_image:
            with contextlib.suppress(Exception):
                self.api.run("DELETE", f"/1.0/images/{self.fingerprint}")
        self.api.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=200, help="execs on each target")
    p.add_argument("--warren-socket", help="an existing Warren (default: a throwaway one)")
    p.add_argument("--lxd-socket", help="an existing LXD (default: a throwaway 5.0.2)")
    p.add_argument("--solo", type=int, default=0, help="first, this many execs on each alone")
    p.add_argument("--cooldown", type=float, default=1.0, help="wait for this load first")
    p.add_argument("--json", help="also write the figures to this file")
    args = p.parse_args(argv)
    if not args.lxd_socket and not lxd_reference.installed():
        print("LXD is not installed: nothing to compare with", file=sys.stderr)
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="bench-exec-"))
    sides: list[Side] = []
    solo: dict[str, Any] = {}
    try:
        with (
            warren_target(args.warren_socket) as warren,
            lxd_target(args.lxd_socket) as lxd,
        ):
            try:
                sides = [Side(warren, workdir), Side(lxd, workdir)]
                for side in sides:  # warm-up: the client's first run writes its config
                    side.exec_once()
                    side.samples.clear()
                load = wait_for_quiet(args.cooldown)
                if args.solo:
                    for side in sides:
                        for _ in range(args.solo):
                            side.exec_once()
                        solo[side.target.label] = summarize(side.samples)
                        side.samples.clear()
                print(f"-- {args.n} interleaved execs ({machine_note()})", flush=True)
                for _ in range(args.n):
                    for side in sides:
                        side.exec_once()
            finally:
                for side in sides:
                    side.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    figures: dict[str, Any] = {s.target.label: summarize(s.samples) for s in sides}
    figures["load_before"] = load
    if solo:
        figures["solo"] = solo
    w, x = figures[sides[0].target.label], figures[sides[1].target.label]
    print(f"{'lxc exec -- true, ms':22} | {'Warren':>8} | {lxd_label():>10}")
    for key in ("p50", "p90", "p99", "mean"):
        print(f"{key:22} | {w[key]:8.1f} | {x[key]:10.1f}")
    print(f"Warren / LXD at p50: {w['p50'] / x['p50']:.2f}")
    if solo:
        ws, xs = (solo[s.target.label]["p50"] for s in sides)
        print(f"{'alone, p50':22} | {ws:8.1f} | {xs:10.1f}")
        print(f"Warren / LXD at p50, each alone ({args.solo} execs): {ws / xs:.2f}")
    write_json(args.json, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
