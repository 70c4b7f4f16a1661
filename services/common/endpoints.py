"""Request/reply endpoints: decode, validate, call the handler, encode the reply.

Every endpoint subscribes in a queue group, so replicas share the load and each request is
handled exactly once. A NATS subscription hands its messages to the callback one at a time, so
by default one slow request holds up every later one on the same subject; an endpoint added
with ``concurrent=True`` handles each message in its own task instead (its handler must then
cope with concurrent calls itself).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from pydantic import BaseModel, ValidationError

from schemas import codec
from schemas.errors import BadRequest, WarrenError
from schemas.messages import Reply, Request, RequestMeta

log = logging.getLogger(__name__)

#: A handler gets the validated body and the request metadata; it returns a result and the
#: stream sequence its answer reflects.
Handler = Callable[[Any, RequestMeta], Awaitable[tuple[Any, int]]]


def validation_message(exc: ValidationError) -> str:
    """One readable line naming each invalid field."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


@dataclass(frozen=True)
class Endpoint:
    """A subject, the model its body must match, and the handler."""

    subject: str
    body_model: type[BaseModel]
    handler: Handler
    #: Handle each message in its own task (see the module docstring).
    concurrent: bool = False

    async def serve(self, msg: Msg) -> None:
        try:
            request = codec.decode(Request, msg.data)
            try:
                body = self.body_model.model_validate(request.body)
            except ValidationError as exc:
                raise BadRequest(validation_message(exc)) from exc
            result, seq = await self.handler(body, request.meta)
            reply = Reply(result=result, seq=seq)
        except WarrenError as exc:
            reply = Reply.failure(exc)
        except Exception as exc:
            log.exception("%s failed", self.subject)
            reply = Reply.failure(WarrenError(f"internal error: {exc}"))
        if msg.reply:
            await msg.respond(codec.encode(reply))


class EndpointGroup:
    """The endpoints of one service, subscribed in one queue group."""

    def __init__(self, queue: str) -> None:
        self.queue = queue
        self.endpoints: list[Endpoint] = []
        self._subs: list[Any] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def add(
        self,
        subject: str,
        body_model: type[BaseModel],
        handler: Handler,
        *,
        concurrent: bool = False,
    ) -> None:
        """Serve ``subject``; ``concurrent`` handles each message in its own task."""
        self.endpoints.append(Endpoint(subject, body_model, handler, concurrent))

    def _callback(self, endpoint: Endpoint) -> Callable[[Msg], Awaitable[None]]:
        if not endpoint.concurrent:
            return endpoint.serve

        async def spawn(msg: Msg) -> None:
            task = asyncio.create_task(endpoint.serve(msg), name=f"serve {endpoint.subject}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        return spawn

    def route(self, subject: str, body_model: type[BaseModel]) -> Callable[[Handler], Handler]:
        """Decorator form of :meth:`add`."""

        def wrap(handler: Handler) -> Handler:
            self.add(subject, body_model, handler)
            return handler

        return wrap

    async def start(self, nc: Client) -> None:
        for endpoint in self.endpoints:
            cb = self._callback(endpoint)
            sub = await nc.subscribe(endpoint.subject, queue=self.queue, cb=cb)
            self._subs.append(sub)
        log.info("serving %d endpoints in queue group %s", len(self.endpoints), self.queue)

    async def stop(self, grace: float = 30.0) -> None:
        """Stop taking requests and finish those in flight (concurrent ones get ``grace``
        seconds, then are cancelled)."""
        for sub in self._subs:
            try:
                await sub.drain()
            except Exception as exc:
                log.debug("drain failed: %s", exc)
        self._subs.clear()
        if self._tasks:
            _, late = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in late:
                log.warning("%s still running at shutdown: cancelled", task.get_name())
                task.cancel()
            if late:
                await asyncio.wait(late)
