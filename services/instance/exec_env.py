"""What an exec runs with, as LXD sets it: the environment, the user's name and home, and
where record-output goes."""

from __future__ import annotations

from pydantic import ValidationError

from schemas.errors import BadRequest, WarrenError
from schemas.instances import ExecStart
from services.common.endpoints import validation_message
from services.instance.drivers.spec import ExecRequest
from services.instance.instances.host import HostInstance
from services.instance.rootfs_files import RootFS

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def exec_environment(
    config: dict[str, str], environment: dict[str, str], uid: int
) -> dict[str, str]:
    """LXD's exec environment: ``environment.*`` of the instance, overridden by the request's,
    then LXD's defaults for what is still unset (PATH, LANG; HOME and USER for root)."""
    env = {
        key.removeprefix("environment."): value
        for key, value in config.items()
        if key.startswith("environment.")
    }
    env.update(environment)
    env.setdefault("PATH", DEFAULT_PATH)
    if uid == 0:
        env.setdefault("HOME", "/root")
        env.setdefault("USER", "root")
    env.setdefault("LANG", "C.UTF-8")
    return env


def passwd_entry(passwd: str, uid: int) -> tuple[str, str] | None:
    """``(name, home)`` of ``uid`` in an /etc/passwd text."""
    for line in passwd.splitlines():
        fields = line.split(":")
        if len(fields) >= 6 and fields[2].strip() == str(uid):
            return fields[0], fields[5]
    return None


def log_name(operation_id: str, fd: str) -> str:
    """The record-output file of an exec's stdout (``"1"``) or stderr (``"2"``)."""
    return f"exec_{operation_id}.{'stdout' if fd == '1' else 'stderr'}"


def check_request(request: ExecStart, environment: dict[str, str]) -> None:
    """BadRequest for a command, environment or ids the driver would refuse."""
    try:
        ExecRequest(
            command=request.command,
            environment=environment,
            uid=request.user,
            gid=request.group,
        )
    except ValidationError as exc:
        raise BadRequest(validation_message(exc)) from exc


async def command_request(
    host: HostInstance, request: ExecStart, environment: dict[str, str], **fds: int | None
) -> ExecRequest:
    """The driver's request for the command on ``fds``: a user other than root gets USER and
    HOME from the container's /etc/passwd (unless the environment has them), and the working
    directory defaults to the home."""
    env = dict(environment)
    uid = request.user
    if uid != 0 and ("HOME" not in env or "USER" not in env):
        entry = await _passwd_entry(host, uid)
        if entry is not None:
            env.setdefault("USER", entry[0])
            env.setdefault("HOME", entry[1])
    cwd = request.cwd or env.get("HOME") or "/"
    try:
        return ExecRequest(
            command=request.command,
            environment=env,
            cwd=cwd,
            uid=uid,
            gid=request.group,
            **fds,
        )
    except ValidationError as exc:
        raise BadRequest(validation_message(exc)) from exc


async def _passwd_entry(host: HostInstance, uid: int) -> tuple[str, str] | None:
    try:
        text = await RootFS(host.rootfs, host.idmap).read_bytes("/etc/passwd")
    except WarrenError:
        return None
    return passwd_entry(text.decode("utf-8", "replace"), uid)
