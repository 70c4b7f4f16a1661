"""A scripted instance service on a real nats-server, for the gateway's instance-route tests.

It answers the catalog queries (``INSTANCES_LIST``, ``INSTANCES_GET``) and the node commands
of each node it plays (``instance.<node>.<verb>``) the way the instance service's wire
contract says (``schemas/instances.py``, ``schemas/exec_io.py``): operations recorded in the
real log by an ``OperationRecorder``, files and exec bytes as real byte streams. Every request
is kept (``.seen``) so a test can assert what the gateway sent and to which node.

The "host" is a dict: instances by ``(project, name)``, and one small file tree for all of
them (``.files``). Exec runs scripted commands:

- ``cat``: stdin to stdout; ``sh -c 'exit N'``: exit code N; ``echo ...``: its words;
- anything with ``err`` as the first word: its remaining words to stderr, exit code 3;
- interactive: upper-cases each line typed, ends on ``exit``;
- ``sleep``: waits for a ``signal`` control message and exits with 128 + signal.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import posixpath
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from schemas import codec, exec_io, subjects
from schemas.bytestream import StreamReceiver, send_stream
from schemas.client import Bus
from schemas.errors import BadRequest, NotFound, PreconditionFailed, WarrenError
from schemas.exec_io import Attach, Control
from schemas.instances import (
    CreateInstance,
    ExecStart,
    FileDelete,
    FileGet,
    FilePut,
    LogDelete,
    LogQuery,
    RenameInstance,
    StateChange,
    UpdateInstance,
)
from schemas.messages import Reply, Request, RequestMeta
from services.common.eventstore import EventStore
from services.common.operations import OperationRecorder, RunningOperation


@dataclass
class Seen:
    subject: str
    node: str | None  # None for catalog queries
    verb: str
    meta: RequestMeta
    body: dict[str, Any]


@dataclass
class Node:
    path: str
    type: str = "file"
    content: bytes = b""
    target: str = ""
    uid: int = 0
    gid: int = 0
    mode: int = 0o644


@dataclass
class Exec:
    op: RunningOperation
    start: ExecStart
    attached: set[str] = field(default_factory=set)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    stdin: StreamReceiver | None = None
    controls: list[Control] = field(default_factory=list)
    signalled: asyncio.Event = field(default_factory=asyncio.Event)
    subs: list[Any] = field(default_factory=list)


def instance_object(name: str, project: str, node: str, **extra: Any) -> dict[str, Any]:
    obj = {
        "name": name,
        "project": project,
        "type": "container",
        "status": "Stopped",
        "status_code": 102,
        "architecture": "x86_64",
        "config": {},
        "expanded_config": {},
        "devices": {},
        "expanded_devices": {},
        "profiles": ["default"],
        "ephemeral": False,
        "stateful": False,
        "description": "",
        "created_at": "2026-01-01T00:00:00Z",
        "last_used_at": "1970-01-01T00:00:00Z",
        "location": node,
    }
    obj.update(extra)
    obj["expanded_config"] = dict(obj["config"])
    return obj


def etag_of(obj: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


class ScriptedInstances:
    """The instance service, scripted: one catalog and the nodes named in ``nodes``."""

    def __init__(self, bus: Bus, nodes: tuple[str, ...] = ("test",)) -> None:
        self.bus = bus
        self.nodes = nodes
        self.recorder = OperationRecorder(bus.nc, EventStore(bus.js), node=nodes[0])
        self.instances: dict[tuple[str, str], tuple[dict[str, Any], str]] = {}
        self.files: dict[str, Node] = {"/": Node("/", "directory", mode=0o755)}
        self.logs: dict[str, bytes] = {"lxc.log": b"lxc log line\n", "lxc.conf": b"conf\n"}
        self.console = b"console says hi\n"
        self.seen: list[Seen] = []
        self.execs: dict[str, Exec] = {}
        self._subs: list[Any] = []
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- setup ----------------------------------------------------------------------------

    def add(self, name: str, node: str | None = None, project: str = "default", **extra: Any):
        node = node or self.nodes[0]
        obj = instance_object(name, project, node, **extra)
        self.instances[(project, name)] = (obj, node)
        return obj

    def mkdir(self, path: str, mode: int = 0o755) -> None:
        self.files[path] = Node(path, "directory", mode=mode)

    def write(self, path: str, content: bytes, mode: int = 0o644, uid: int = 0, gid: int = 0):
        self.files[path] = Node(path, "file", content=content, mode=mode, uid=uid, gid=gid)

    async def start(self) -> ScriptedInstances:
        nc = self.bus.nc
        self._subs.append(await nc.subscribe(subjects.INSTANCES_LIST, cb=self._on_list))
        self._subs.append(await nc.subscribe(subjects.INSTANCES_GET, cb=self._on_get))
        for node in self.nodes:
            subject = f"{subjects.INSTANCE}.{node}.*"
            self._subs.append(await nc.subscribe(subject, cb=self._on_node))
        await nc.flush()
        return self

    async def stop(self) -> None:
        for sub in self._subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        for ex in self.execs.values():
            for sub in ex.subs:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()
        for task in list(self._tasks):
            task.cancel()
        await self.recorder.stop()

    def verbs(self, verb: str) -> list[Seen]:
        return [s for s in self.seen if s.verb == verb]

    def spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- plumbing -------------------------------------------------------------------------

    async def _answer(self, msg: Any, handler: Any) -> None:
        request = codec.decode(Request, msg.data)
        parts = msg.subject.split(".")
        node, verb = (parts[1], parts[2]) if len(parts) == 3 else (None, parts[1])
        self.seen.append(Seen(msg.subject, node, verb, request.meta, request.body))
        try:
            result, seq = await handler(node, verb, request.meta, request.body)
            reply = Reply(result=result, seq=seq)
        except WarrenError as exc:
            reply = Reply.failure(exc)
        await msg.respond(codec.encode(reply))

    async def _on_list(self, msg: Any) -> None:
        await self._answer(msg, self._list)

    async def _on_get(self, msg: Any) -> None:
        await self._answer(msg, self._get)

    async def _on_node(self, msg: Any) -> None:
        await self._answer(msg, self._command)

    def _find(self, meta: RequestMeta, name: str) -> tuple[dict[str, Any], str]:
        try:
            return self.instances[(meta.project, name)]
        except KeyError:
            raise NotFound("Instance not found") from None

    # -- catalog --------------------------------------------------------------------------

    async def _list(self, _node: Any, _verb: str, meta: RequestMeta, body: dict[str, Any]):
        recursion = body.get("recursion", 0)
        found = [
            obj
            for (project, _), (obj, _) in sorted(self.instances.items())
            if body.get("all_projects") or project == meta.project
        ]
        if recursion == 0:
            return [obj["name"] for obj in found], 0
        if recursion == 1:
            return found, 0
        return [{**obj, "state": {"status": obj["status"]}, "snapshots": []} for obj in found], 0

    async def _get(self, _node: Any, _verb: str, meta: RequestMeta, body: dict[str, Any]):
        obj, node = self._find(meta, body["name"])
        return {"object": obj, "etag": etag_of(obj), "node": node}, 0

    # -- node commands --------------------------------------------------------------------

    async def _command(self, node: str, verb: str, meta: RequestMeta, body: dict[str, Any]):
        handler = getattr(self, "_" + verb.replace("-", "_"))
        # A node answers only for the instances it holds (as the real node agent does).
        name = body.get("name")
        if verb != subjects.INSTANCE_CREATE and isinstance(name, str):
            held = self.instances.get((meta.project, name))
            if held is not None and held[1] != node:
                raise NotFound("Instance not found")
        return await handler(node, meta, body)

    async def _operation(self, meta: RequestMeta, description: str, work: Any, **kw: Any):
        async def run(op: RunningOperation) -> dict[str, Any] | None:
            return await work(op)

        op = await self.recorder.start(
            run,
            description=description,
            meta=meta,
            project=meta.project,
            operation_id=meta.correlation_id,
            **kw,
        )
        return {"operation": op.object}, op.seq

    async def _instance_create(self, node: str, meta: RequestMeta, body: dict[str, Any]):
        create = CreateInstance.model_validate(body)
        if (meta.project, create.name) in self.instances:
            raise BadRequest("Instance already exists")

        async def work(_op: RunningOperation) -> None:
            self.add(create.name, node, meta.project, config=create.config)

        # As LXD: `lxc init` learns what it created from the operation's resources.
        resources = {"instances": [f"/1.0/instances/{create.name}"]}
        return await self._operation(meta, "Creating instance", work, resources=resources)

    async def _instance_update(self, node: str, meta: RequestMeta, body: dict[str, Any]):
        update = UpdateInstance.model_validate(body)
        obj, _ = self._find(meta, update.name)
        if meta.if_match and meta.if_match != etag_of(obj):
            raise PreconditionFailed("ETag doesn't match")

        async def work(_op: RunningOperation) -> None:
            obj.update(update.model_dump(include=set(update.fields)))
            obj["expanded_config"] = dict(obj["config"])

        return await self._operation(meta, "Updating instance", work)

    async def _instance_patch(self, node: str, meta: RequestMeta, body: dict[str, Any]):
        update = UpdateInstance.model_validate(body)
        obj, _ = self._find(meta, update.name)
        if meta.if_match and meta.if_match != etag_of(obj):
            raise PreconditionFailed("ETag doesn't match")
        if "config" in update.fields:
            obj["config"] = {**obj["config"], **update.config}
            obj["expanded_config"] = dict(obj["config"])
        return None, 0

    async def _instance_rename(self, node: str, meta: RequestMeta, body: dict[str, Any]):
        rename = RenameInstance.model_validate(body)
        obj, where = self._find(meta, rename.name)

        async def work(_op: RunningOperation) -> None:
            del self.instances[(meta.project, rename.name)]
            obj["name"] = rename.new_name
            self.instances[(meta.project, rename.new_name)] = (obj, where)

        return await self._operation(meta, "Renaming instance", work)

    async def _instance_delete(self, node: str, meta: RequestMeta, body: dict[str, Any]):
        self._find(meta, body["name"])

        async def work(_op: RunningOperation) -> None:
            del self.instances[(meta.project, body["name"])]

        return await self._operation(meta, "Deleting instance", work)

    async def _instance_state(self, node: str, meta: RequestMeta, body: dict[str, Any]):
        obj, _ = self._find(meta, body["name"])
        return {"status": obj["status"], "status_code": obj["status_code"], "pid": 42}, 0

    async def _instance_state_put(self, node: str, meta: RequestMeta, body: dict[str, Any]):
        change = StateChange.model_validate(body)
        obj, _ = self._find(meta, change.name)

        async def work(_op: RunningOperation) -> None:
            running = change.action in ("start", "restart", "unfreeze")
            obj["status"], obj["status_code"] = ("Running", 103) if running else ("Stopped", 102)

        return await self._operation(meta, f"{change.action.title()}ing instance", work)

    # -- files ----------------------------------------------------------------------------

    def _entries(self, path: str) -> list[str]:
        prefix = path.rstrip("/") + "/"
        return sorted(
            p[len(prefix) :]
            for p in self.files
            if p.startswith(prefix) and "/" not in p[len(prefix) :]
        )

    async def _instance_file_get(self, node: str, meta: RequestMeta, body: dict[str, Any]):
        get = FileGet.model_validate(body)
        self._find(meta, get.name)
        path = posixpath.normpath(get.path)
        entry = self.files.get(path)
        if entry is None:
            raise NotFound("File not found")
        info = {"type": entry.type, "uid": entry.uid, "gid": entry.gid, "mode": entry.mode}
        if entry.type == "directory":
            info["entries"] = self._entries(path)
        elif entry.type == "symlink":
            info["target"] = entry.target
        else:
            info["size"] = len(entry.content)
            self.spawn(self._send_file(get.stream_id, entry.content))
        return info, 0

    async def _send_file(self, stream_id: str, content: bytes) -> None:
        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(content), 7000):
                yield content[start : start + 7000]

        await asyncio.sleep(0.01)  # the reply goes first
        reply = await send_stream(self.bus.nc, subjects.stream(stream_id, 0), chunks())
        reply.unwrap()

    async def _instance_file_put(self, node: str, meta: RequestMeta, body: dict[str, Any]):
        put = FilePut.model_validate(body)
        self._find(meta, put.name)
        path = posixpath.normpath(put.path)
        if posixpath.dirname(path) not in self.files:
            raise NotFound(f"Parent directory of {path} not found")
        old = self.files.get(path)
        if put.type == "directory":
            self.files[path] = Node(path, "directory", mode=put.mode or 0o755)
            return None, 0
        if put.type == "symlink":
            self.files[path] = Node(path, "symlink", target=put.target, mode=0o777)
            return None, 0
        rx = await StreamReceiver(self.bus.nc, subjects.stream(put.stream_id, 0)).start()

        async def receive() -> None:
            try:
                data = b"".join([chunk async for chunk in rx])
                if put.write == "append" and old is not None:
                    data = old.content + data
                mode = put.mode if put.mode is not None else (old.mode if old else 0o644)
                self.files[path] = Node(
                    path, "file", content=data, mode=mode, uid=put.uid or 0, gid=put.gid or 0
                )
                await rx.finish(Reply())
            finally:
                await rx.close()

        self.spawn(receive())
        return {"stream_id": put.stream_id}, 0

    async def _instance_file_delete(self, node: str, meta: RequestMeta, body: dict[str, Any]):
        delete = FileDelete.model_validate(body)
        if self.files.pop(posixpath.normpath(delete.path), None) is None:
            raise NotFound("File not found")
        return None, 0

    # -- logs -----------------------------------------------------------------------------

    async def _instance_logs(self, node: str, meta: RequestMeta, body: dict[str, Any]):
        query = LogQuery.model_validate(body)
        self._find(meta, query.name)
        if query.file is None:
            return sorted(self.logs), 0
        if query.file == "console":
            return {"content": self.console}, 0
        if query.file not in self.logs:
            raise NotFound("Log file not found")
        return {"content": self.logs[query.file]}, 0

    async def _instance_log_delete(self, node: str, meta: RequestMeta, body: dict[str, Any]):
        delete = LogDelete.model_validate(body)
        if delete.file == "console":
            self.console = b""
        elif self.logs.pop(delete.file, None) is None:
            raise NotFound("Log file not found")
        return None, 0

    # -- exec -----------------------------------------------------------------------------

    async def _instance_exec(self, node: str, meta: RequestMeta, body: dict[str, Any]):
        start = ExecStart.model_validate(body)
        self._find(meta, start.name)
        fds = {fd: uuid.uuid4().hex for fd in exec_io.fds_for(start.interactive)}
        op_id = meta.correlation_id
        assert op_id, "the gateway names each operation (the correlation id)"
        holder: dict[str, Exec] = {}
        wired = asyncio.Event()

        async def work(op: RunningOperation) -> dict[str, Any]:
            await wired.wait()
            ex = holder["exec"]
            await ex.ready.wait()
            return {"return": await self._run(ex)}

        result, seq = await self._operation(
            meta,
            "Executing command",
            work,
            op_class="websocket",
            metadata={"fds": fds, "command": start.command},
        )
        # The operation's object is now recorded; wire up its fds.
        op = self.recorder.running[op_id]
        ex = holder["exec"] = self.execs[op_id] = Exec(op=op, start=start)
        nc = self.bus.nc
        ex.stdin = await StreamReceiver(
            nc, subjects.exec_io(op_id, "0"), exec_io.STDIN_IDLE_TIMEOUT
        ).start()

        async def on_attach(msg: Any) -> None:
            attach = Attach.model_validate(codec.decode(Request, msg.data).body)
            ex.attached.add(attach.fd)
            await msg.respond(codec.encode(Reply()))
            # As LXD: every data fd must be there; the control socket is optional.
            if not start.wait_for_websocket or ex.attached >= set(fds) - {"control"}:
                ex.ready.set()

        async def on_control(msg: Any) -> None:
            control = Control.model_validate(codec.decode(Request, msg.data).body)
            ex.controls.append(control)
            if control.command == "signal":
                ex.signalled.set()
            await msg.respond(codec.encode(Reply()))

        ex.subs.append(await nc.subscribe(subjects.exec_attach(op_id), cb=on_attach))
        ex.subs.append(await nc.subscribe(subjects.exec_io(op_id, "control"), cb=on_control))
        if not start.wait_for_websocket:
            ex.ready.set()
        wired.set()
        return result, seq

    async def _run(self, ex: Exec) -> int:
        start, op_id = ex.start, ex.op.id
        assert ex.stdin is not None
        argv = start.command
        try:
            if start.interactive:
                return await self._interactive(ex)
            if argv[0] == "sleep":
                await asyncio.wait_for(ex.signalled.wait(), 30)
                signal = next(c.signal for c in ex.controls if c.command == "signal")
                await self._output(op_id, "1", b"")
                await self._output(op_id, "2", b"")
                return 128 + signal
            if argv[0] == "cat":
                stdin = b"".join([chunk async for chunk in ex.stdin])
                await ex.stdin.finish(Reply())
                await self._output(op_id, "1", stdin)
                await self._output(op_id, "2", b"")
                return 0
            if argv[0] == "err":
                await self._output(op_id, "1", b"")
                await self._output(op_id, "2", " ".join(argv[1:]).encode() + b"\n")
                return 3
            if argv[:2] == ["sh", "-c"] and argv[2].startswith("exit "):
                await self._output(op_id, "1", b"")
                await self._output(op_id, "2", b"")
                return int(argv[2].split()[1])
            words = argv[1:] if argv[0] == "echo" else argv
            await self._output(op_id, "1", " ".join(words).encode() + b"\n")
            await self._output(op_id, "2", b"")
            return 0
        finally:
            await ex.stdin.close()
            for sub in ex.subs:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()

    async def _output(self, op_id: str, fd: str, data: bytes) -> None:
        async def chunks() -> AsyncIterator[bytes]:
            if data:
                yield data

        reply = await send_stream(self.bus.nc, subjects.exec_io(op_id, fd), chunks())
        reply.unwrap()

    async def _interactive(self, ex: Exec) -> int:
        assert ex.stdin is not None
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()

        async def lines() -> AsyncIterator[bytes]:
            while (item := await queue.get()) is not None:
                yield item

        sender = asyncio.create_task(
            send_stream(self.bus.nc, subjects.exec_io(ex.op.id, "1"), lines())
        )
        await queue.put(b"$ ")
        buffer = b""
        async for chunk in ex.stdin:
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                if line.strip() == b"exit":
                    await queue.put(None)
                    await sender
                    return 0
                await queue.put(line.upper() + b"\r\n$ ")
        await queue.put(None)
        await sender
        return 1
