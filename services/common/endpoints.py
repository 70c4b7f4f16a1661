"""Request/reply endpoints: decode, validate, call the handler, encode the reply.

Every endpoint subscribes in a queue group, so replicas share the load and each request is
handled exactly once.
"""

from __future__ import annotations

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

    def add(self, subject: str, body_model: type[BaseModel], handler: Handler) -> None:
        self.endpoints.append(Endpoint(subject, body_model, handler))

    def route(self, subject: str, body_model: type[BaseModel]) -> Callable[[Handler], Handler]:
        """Decorator form of :meth:`add`."""

        def wrap(handler: Handler) -> Handler:
            self.add(subject, body_model, handler)
            return handler

        return wrap

    async def start(self, nc: Client) -> None:
        for endpoint in self.endpoints:
            sub = await nc.subscribe(endpoint.subject, queue=self.queue, cb=endpoint.serve)
            self._subs.append(sub)
        log.info("serving %d endpoints in queue group %s", len(self.endpoints), self.queue)

    async def stop(self) -> None:
        for sub in self._subs:
            try:
                await sub.drain()
            except Exception as exc:
                log.debug("drain failed: %s", exc)
        self._subs.clear()
