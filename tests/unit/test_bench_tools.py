"""The benchmark tools compute their figures right and clean up after themselves.

No timing is asserted here: speed is what the tools print, not what tests check.
"""

from __future__ import annotations

import http.server
import json
import os
import socketserver
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "ops" / "bench"
if str(BENCH) not in sys.path:
    sys.path.append(str(BENCH))  # appended: the bench modules never shadow anything

import api_latency  # noqa: E402
import benchkit  # noqa: E402
import proctree  # noqa: E402


def test_percentiles_use_nearest_rank():
    samples = [float(i) for i in range(1, 101)]
    assert benchkit.percentile(samples, 50) == 50.0
    assert benchkit.percentile(samples, 99) == 99.0
    assert benchkit.percentile(samples, 100) == 100.0
    assert benchkit.percentile([7.0], 99) == 7.0


def test_summarize_reports_milliseconds():
    summary = benchkit.summarize([0.001, 0.002, 0.003, 0.004])
    assert summary["n"] == 4
    assert summary["p50"] == pytest.approx(2.0)
    assert summary["max"] == pytest.approx(4.0)
    assert benchkit.summarize([]) == {"n": 0}


def test_table_aligns_columns():
    text = benchkit.table(["metric", "value"], [["a", "1"], ["longer name", "12,345"]])
    lines = text.splitlines()
    assert lines[0].startswith("metric      | ")
    assert len({line.index("|") for line in lines if "|" in line}) == 1
    assert lines[-1].endswith("12,345")


def _fake_proc(root: Path, pid: int, ppid: int, comm: str, cmdline: list[str], env: str = ""):
    d = root / str(pid)
    d.mkdir()
    (d / "stat").write_text(f"{pid} ({comm}) S {ppid} 1 1 0 -1\n")
    (d / "cmdline").write_bytes(b"\0".join(a.encode() for a in cmdline) + b"\0")
    (d / "environ").write_bytes(env.encode() + b"\0")
    (d / "smaps_rollup").write_text(
        "00400000-7fff [rollup]\nRss:  2048 kB\nPss:  1024 kB\n"
        "Private_Clean:  256 kB\nPrivate_Dirty:  256 kB\n"
    )


def test_process_tree_finds_a_warren_and_sums_its_memory(tmp_path, monkeypatch):
    monkeypatch.setattr(proctree, "PROC", tmp_path)
    wdir = "/srv/warren-x"
    _fake_proc(
        tmp_path,
        10,
        1,
        "python3",
        ["python", "-m", "services.common.supervisor"],
        f"WARREN_DIR={wdir}",
    )
    _fake_proc(tmp_path, 11, 10, "nats-server", ["/usr/sbin/nats-server", "-js"])
    _fake_proc(tmp_path, 12, 10, "python3", ["python", "-m", "gateway"])
    # comm with a space and a parenthesis must not confuse the stat parser
    _fake_proc(tmp_path, 13, 12, "odd (name) x", ["odd"])
    _fake_proc(tmp_path, 20, 1, "python3", ["python", "-m", "gateway"], "WARREN_DIR=/other")

    pids = proctree.warren_processes(wdir)
    assert pids == {10, 11, 12, 13}
    mem = proctree.tree_memory(pids)
    assert mem["processes"] == 4
    assert mem["rss_mib"] == pytest.approx(8.0)
    assert mem["pss_mib"] == pytest.approx(4.0)
    assert mem["uss_mib"] == pytest.approx(2.0)
    names = {row["name"] for row in mem["per_process"]}
    assert {"services.common.supervisor", "nats-server", "gateway"} <= names


class _FakeLXD(http.server.BaseHTTPRequestHandler):
    """Just enough of the LXD API for the latency tool; the first DELETE of each profile
    fails, so only the tool's cleanup can remove it."""

    protocol_version = "HTTP/1.1"
    profiles: dict[str, Any] = {}
    failed_once: set[str] = set()

    def log_message(self, *args: Any) -> None:
        pass

    def address_string(self) -> str:
        return "unix"

    def _reply(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/1.0":
            env = {"server": "fake", "server_version": "0"}
            self._reply(200, {"type": "sync", "metadata": {"environment": env}})
        elif self.path.removeprefix("/1.0/profiles/") in self.profiles:
            self._reply(200, {"type": "sync", "metadata": {}})
        else:
            self._reply(404, {"type": "error", "error": "not found", "error_code": 404})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.profiles[body["name"]] = body
        self._reply(201, {"type": "sync", "metadata": None})

    def do_DELETE(self) -> None:
        name = self.path.removeprefix("/1.0/profiles/")
        if name not in self.failed_once:
            self.failed_once.add(name)
            self._reply(500, {"type": "error", "error": "try again", "error_code": 500})
            return
        self.profiles.pop(name, None)
        self._reply(200, {"type": "sync", "metadata": {}})


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@pytest.fixture
def fake_lxd(tmp_path):
    path = str(tmp_path / "unix.socket")
    _FakeLXD.profiles = {}
    _FakeLXD.failed_once = set()
    server = _UnixServer(path, _FakeLXD)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield path
    server.shutdown()
    server.server_close()
    os.unlink(path)


@pytest.mark.parametrize("mode", ["keepalive", "fresh"])
def test_latency_tool_counts_errors_and_cleans_up(fake_lxd, mode):
    results = api_latency.run_latency(fake_lxd, n=20, n_write=5, modes=(mode,))
    ops = results["modes"][mode]
    assert results["server"] == "fake"
    assert ops["GET /1.0"]["n"] == 20
    assert ops["profile create"]["n"] == 5
    assert ops["profile get"]["n"] == 5
    assert ops["profile delete"]["errors"] == 5
    assert "try again" in ops["profile delete"]["first_error"]
    assert _FakeLXD.profiles == {}  # the cleanup deleted what the measured deletes could not


def test_latency_phase_stops_at_its_time_limit():
    phase = api_latency.Phase("x", max_seconds=-1)
    assert phase.run([1, 2, 3], lambda _: (200, None, 0.001)) == []
    assert phase.result()["truncated"] is True
