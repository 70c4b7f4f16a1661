"""``lxd-benchmark`` (Debian ``lxd-tools``), LXD's own load tool, pointed at Warren's socket:
``launch --count 20`` leaves 20 running containers and ``delete`` removes every one.

It talks the old ``/1.0/containers`` API with ``?project=default`` on every call, marks its
containers with ``user.lxd-benchmark``, and exits 0 even when some launches fail, so the
test counts what runs itself.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from _helpers import lxc_ok, metadata

from services.image.builders.busybox import build_busybox

COUNT = 20

pytestmark = [
    pytest.mark.skipif(shutil.which("lxd-benchmark") is None, reason="lxd-tools is missing"),
    pytest.mark.skipif(not Path("/bin/busybox").exists(), reason="busybox-static not installed"),
    pytest.mark.timeout(300),
]


def benchmark(target: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["lxd-benchmark", *args],
        env=target.env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def ours(target: Any) -> list[dict[str, Any]]:
    found = metadata(target, "/1.0/instances?recursion=1")
    return [i for i in found if i["config"].get("user.lxd-benchmark") == "true"]


def test_lxd_benchmark_launches_and_deletes(
    target: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = Path(build_busybox(tmp_path_factory.mktemp("busybox")).path)
    fingerprint = hashlib.sha256(path.read_bytes()).hexdigest()
    if target.request("GET", f"/1.0/images/{fingerprint}")[0] == 404:
        lxc_ok(target, "image", "import", str(path))
    try:
        done = benchmark(target, "launch", "--count", str(COUNT), fingerprint)
        assert done.returncode == 0, done.stderr
        assert "Batch processing completed" in done.stdout + done.stderr
        launched = ours(target)
        assert len(launched) == COUNT, [i["name"] for i in launched]
        assert {i["status"] for i in launched} == {"Running"}
    finally:
        done = benchmark(target, "delete")
    assert done.returncode == 0, done.stderr
    assert ours(target) == []
