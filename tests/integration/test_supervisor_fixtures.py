"""The test helpers themselves: NatsServer restarts in place, Stack speaks HTTP on a socket."""

from __future__ import annotations

import asyncio
import shutil

import nats
from stack import NatsServer, http_unix, pid_alive, short_tempdir


async def _publish_and_read(url: str, publish: bool) -> bytes:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        if publish:
            await js.add_stream(name="HELPERS", subjects=["helpers.>"])
            await js.publish("helpers.one", b"survives")
        return (await js.get_last_msg("HELPERS", "helpers.one")).data
    finally:
        await nc.close()


def test_nats_server_restarts_on_the_same_port_and_store():
    root = short_tempdir("nats-helper-")
    server = NatsServer(root / "js")
    try:
        server.start()
        first_pid = server.proc.pid
        url = server.url
        assert asyncio.run(_publish_and_read(url, publish=True)) == b"survives"
        server.stop()
        assert not pid_alive(first_pid)
        server.start()
        assert server.url == url and server.proc.pid != first_pid
        assert asyncio.run(_publish_and_read(url, publish=False)) == b"survives"
        assert (root / "js" / "jetstream").is_dir()
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_session_nats_server_has_jetstream(nats_server):
    async def account() -> int:
        nc = await nats.connect(nats_server.url)
        try:
            return (await nc.jetstream().account_info()).limits.max_streams
        finally:
            await nc.close()

    assert nats_server.url == f"nats://127.0.0.1:{nats_server.port}"
    assert asyncio.run(account()) != 0


def test_stack_request_shapes_json_and_errors(warren):
    code, headers, body = warren.request("GET", "/1.0")
    assert code == 200 and headers["content-type"].startswith("application/json")
    assert body["type"] == "sync"
    code, _, body = http_unix(warren.socket, "GET", "/1.0/nope")
    assert code == 404 and body["error_code"] == 404
    code, _, _ = warren.request("POST", "/1.0/profiles", "{not json")
    assert code == 400
    assert warren.lxc("profile", "list", "--format", "csv").stdout.startswith("default,")
