"""The container figures as ``metric | Warren | LXD`` rows (printed by ``instances.py`` and
folded into ``run_all``'s summary), and the errors a result carries."""

from __future__ import annotations

from typing import Any

from benchkit import fmt_num, table


def _get(r: dict[str, Any] | None, *keys: str) -> Any:
    cur: Any = r
    for key in keys:
        if not isinstance(cur, dict) or key not in cur:
            return None
        cur = cur[key]
    return cur


def _scale_rows(c: int) -> list[tuple[str, tuple[str, ...], int]]:
    """``(label, keys under scale/<c>, digits)`` for one count of running containers."""
    out: list[tuple[str, tuple[str, ...], int]] = []
    for rec in ("1", "2"):
        for stat in ("p50", "p99"):
            label = f"GET /1.0/instances?recursion={rec} {stat} ms, {c} running"
            out.append((label, (f"recursion{rec}", stat), 1))
    out += [
        (f"lxc list p50 ms, {c} running", ("lxc_list", "p50"), 0),
        (f"memory RSS MiB, {c} running", ("memory", "rss_mib"), 1),
        (f"memory PSS MiB, {c} running", ("memory", "pss_mib"), 1),
        (f"  per container RSS MiB (total / {c})", ("per_container", "rss_mib"), 2),
        (f"  per container PSS MiB (total / {c})", ("per_container", "pss_mib"), 2),
        ("  per container PSS MiB (marginal over idle)", ("per_container", "marginal_pss_mib"), 2),
        ("  LXC monitor PSS MiB each", ("per_container", "monitor_pss_mib"), 2),
        (f"  time to launch up to {c} s (parallel)", ("launch_wall_seconds",), 1),
        (f"  load average before measuring {c} running", ("load",), 2),
    ]
    return out


def rows(warren: dict[str, Any] | None, lxd: dict[str, Any] | None) -> list[list[str]]:
    """``[metric, Warren, LXD]`` rows (also used by run_all's summary)."""
    out: list[list[str]] = []

    def row(label: str, *keys: str, digits: int = 1) -> None:
        out.append([label, *(fmt_num(_get(r, *keys), digits) for r in (warren, lxd))])

    n = _get(warren, "launch", "n") or _get(lxd, "launch", "n") or 0
    for stat in ("p50", "p99"):
        row(f"launch (create + start) {stat} ms, n={n}", "launch", "launch", stat)
    row("  create p50 ms", "launch", "create", "p50")
    row("  start p50 ms", "launch", "start", "p50")
    row("  first launch ms", "launch", "first_launch_ms")
    row("forced stop + delete p50 ms", "launch", "delete", "p50")
    for stat in ("p50", "p99"):
        row(f"lxc exec -- true {stat} ms", "launch", "exec", stat)
    count = _get(warren, "lxd_benchmark", "count") or _get(lxd, "lxd_benchmark", "count") or 0
    row(f"lxd-benchmark launch --count {count} s", "lxd_benchmark", "launch_seconds", digits=2)
    row("lxd-benchmark delete s", "lxd_benchmark", "delete_seconds", digits=2)
    row("  load average before the launches", "load_before", "launch", digits=2)
    row("  load average before lxd-benchmark", "load_before", "lxd_benchmark", digits=2)
    row("memory idle RSS MiB", "memory_idle", "rss_mib")
    row("memory idle PSS MiB", "memory_idle", "pss_mib")
    counts = sorted(
        {int(k) for r in (warren, lxd) for k in (_get(r, "scale") or {}) if k.isdigit()}
    )
    for c in counts:
        for label, keys, digits in _scale_rows(c):
            row(label, "scale", str(c), *keys, digits=digits)
    return out


def render(warren: dict[str, Any] | None, lxd: dict[str, Any] | None) -> str:
    w_label = (warren or {}).get("label", "Warren") if warren else "Warren (skipped)"
    l_label = (lxd or {}).get("label", "LXD") if lxd else "LXD (skipped)"
    return table(["metric", w_label, l_label], rows(warren, lxd))


def errors_of(result: dict[str, Any] | None) -> list[str]:
    """Every ``error``/``*_error`` of a result, one line each."""
    if not result:
        return []
    found = []
    for key, value in result.items():
        if isinstance(value, dict):
            for sub, text in value.items():
                if sub.endswith("error"):
                    found.append(f"{key}: {str(text).strip().splitlines()[-1][:300]}")
                elif sub.endswith("errors") and text:
                    found.append(f"{key} {sub}: {len(text)}, first: {str(text[0])[:300]}")
        elif key == "error":
            found.append(str(value))
        elif key.endswith("errors") and value:
            found.append(f"{key}: {len(value)}, first: {str(value[0])[:300]}")
    return found
