"""``kill -9`` of the instance service, the gateway or nats-server during a stream of profile
writes: the supervisor restarts it, every acknowledged write is still there, and nothing is
duplicated, neither in the state nor in the event log.
"""

from __future__ import annotations

import http.client
import signal
import threading
import time
from collections import Counter
from typing import Any

import pytest
from _helpers import metadata, named, read_events, unique
from stack import Stack, http_unix, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ACKS_BEFORE_KILL = 8
ACKS_AFTER_RESTART = 8


class Writer(threading.Thread):
    """Creates profiles and then updates each once, over HTTP, as fast as it is answered.

    Errors while a process is down (refused connections, 5xx, timeouts) are expected: such a
    write may or may not have happened, so it is never retried under the same name. Only 2xx
    answers count as acknowledged.
    """

    def __init__(self, stack: Stack, prefix: str) -> None:
        super().__init__(daemon=True)
        self.stack = stack
        self.prefix = prefix
        self.attempted: list[str] = []
        self.acked_creates: list[str] = []
        self.acked_updates: dict[str, str] = {}
        self.failures: Counter[str] = Counter()
        self.halt = threading.Event()

    @property
    def acks(self) -> int:
        return len(self.acked_creates) + len(self.acked_updates)

    def _send(self, method: str, path: str, body: Any) -> int | None:
        try:
            status, _, _ = http_unix(self.stack.socket, method, path, body, timeout=20)
        except (OSError, http.client.HTTPException) as exc:
            self.failures[type(exc).__name__] += 1
            time.sleep(0.05)
            return None
        if status >= 300:
            self.failures[str(status)] += 1
            if status >= 500:
                time.sleep(0.05)  # the service is down: do not spin
        return status

    def run(self) -> None:
        n = 0
        while not self.halt.is_set():
            name = f"{self.prefix}-{n}"
            n += 1
            self.attempted.append(name)
            body = {"name": name, "config": {"user.step": "created"}}
            if self._send("POST", "/1.0/profiles", body) != 201:
                continue
            self.acked_creates.append(name)
            patch = {"config": {"user.step": "updated"}}
            if self._send("PATCH", f"/1.0/profiles/{name}", patch) == 200:
                self.acked_updates[name] = "updated"


@pytest.mark.parametrize("victim", ["instance", "gateway", "nats"])
def test_kill_9_during_writes_keeps_every_acknowledged_write(
    module_warren: Stack, victim: str
) -> None:
    stack = module_warren
    writer = Writer(stack, unique(f"kill-{victim}"))
    writer.start()
    try:
        wait_for(lambda: writer.acks >= ACKS_BEFORE_KILL, 60, "writes before the kill")
        old_pid = stack.kill(victim, signal.SIGKILL)
        new_pid = stack.wait_restarted(victim, old_pid)
        assert new_pid != old_pid
        target = writer.acks + ACKS_AFTER_RESTART
        wait_for(lambda: writer.acks >= target, 90, f"writes after {victim} restarted")
    finally:
        writer.halt.set()
        writer.join(timeout=60)
    assert not writer.is_alive()

    profiles = metadata(stack, "/1.0/profiles?recursion=1")
    names = [p["name"] for p in profiles]
    assert len(names) == len(set(names)), "a profile name appears twice"
    ours = {p["name"]: p for p in profiles if p["name"].startswith(writer.prefix + "-")}
    missing = [n for n in writer.acked_creates if n not in ours]
    assert not missing, f"acknowledged creates lost after kill -9 of {victim}: {missing}"
    assert set(ours) <= set(writer.attempted)
    lost = [n for n, v in writer.acked_updates.items() if ours[n]["config"].get("user.step") != v]
    assert not lost, f"acknowledged updates lost after kill -9 of {victim}: {lost}"

    events = read_events(stack.nats_url)
    ids = Counter(e.body["event_id"] for e in events)
    assert [i for i, c in ids.items() if c > 1] == []
    created = Counter(named(events, "profile-created", writer.prefix + "-"))
    assert sorted(created) == sorted(ours), "log and state disagree on which profiles exist"
    assert [n for n, c in created.items() if c > 1] == [], "a create was logged twice"
    updated = Counter(named(events, "profile-updated", writer.prefix + "-"))
    assert [n for n, c in updated.items() if c > 1] == [], "an update was logged twice"
    assert set(writer.acked_updates) <= set(updated)


def test_the_stack_still_serves_after_the_kills(module_warren: Stack) -> None:
    # Runs after the kills above (module order): every process is back and answering.
    name = unique("after-kills")
    status, _, body = module_warren.request("POST", "/1.0/profiles", {"name": name})
    assert status == 201, body
    assert metadata(module_warren, f"/1.0/profiles/{name}")["name"] == name
    statuses = {p["service"]: p["ready"] for p in module_warren.processes()}
    assert all(statuses.values()), statuses
