"""Helpers for the compatibility suites: a target (Warren, or the real LXD for reference) and
a background ``lxc monitor``.

The suites run against a Warren stack by default. With ``WARREN_COMPAT_LXD_SOCKET`` set to the
unix socket of a real LXD 5.0 daemon they run against that daemon instead, which is how their
expectations were checked (see LXD-REFERENCE.md).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from pydantic import BaseModel
from stack import http_unix, wait_for

from schemas import codec, subjects

LXD_SOCKET_ENV = "WARREN_COMPAT_LXD_SOCKET"


def unique(prefix: str) -> str:
    """A fresh object name: suites may share one daemon, so never reuse a name."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class LxdReference:
    """The real LXD daemon behind ``socket``, with the same surface the suites use on a Stack."""

    def __init__(self, socket: str | os.PathLike[str]) -> None:
        self.socket = Path(socket)
        self.client_dir = Path(tempfile.mkdtemp(prefix="lxc-client-"))

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["LXD_SOCKET"] = str(self.socket)
        env["LXD_CONF"] = str(self.client_dir)
        return env

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], Any]:
        return http_unix(self.socket, method, path, body, headers)

    def lxc(self, *args: str, input: str | None = None, timeout: float = 60):
        return subprocess.run(
            ["lxc", *args],
            env=self.env,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def metadata(target: Any, path: str) -> Any:
    """GET ``path`` and return its metadata, failing loudly on anything but 200."""
    status, _, body = target.request("GET", path)
    assert status == 200, f"GET {path} -> {status} {body}"
    return body["metadata"]


def status_of(target: Any, path: str) -> int:
    return target.request("GET", path)[0]


def lxc_ok(target: Any, *args: str, input: str | None = None) -> str:
    """Run ``lxc``; it must succeed. Returns its stdout."""
    result = target.lxc(*args, input=input)
    assert result.returncode == 0, (
        f"lxc {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    )
    return result.stdout


def parse_json_stream(text: str) -> list[dict[str, Any]]:
    """Split concatenated JSON documents (what ``lxc monitor --format=json`` prints)."""
    decoder = json.JSONDecoder()
    docs: list[dict[str, Any]] = []
    index = 0
    while True:
        while index < len(text) and text[index].isspace():
            index += 1
        if index >= len(text):
            return docs
        try:
            doc, index = decoder.raw_decode(text, index)
        except ValueError:
            return docs  # a document still being written
        docs.append(doc)


class LxcMonitor:
    """``lxc monitor --type=<kind> --format=json`` running in the background (``--pretty``
    among ``extra`` makes it print log lines instead: read them with ``text``)."""

    def __init__(self, target: Any, *extra: str, kind: str = "lifecycle") -> None:
        self.out_path = Path(tempfile.mkstemp(prefix="lxc-monitor-", suffix=".json")[1])
        self.err_path = self.out_path.with_suffix(".err")
        argv = ["lxc", "monitor", f"--type={kind}", "--format=json", *extra]
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(
                argv, env=target.env, stdout=out, stderr=err, stdin=subprocess.DEVNULL
            )

    def text(self) -> str:
        return self.out_path.read_text(errors="replace")

    def events(self) -> list[dict[str, Any]]:
        return parse_json_stream(self.text())

    def wait_for(
        self, predicate: Callable[[list[dict[str, Any]]], bool], what: str, timeout: float = 20
    ) -> list[dict[str, Any]]:
        def check() -> list[dict[str, Any]] | None:
            if self.proc.poll() is not None:
                raise AssertionError(f"lxc monitor exited: {self.err_path.read_text()}")
            events = self.events()
            return events if predicate(events) else None

        return wait_for(check, timeout, what)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)
        self.out_path.unlink(missing_ok=True)
        self.err_path.unlink(missing_ok=True)


def lifecycle(events: list[dict[str, Any]], sources: set[str]) -> list[tuple[str, str]]:
    """``(action, source)`` of the lifecycle events about ``sources``, in arrival order."""
    return [
        (e["metadata"]["action"], e["metadata"]["source"])
        for e in events
        if e.get("type") == "lifecycle" and e["metadata"].get("source") in sources
    ]


def mentions(events: list[dict[str, Any]], name: str) -> bool:
    """True if some lifecycle event's source names the profile ``name`` (any project)."""
    return any(
        e.get("type") == "lifecycle"
        and e["metadata"].get("source", "").split("?")[0] == f"/1.0/profiles/{name}"
        for e in events
    )


def prime_listener(
    target: Any, seen: Callable[[str], bool], project: str | None = None, timeout: float = 20
) -> None:
    """Make sure an event listener is connected before the test's own changes.

    A websocket listener may attach a moment after its handshake. Touch a probe profile until
    ``seen(probe_name)`` reports an event about it, then delete the probe.
    """
    probe = unique("probe")
    query = f"?project={project}" if project else ""
    status, _, body = target.request("POST", f"/1.0/profiles{query}", {"name": probe})
    assert status in (200, 201), body
    deadline = time.monotonic() + timeout
    n = 0
    while not seen(probe):
        if time.monotonic() > deadline:
            raise TimeoutError("the event listener never saw the probe profile's events")
        n += 1
        body = {"config": {"user.probe": str(n)}}
        target.request("PATCH", f"/1.0/profiles/{probe}{query}", body)
        time.sleep(0.1)
    status, _, body = target.request("DELETE", f"/1.0/profiles/{probe}{query}")
    assert status == 200, body


# -- state and event log (Warren) -----------------------------------------------------------
def dump(target: Any) -> dict[str, Any]:
    """Every project and every profile of every project, with their ETags."""
    state: dict[str, Any] = {}
    for project in metadata(target, "/1.0/projects?recursion=1"):
        name = project["name"]
        status, headers, body = target.request("GET", f"/1.0/projects/{name}")
        assert status == 200, body
        state[f"project {name}"] = (body["metadata"], headers.get("etag"))
        for profile in metadata(target, f"/1.0/profiles?project={name}&recursion=1"):
            path = f"/1.0/profiles/{quote(profile['name'])}?project={name}"
            status, headers, body = target.request("GET", path)
            assert status == 200, body
            state[f"profile {name}/{profile['name']}"] = (body["metadata"], headers.get("etag"))
    return state


class LoggedEvent(BaseModel):
    """One message of the EVENTS stream as a test sees it (decoded independently of services)."""

    seq: int
    subject: str
    msg_id: str | None
    body: dict[str, Any]

    @property
    def type(self) -> str:
        return self.body["type"]

    @property
    def payload(self) -> dict[str, Any]:
        return self.body.get("payload") or {}


async def _read_events(nats_url: str) -> tuple[int, list[LoggedEvent]]:
    nc = await nats.connect(nats_url, name="warren-tests-reader", connect_timeout=5)
    try:
        js = nc.jetstream()
        info = await js.stream_info(subjects.EVENTS_STREAM)
        events: list[LoggedEvent] = []
        remaining = info.state.messages
        if remaining == 0:
            return info.state.last_seq, events
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.NONE,
            inactive_threshold=30.0,
        )
        sub = await js.pull_subscribe(
            subjects.ALL_EVENTS, stream=subjects.EVENTS_STREAM, config=config
        )
        while len(events) < remaining:
            for msg in await sub.fetch(min(500, remaining - len(events)), timeout=10):
                headers = msg.headers or {}
                events.append(
                    LoggedEvent(
                        seq=msg.metadata.sequence.stream,
                        subject=msg.subject,
                        msg_id=headers.get("Nats-Msg-Id"),
                        body=codec.unpack(msg.data),
                    )
                )
        await sub.unsubscribe()
        return info.state.last_seq, events
    finally:
        await nc.close()


def read_events(nats_url: str) -> list[LoggedEvent]:
    """Every event in the EVENTS stream, oldest first (from sync test code)."""
    return asyncio.run(_read_events(nats_url))[1]


def last_seq(nats_url: str) -> int:
    """The EVENTS stream's last sequence."""
    return asyncio.run(_read_events(nats_url))[0] if nats_url else 0


def named(events: list[LoggedEvent], type_: str, prefix: str = "") -> list[str]:
    """Payload names of the events of one type whose name starts with ``prefix``."""
    return [
        e.payload.get("name", "")
        for e in events
        if e.type == type_ and e.payload.get("name", "").startswith(prefix)
    ]
