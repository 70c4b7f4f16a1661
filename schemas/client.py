"""The client side of the contract: a NATS connection that reconnects forever, drains on the
way out, and sends typed requests. Used by the gateway and by every service."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext

from schemas import codec
from schemas.errors import Unavailable
from schemas.messages import Reply, Request, RequestMeta

log = logging.getLogger(__name__)


async def _quiet_error(exc: Exception) -> None:
    # nats-py's default callback prints a traceback on every reconnect.
    log.warning("nats: %s", exc)


async def connect(url: str, name: str) -> Client:
    """Connect with unlimited reconnects; the caller drains on shutdown."""
    return await nats.connect(
        servers=[url],
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.25,
        connect_timeout=2,
        allow_reconnect=True,
        error_cb=_quiet_error,
        disconnected_cb=_on_disconnected,
        reconnected_cb=_on_reconnected,
    )


async def _on_disconnected() -> None:
    log.info("nats disconnected")


async def _on_reconnected() -> None:
    log.info("nats reconnected")


class Bus:
    """A connection plus its JetStream context and a typed request helper."""

    def __init__(self, nc: Client) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream()

    @classmethod
    async def open(cls, url: str, name: str) -> Bus:
        return cls(await connect(url, name))

    async def request(
        self,
        subject: str,
        body: dict[str, Any] | None = None,
        meta: RequestMeta | None = None,
        timeout: float = 10.0,
    ) -> Any:
        """Send a command or query and return its result, raising the error it carries."""
        return (await self.request_reply(subject, body, meta, timeout)).unwrap()

    async def request_reply(
        self,
        subject: str,
        body: dict[str, Any] | None = None,
        meta: RequestMeta | None = None,
        timeout: float = 10.0,
    ) -> Reply:
        """Like :meth:`request` but return the whole reply (result, error and seq).

        "No responders" means nobody received the request (a service restarting after a
        crash), so it is safe to send again: keep trying until ``timeout`` runs out. A timeout
        after delivery is not retried, since the work may have been done.
        """
        data = codec.encode(Request(meta=meta or RequestMeta(), body=body or {}))
        deadline = time.monotonic() + timeout
        pause = 0.02
        while True:
            remaining = deadline - time.monotonic()
            try:
                msg = await self.nc.request(subject, data, timeout=max(remaining, 0.05))
                return codec.decode(Reply, msg.data)
            except nats.errors.NoRespondersError as exc:
                if remaining <= pause:
                    raise Unavailable(
                        f"no service answers {subject}; check that Warren's services are running"
                    ) from exc
            except nats.errors.TimeoutError as exc:
                raise Unavailable(f"{subject} did not answer within {timeout:g}s") from exc
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.25)

    async def close(self) -> None:
        """Drain subscriptions and pending publishes, then close."""
        if not self.nc.is_closed:
            try:
                await self.nc.drain()
            except Exception as exc:  # a dead server must not block shutdown
                log.debug("drain failed: %s", exc)
