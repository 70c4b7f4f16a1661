"""Assemble and run the gateway: bus connection, log reader, routes, unix socket."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import stat
from pathlib import Path

from aiohttp import web

from gateway import errors, logevents
from gateway.eventlog import LogReader
from gateway.hub import EventHub
from gateway.logevents import HubLogHandler
from gateway.operations import OperationsView
from gateway.routes import (
    events,
    history,
    image_aliases,
    images,
    instance_exec,
    instance_files,
    instance_logs,
    instance_state,
    instances,
    network_forwards,
    networks,
    operations,
    profiles,
    projects,
    root,
    storage,
)
from gateway.state import STATE, GatewaySettings, GatewayState
from schemas import eventloop
from schemas.client import Bus

log = logging.getLogger("gateway")

# image_aliases before images: /1.0/images/aliases must not match /1.0/images/{fingerprint}.
ROUTE_MODULES = (
    root,
    profiles,
    projects,
    operations,
    events,
    history,
    storage,
    networks,
    network_forwards,
    image_aliases,
    images,
    instances,
    instance_state,
    instance_exec,
    instance_files,
    instance_logs,
)
#: Bodies of LXD requests are small JSON documents; image uploads will get their own route.
MAX_BODY = 16 * 1024 * 1024


def build_app(state: GatewayState) -> web.Application:
    """The aiohttp application: every route module behind the request log and the one error
    middleware."""
    middlewares = [logevents.request_logging(state.hub), errors.lxd_errors]
    app = web.Application(middlewares=middlewares, client_max_size=MAX_BODY)
    app[STATE] = state
    for module in ROUTE_MODULES:
        app.add_routes(module.routes)
    return app


def api_extensions() -> list[str]:
    return root.extensions(module.EXTENSIONS for module in ROUTE_MODULES)


def clear_stale_socket(path: Path) -> None:
    """Remove a socket file nobody listens on; refuse to steal a live one."""
    if not path.exists() and not path.is_symlink():
        return
    if not stat.S_ISSOCK(path.lstat().st_mode):
        raise SystemExit(f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink(missing_ok=True)  # stale: left by a process that died
        return
    finally:
        probe.close()
    raise SystemExit(f"another server is listening on {path}")


async def open_bus(url: str, name: str, attempts: int = 60) -> Bus:
    """Connect, retrying while nats-server starts (the supervisor starts both together)."""
    for attempt in range(attempts):
        try:
            return await Bus.open(url, name)
        except Exception as exc:
            if attempt == attempts - 1:
                raise
            log.info("waiting for NATS at %s (%s)", url, exc)
            await asyncio.sleep(0.5)
    raise AssertionError("unreachable")


class Gateway:
    """One gateway process: start, serve, stop."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.state: GatewayState | None = None
        self._runner: web.AppRunner | None = None
        self._log_handler: HubLogHandler | None = None
        self._listening = False

    async def start(self) -> None:
        settings = self.settings
        bus = await open_bus(settings.nats_url, f"gateway-{settings.node}-{os.getpid()}")
        ops = OperationsView(settings.operations_retention_s)
        hub = EventHub()
        reader = LogReader(bus.js, ops, hub)
        server = root.server_info(settings.node, api_extensions())
        self.state = GatewayState(bus=bus, operations=ops, hub=hub, reader=reader, server=server)
        self._log_handler = HubLogHandler(hub, asyncio.get_running_loop())
        logging.getLogger().addHandler(self._log_handler)
        reader.start()

        self._runner = web.AppRunner(
            build_app(self.state), access_log=None, handle_signals=False, shutdown_timeout=2.0
        )
        await self._runner.setup()
        path = settings.socket_path
        path.parent.mkdir(parents=True, exist_ok=True)
        clear_stale_socket(path)
        site = web.UnixSite(self._runner, str(path))
        await site.start()
        self._listening = True
        os.chmod(path, 0o660)
        log.info("LXD API listening on %s", path)

    async def stop(self) -> None:
        if self._log_handler is not None:
            logging.getLogger().removeHandler(self._log_handler)
        if self._runner is not None:
            await self._runner.cleanup()
        if self.state is not None:
            await self.state.reader.stop()
            await self.state.bus.close()
        if self._listening:
            # Only a socket this process bound (never another live gateway's).
            with contextlib.suppress(FileNotFoundError):
                self.settings.socket_path.unlink()
            self._listening = False


async def serve(settings: GatewaySettings) -> None:
    """Run until SIGTERM or SIGINT, then stop cleanly (also while still starting)."""
    gateway = Gateway(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # Starting can wait a long time for NATS; a stop request must not wait for it.
    starting = asyncio.create_task(gateway.start())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    try:
        if starting.done():
            starting.result()  # a failed start ends the process with its error
            await stopping
        else:
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting
    finally:
        stopping.cancel()
        log.info("stopping")
        await gateway.stop()


def main() -> None:
    """Entry point of ``python -m gateway``."""
    logging.basicConfig(
        level=os.environ.get("WARREN_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    eventloop.run(serve(GatewaySettings.from_env()))
