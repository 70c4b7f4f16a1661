"""Idle memory of the whole Warren stack (supervisor, nats-server, every service, gateway),
summed over its process tree from /proc, next to the real LXD daemon's when available.

    python ops/bench/memory.py --warren-dir /var/lib/warren   # a running Warren
    python ops/bench/memory.py --start-warren                 # a throwaway one
    python ops/bench/memory.py --start-warren --lxd           # plus a throwaway LXD
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from typing import Any

from benchkit import fmt_num, table, write_json
from proctree import tree_memory, warren_processes


def render(title: str, mem: dict[str, Any]) -> str:
    """Per-process rows and the total, in MiB."""
    rows = [
        [
            f"{r['name']} ({r['pid']})",
            fmt_num(r["rss_mib"], 1),
            fmt_num(r["pss_mib"], 1),
            fmt_num(r["uss_mib"], 1),
        ]
        for r in sorted(mem["per_process"], key=lambda r: -r["rss_mib"])
    ]
    rows.append(
        [
            f"TOTAL ({mem['processes']} processes)",
            fmt_num(mem["rss_mib"], 1),
            fmt_num(mem["pss_mib"], 1),
            fmt_num(mem["uss_mib"], 1),
        ]
    )
    return f"{title}\n" + table(["process", "RSS MiB", "PSS MiB", "USS MiB"], rows)


def measure_lxd(settle: float) -> dict[str, Any] | None:
    """Idle memory of a throwaway LXD daemon, or None if LXD is not installed."""
    import lxd_reference

    if not lxd_reference.installed():
        return None
    with lxd_reference.ThrowawayLXD() as lxd:
        time.sleep(settle)
        return lxd.memory()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Idle memory of Warren (and LXD)")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--warren-dir", help="WARREN_DIR of a running Warren")
    target.add_argument("--start-warren", action="store_true", help="start a throwaway Warren")
    parser.add_argument("--lxd", action="store_true", help="also measure a throwaway LXD")
    parser.add_argument("--settle", type=float, default=3, help="idle seconds before measuring")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)

    results: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        if args.start_warren:
            from warren_stack import WarrenStack

            warren = stack.enter_context(WarrenStack())
            time.sleep(args.settle)
            results["warren"] = warren.memory()
        else:
            pids = warren_processes(args.warren_dir)
            if not pids:
                print(f"no process runs with WARREN_DIR={args.warren_dir}", file=sys.stderr)
                return 2
            results["warren"] = tree_memory(pids)
    print(render("Warren stack, idle", results["warren"]))
    if args.lxd:
        results["lxd"] = measure_lxd(args.settle)
        if results["lxd"] is None:
            print("\nLXD is not installed: no reference")
        else:
            print("\n" + render("LXD daemon, idle", results["lxd"]))
    write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
