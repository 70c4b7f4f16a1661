"""The LXC instance driver: system containers through python-lxc.

Each container lives under a Warren-owned lxcpath (``<root>/<host name>/config``) with a config
file Warren writes itself (lxc_config). Every python-lxc call blocks, so each operation runs as
one synchronous function in a thread; python-lxc reports failure as False, which becomes a
DriverError carrying the tail of the container's LXC log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import lxc

from schemas.errors import BadRequest, Conflict, NotFound, WarrenError
from services.instance.drivers import lxc_config, lxc_host, lxc_net
from services.instance.drivers.base import DriverCapabilities, ExecProcess, InstanceDriver
from services.instance.drivers.errors import DriverError
from services.instance.drivers.lxc_attach import AttachHelper, AttachHelperGone, AttachRefused
from services.instance.drivers.lxc_attach_server import exec_when_opened
from services.instance.drivers.lxc_process import LxcProcess
from services.instance.drivers.spec import (
    HOST_NAME_RE,
    ExecRequest,
    InstanceSpec,
    InstanceState,
    Limits,
    NetworkInterface,
    NicSpec,
    Status,
)

T = TypeVar("T")
log = logging.getLogger(__name__)

_STATUS = {
    "RUNNING": Status.RUNNING,
    "STARTING": Status.RUNNING,
    "STOPPING": Status.RUNNING,
    "THAWED": Status.RUNNING,
    "FROZEN": Status.FROZEN,
    "FREEZING": Status.FROZEN,
}
_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_STOP_WAIT_S = 30  # seconds to wait for STOPPED after a kill (generous: loaded machines)


class LxcDriver(InstanceDriver):
    """System containers with LXC (privileged, or unprivileged in a user namespace)."""

    name: ClassVar[str] = "lxc"
    capabilities: ClassVar[DriverCapabilities] = DriverCapabilities(
        kind="container", live_limits=True, freeze=True, checkpoint=False, exec=True
    )

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self._memsw = lxc_host.memsw_available()
        self._all_cpus = lxc_host.all_cpus()
        # One lock per instance serializes state changes with the start of an exec, so that a
        # freeze cannot slip between exec's state check and its attach (which would hang).
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._attacher = AttachHelper()

    # -- the interface: each call runs its synchronous twin in a thread ---------------------

    async def create(self, spec: InstanceSpec) -> None:
        await self._run(spec.name, "creating", self._write, spec, True)

    async def update(self, spec: InstanceSpec) -> None:
        await self._run(spec.name, "updating", self._write, spec, False)

    async def start(self, name: str) -> InstanceState:
        return await self._run(name, "starting", self._start, name)

    async def stop(self, name: str, *, timeout: float = 30.0, force: bool = False) -> None:
        await self._run(name, "stopping", self._stop, name, timeout, force)

    async def freeze(self, name: str) -> None:
        await self._run(name, "freezing", self._freeze, name)

    async def unfreeze(self, name: str) -> None:
        await self._run(name, "thawing", self._unfreeze, name)

    async def state(self, name: str) -> InstanceState:
        return await self._run(name, "reading the state of", self._state, name, True, lock=False)

    async def set_limits(self, name: str, limits: Limits) -> None:
        await self._run(name, "setting limits of", self._set_limits, name, limits)

    async def set_nics(self, name: str, nics: tuple[NicSpec, ...]) -> None:
        await self._run(name, "changing the nics of", self._set_nics, name, nics)

    async def spawn(self, name: str, request: ExecRequest) -> ExecProcess:
        # _spawn takes the lock itself, only around the attach (not for the command's life).
        pid, helped = await self._run(name, "exec in", self._spawn, name, request, lock=False)
        return LxcProcess(pid, name, self._attacher.exited if helped else None)

    async def delete(self, name: str) -> None:
        await self._run(name, "deleting", self._delete, name)

    async def log_files(self, name: str) -> dict[str, Path]:
        return await self._run(name, "listing logs of", self._log_files, name, lock=False)

    async def exists(self, name: str) -> bool:
        return await self._run(name, "looking up", self._exists, name, lock=False)

    async def list(self) -> list[str]:
        return await self._run("", "listing", self._list, lock=False)

    async def status(self, name: str) -> Status:
        return await self._run(name, "reading the status of", self._status_of, name, lock=False)

    async def statuses(self) -> dict[str, Status]:
        return await self._run("", "listing the states of", self._statuses, lock=False)

    async def _run(
        self, name: str, what: str, work: Callable[..., T], *args: Any, lock: bool = True
    ) -> T:
        """Run blocking work in a thread (under the instance's lock for state changes).

        This is the driver boundary: anything but a WarrenError (an OSError, python-lxc's
        KeyError or TypeError) becomes a DriverError.
        """

        def call() -> T:
            if not lock:
                return work(*args)
            with self._locked(name):
                return work(*args)

        try:
            return await asyncio.to_thread(call)
        except WarrenError:
            raise
        except Exception as exc:
            raise DriverError(f"{what} {name or 'instances'} failed", repr(exc)) from exc

    # -- helpers ----------------------------------------------------------------------------

    def _home(self, name: str) -> Path:
        if not HOST_NAME_RE.match(name):
            raise BadRequest(f"invalid host name {name!r}")
        return lxc_config.instance_dir(self.root, name)

    def _config_path(self, name: str) -> Path:
        return self._home(name) / "config"

    def _container(self, name: str) -> lxc.Container:
        if not self._config_path(name).is_file():
            raise NotFound(f"instance {name} not found on this host")
        return lxc.Container(name, str(self.root))

    def _log_path(self, name: str) -> Path:
        default = self._home(name) / "lxc.log"
        try:
            configured = lxc.Container(name, str(self.root)).get_config_item("lxc.log.file")
        except ValueError:
            # python-lxc could not load the config just now (seen once under load while the
            # container started): the log path must not turn a start into a failure.
            return default
        return Path(configured or default)

    def _exists(self, name: str) -> bool:
        return self._config_path(name).is_file()

    def _log_files(self, name: str) -> dict[str, Path]:
        container = self._container(name)
        files = {
            "lxc.log": container.get_config_item("lxc.log.file"),
            "console.log": container.get_config_item("lxc.console.logfile"),
        }
        return {key: Path(value) for key, value in files.items() if value}

    def _fail(self, name: str, what: str, since: int = 0) -> DriverError:
        detail = lxc_host.log_tail(self._log_path(name), since)
        return DriverError(f"{what} {name} failed", detail)

    @contextlib.contextmanager
    def _locked(self, name: str) -> Iterator[None]:
        with self._locks_guard:
            lock = self._locks.setdefault(name, threading.Lock())
        with lock:
            yield

    @staticmethod
    def _status(container: lxc.Container) -> Status:
        return _STATUS.get(container.state, Status.STOPPED)

    # -- synchronous work (in a thread) -----------------------------------------------------

    def _write(self, spec: InstanceSpec, new: bool) -> None:
        home = self._home(spec.name)
        config = home / "config"
        if not spec.rootfs.is_dir():
            raise BadRequest(f"rootfs {spec.rootfs} is not a directory")
        if spec.rootfs.resolve().is_relative_to(home.resolve()):
            # Deleting the instance removes its directory; the rootfs belongs to storage.
            raise BadRequest("the rootfs must not live inside the instance directory")
        if new and config.exists():
            raise Conflict(f"instance {spec.name} already exists on this host")
        if not new and not config.exists():
            raise NotFound(f"instance {spec.name} not found on this host")
        text = lxc_config.render_config(
            spec,
            self.root,
            available_cpus=lxc_config.online_cpus(),
            all_cpus=self._all_cpus,
            memsw=self._memsw,
        )
        made = not home.exists()  # a directory without config is a crash leftover: reuse it
        home.mkdir(parents=True, exist_ok=True, mode=0o750)
        tmp = home / "config.tmp"
        try:
            tmp.write_text(text)
            os.replace(tmp, config)  # atomic: a config file is either whole or absent
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            if made and new:
                shutil.rmtree(home, ignore_errors=True)
            raise DriverError(f"writing the config of {spec.name} failed", str(exc)) from exc

    def _start(self, name: str) -> InstanceState:
        container = self._container(name)
        if self._status(container) is not Status.STOPPED:
            raise Conflict(f"instance {name} is already running")
        # A leftover monitor cgroup would make LXC pick a suffixed name ("-1"): clear it first.
        lxc_host.remove_cgroups(name, wait=0)
        log_offset = lxc_host.log_size(self._log_path(name))
        # lxc-start rather than container.start(): python-lxc's daemonized start forks this
        # (large) Python process into the container's monitor, ~12 MB of PSS per container;
        # a monitor forked from lxc-start costs ~1 MB.
        started = lxc_host.lxc_start(self.root, name)
        if not started:
            raise self._fail(name, "starting", log_offset)
        return self._state(name, False)

    def _stop(self, name: str, timeout: float, force: bool) -> None:
        container = self._container(name)
        status = self._status(container)
        if status is Status.STOPPED:
            return
        if status is Status.FROZEN and not container.unfreeze():
            # Frozen tasks cannot act on the halt signal (nor reliably die) until thawed.
            raise self._fail(name, "thawing")
        stopped = False
        if not force and timeout > 0:
            # shutdown(0) would signal without waiting: no time to shut down means kill now.
            stopped = container.shutdown(max(1, round(timeout)))
        if not stopped and not container.stop():
            if self._status(container) is not Status.STOPPED:
                raise self._fail(name, "stopping")
        if not container.wait("STOPPED", _STOP_WAIT_S):
            raise self._fail(name, "stopping")
        lxc_host.remove_cgroups(name, wait=2.0)

    def _freeze(self, name: str) -> None:
        container = self._container(name)
        status = self._status(container)
        if status is Status.FROZEN:
            return
        if status is not Status.RUNNING:
            raise Conflict(f"instance {name} is not running")
        if not container.freeze():
            raise self._fail(name, "freezing")

    def _unfreeze(self, name: str) -> None:
        container = self._container(name)
        status = self._status(container)
        if status is Status.RUNNING:
            return
        if status is not Status.FROZEN:
            raise Conflict(f"instance {name} is not running")
        if not container.unfreeze():
            raise self._fail(name, "thawing")

    def _status_of(self, name: str) -> Status:
        return self._status(self._container(name))

    def _statuses(self) -> dict[str, Status]:
        # Active containers come from their monitors' sockets in one pass; whether each is
        # frozen from its freezer cgroup file (asking each monitor costs ~0.15 ms apiece).
        active = lxc.list_containers(active=True, defined=False, config_path=str(self.root))
        found: dict[str, Status] = {}
        for name in active:
            frozen = lxc_host.freezer_state(name)
            if frozen is not None:
                found[name] = Status.FROZEN if frozen else Status.RUNNING
                continue
            # No freezer file where LXC normally puts it (a suffixed cgroup name, or one
            # stopping right now): ask its monitor, unless it is being deleted meanwhile.
            with contextlib.suppress(NotFound):
                found[name] = self._status(self._container(name))
        return {name: status for name, status in found.items() if status is not Status.STOPPED}

    def _state(self, name: str, network: bool) -> InstanceState:
        container = self._container(name)
        status = self._status(container)
        if status is Status.STOPPED:
            return InstanceState(status=status)

        pid = container.init_pid
        cgroups = lxc_host.process_cgroups(pid)

        def number(controller: str, key: str) -> int:
            path = cgroups.get(controller)
            return lxc_host.read_number(path / key) if path is not None else 0

        return InstanceState(
            status=status,
            pid=pid,
            processes=number("pids", "pids.current"),
            memory_usage=number("memory", "memory.usage_in_bytes"),
            memory_usage_peak=number("memory", "memory.max_usage_in_bytes"),
            cpu_usage_ns=number("cpuacct", "cpuacct.usage"),
            network=self._interfaces(pid) if network else {},
        )

    @staticmethod
    def _interfaces(pid: int) -> dict[str, NetworkInterface]:
        # The container may die between the status and the read (its namespace goes with
        # init): then it has no interfaces to show, which is no failure of the state.
        if pid <= 0:
            return {}
        try:
            return lxc_net.interfaces(pid)
        except (OSError, lxc_net.NetlinkError):
            return {}

    def _set_nics(self, name: str, nics: tuple[NicSpec, ...]) -> None:
        container = self._container(name)
        if self._status(container) is Status.STOPPED:
            return  # the next start takes them from the definition
        live = lxc_config.nics_of(self._config_path(name).read_text())
        lxc_net.sync(container.init_pid, live, nics)

    def _set_limits(self, name: str, limits: Limits) -> None:
        container = self._container(name)
        if self._status(container) is Status.STOPPED:
            raise Conflict(f"instance {name} is not running")
        items = lxc_config.limit_items(
            limits,
            available_cpus=lxc_config.online_cpus(),
            all_cpus=self._all_cpus,
            memsw=self._memsw,
        )
        memory = dict(items).get("memory.limit_in_bytes")
        current = container.get_cgroup_item("memory.limit_in_bytes")
        if memory is not None and current and self._memsw:
            # memsw must stay >= the memory limit at every step: when raising, raise memsw
            # first; when lowering, lower the memory limit first (an unchanged cap is a raise).
            raising = memory == "-1" or int(memory) >= int(current)
            first = "memory.memsw.limit_in_bytes" if raising else "memory.limit_in_bytes"
            items.sort(key=lambda item: item[0] != first)
        for key, value in items:
            if not container.set_cgroup_item(key, value):
                raise DriverError(f"setting {key}={value} on {name} failed")

    def _spawn(self, name: str, request: ExecRequest) -> tuple[int, bool]:
        """Attach the command; its host pid, and whether the attach helper did it (then the
        helper, its parent, reports its end)."""
        env = {"PATH": _DEFAULT_PATH, "HOME": "/root" if request.uid == 0 else "/"}
        env.update(request.environment)
        with contextlib.ExitStack() as stack:
            fds = []
            for fd in (request.stdin, request.stdout, request.stderr):
                if fd is None:
                    devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
                    stack.callback(os.close, devnull)
                    fd = devnull
                fds.append(fd)
            if request.gate is not None:
                fds.append(request.gate)
            # Under the instance lock, so that no freeze slips between the check and the attach.
            # A pty given as stdin becomes the command's controlling terminal (LXC's attach
            # does that for a tty stdin), so interactive shells get job control and SIGWINCH.
            with self._locked(name):
                if not self._config_path(name).is_file():
                    raise NotFound(f"instance {name} not found on this host")
                wanted = {
                    "lxcpath": str(self.root),
                    "name": name,
                    "command": request.command,
                    "env": env,
                    "cwd": request.cwd,
                    "uid": request.uid,
                    "gid": request.gid,
                }
                try:
                    # The helper checks the state itself: no python-lxc call here, which
                    # would hold the service's GIL while it talks to the monitor.
                    return self._attacher.attach(wanted, tuple(fds)), True
                except AttachRefused as exc:
                    raise BadRequest(f"instance {name} is {exc}") from None
                except AttachHelperGone as exc:
                    log.warning("exec in %s without the attach helper: %s", name, exc)
                except RuntimeError:
                    raise self._fail(name, "exec in") from None
                container = self._container(name)
                status = self._status(container)
                # Attaching to a frozen container hangs until it is thawed: refuse instead.
                if status is Status.FROZEN:
                    raise BadRequest(f"instance {name} is frozen")
                if status is not Status.RUNNING:
                    raise BadRequest(f"instance {name} is not running")
                run, argument = (
                    (exec_when_opened, ((), request.gate, request.command))
                    if request.gate is not None
                    else (lxc.attach_run_command, request.command)
                )
                pid = container.attach(
                    run,
                    argument,
                    env_policy=lxc.LXC_ATTACH_CLEAR_ENV,
                    extra_env_vars=[f"{key}={value}" for key, value in env.items()],
                    initial_cwd=request.cwd,
                    uid=request.uid,
                    gid=request.gid,
                    stdin=fds[0],
                    stdout=fds[1],
                    stderr=fds[2],
                )
        if pid <= 0:
            raise self._fail(name, "exec in")
        return pid, False

    def _delete(self, name: str) -> None:
        home = self._home(name)
        config = home / "config"
        if not home.exists():
            raise NotFound(f"instance {name} not found on this host")
        if config.exists():
            container = lxc.Container(name, str(self.root))
            if self._status(container) is not Status.STOPPED:
                raise Conflict(f"instance {name} is running")
            rootfs = lxc_config.rootfs_of(config.read_text())
            if rootfs is not None and rootfs.resolve().is_relative_to(home.resolve()):
                raise DriverError(f"refusing to delete {name}: its rootfs lies inside {home}")
        # Not container.destroy(): it deletes a dir: rootfs even outside the container directory.
        shutil.rmtree(home)
        with self._locks_guard:
            self._locks.pop(name, None)
        left = lxc_host.remove_cgroups(name)
        if left:
            raise DriverError(f"cgroups of {name} are still busy", ", ".join(map(str, left)))

    def _list(self) -> list[str]:
        if not self.root.is_dir():
            return []
        # Directories without a config file are included: half-created instances (a crash
        # between mkdir and the config's rename) that reconciliation should delete.
        return sorted(
            entry.name
            for entry in self.root.iterdir()
            if HOST_NAME_RE.match(entry.name) and entry.is_dir()
        )
