"""How an exec's bytes cross between the gateway and the node (``subjects.exec_io``).

The node owns the exec operation (class ``websocket``); its metadata is LXD's
``{"fds": {"0": secret, "1": secret, "2": secret, "control": secret}}`` (interactive:
``"0"`` and ``"control"`` only). A client opens one websocket per fd on a gateway, which
checks the secret against the operation and then, per fd:

- ``"0"`` (stdin; interactive: the terminal both ways): the gateway sends what the client
  writes as a :mod:`schemas.bytestream` stream on ``exec_io(op, "0")``; a client's empty
  message or closed socket ends it (end frame);
- ``"1"``, ``"2"`` (stdout, stderr; interactive: ``"1"`` carries the terminal's output to the
  client's fd ``"0"`` socket): the node sends them as byte streams on ``exec_io(op, "1"|"2")``
  to receivers the gateway started first; the stream's end is the gateway's cue to send the
  client an empty message and close;
- ``"control"``: each JSON message of the client (``window-resize``, ``signal``) is a request
  on ``exec_io(op, "control")`` with a :class:`Control` body.

When its socket for an fd is up (and, for an output fd, its receiver listens), the gateway
sends an :class:`Attach` request on ``exec_attach(op)``. The node starts the command once every
fd of the operation is attached (at once when ``wait-for-websocket`` is false), and records the
operation's end (``metadata.return`` = exit code) after its output streams have ended.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

#: The fds of an exec operation, by mode (the keys of ``metadata.fds``).
INTERACTIVE_FDS = ("0", "control")
PIPED_FDS = ("0", "1", "2", "control")
#: A stdin stream of an interactive session may be silent for a long time.
STDIN_IDLE_TIMEOUT = 7 * 24 * 3600.0


class Attach(BaseModel):
    """The gateway holds the client's websocket for ``fd``."""

    fd: str


class Control(BaseModel):
    """A message of the control websocket, as the ``lxc`` client sends it."""

    model_config = ConfigDict(extra="allow")

    command: str
    args: dict[str, str] = Field(default_factory=dict)
    signal: int = 0

    def window(self) -> tuple[int, int] | None:
        """``(width, height)`` of a ``window-resize``; None for anything else."""
        if self.command != "window-resize":
            return None
        try:
            return int(self.args.get("width", "0")), int(self.args.get("height", "0"))
        except ValueError:
            return None


def fds_for(interactive: bool) -> tuple[str, ...]:
    return INTERACTIVE_FDS if interactive else PIPED_FDS


def secrets_of(metadata: dict[str, Any] | None) -> dict[str, str]:
    """The fd -> secret table of an exec operation's metadata."""
    fds = (metadata or {}).get("fds") or {}
    return {str(k): str(v) for k, v in fds.items()} if isinstance(fds, dict) else {}
