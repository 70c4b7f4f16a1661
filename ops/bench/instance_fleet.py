"""The containers one benchmark run makes on a target, recorded so that every one of them is
removed again (also on failure or Ctrl-C), and the ones ``lxd-benchmark`` made.

Launch is what ``lxc launch`` sends: ``POST /1.0/instances`` with the image by fingerprint,
then ``PUT .../state start``, each waited for on its operation. Remove is what
``lxc delete --force`` does: a forced stop if running, then ``DELETE``.
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from instance_targets import Target
from lxd_api import Api


class Fleet:
    """Every container this run made on one target; one kept-alive connection per thread."""

    def __init__(self, target: Target, fingerprint: str) -> None:
        self.target = target
        self.fingerprint = fingerprint
        self.prefix = f"bench-{uuid.uuid4().hex[:6]}"
        self.names: list[str] = []
        self._counter = 0
        self._lock = threading.Lock()
        self._local = threading.local()

    def api(self) -> Api:
        if getattr(self._local, "api", None) is None:
            self._local.api = Api(self.target.socket)
        return self._local.api

    def new_name(self) -> str:
        with self._lock:
            self._counter += 1
            name = f"{self.prefix}-{self._counter}"
            self.names.append(name)
            return name

    def create(self, name: str) -> float:
        start = time.perf_counter()
        body = {"name": name, "source": {"type": "image", "fingerprint": self.fingerprint}}
        self.api().run("POST", "/1.0/instances", body)
        return time.perf_counter() - start

    def start(self, name: str) -> float:
        start = time.perf_counter()
        self.api().run("PUT", f"/1.0/instances/{name}/state", {"action": "start", "timeout": -1})
        return time.perf_counter() - start

    def launch(self) -> tuple[str, float, float]:
        """A new container, created and started: its name and both durations (s)."""
        name = self.new_name()
        created = self.create(name)
        return name, created, self.start(name)

    def _forget(self, name: str) -> None:
        with self._lock:
            if name in self.names:
                self.names.remove(name)

    def remove(self, name: str) -> float:
        """Forced stop (if running) and delete, as ``lxc delete --force`` does."""
        api = self.api()
        start = time.perf_counter()
        status, body, _ = api.call("GET", f"/1.0/instances/{name}")
        if status == 404:
            self._forget(name)
            return 0.0
        if (body or {}).get("metadata", {}).get("status") != "Stopped":
            api.run("PUT", f"/1.0/instances/{name}/state", {"action": "stop", "force": True})
        api.run("DELETE", f"/1.0/instances/{name}")
        self._forget(name)
        return time.perf_counter() - start

    def remove_all(self, parallel: int) -> list[str]:
        """Remove every container still recorded; return the errors."""
        errors: list[str] = []

        def one(name: str) -> None:
            try:
                self.remove(name)
            except Exception as exc:
                errors.append(f"{name}: {exc}")

        with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
            list(pool.map(one, list(self.names)))
        return errors


def benchmark_containers(api: Api, running_only: bool = False) -> list[str]:
    """Containers lxd-benchmark made (``user.lxd-benchmark: true``)."""
    status, body, _ = api.call("GET", "/1.0/instances?recursion=1")
    if status != 200:
        return []
    return [
        i["name"]
        for i in body.get("metadata") or []
        if (i.get("config") or {}).get("user.lxd-benchmark") == "true"
        and (not running_only or i.get("status") == "Running")
    ]
