"""Pure pieces of the instance service's host side: exec environment, paths, ids, log tails."""

from __future__ import annotations

import errno
import struct

import pytest

from schemas.errors import BadRequest, Conflict, Forbidden, NotFound, WarrenError
from schemas.storage import VolumeIdMap
from services.instance.exec_session import (
    DEFAULT_PATH,
    exec_environment,
    log_name,
    passwd_entry,
    window_bytes,
)
from services.instance.instances.log_handlers import EXEC_LOG, as_text, valid_name
from services.instance.rootfs_files import (
    OVERFLOW_ID,
    check_mode,
    clean_path,
    follow_link,
    split_path,
    symlink_display,
    to_container_id,
    to_host_id,
    translate,
)

MAP = VolumeIdMap(host_base=1_000_000, count=65_536)


def test_exec_environment_follows_lxd():
    config = {"environment.FOO": "config", "environment.PATH": "/cfg", "limits.cpu": "1"}
    env = exec_environment(config, {"BAR": "req", "PATH": "/req"}, 0)
    assert env == {
        "FOO": "config",
        "BAR": "req",
        "PATH": "/req",
        "HOME": "/root",
        "USER": "root",
        "LANG": "C.UTF-8",
    }
    env = exec_environment({}, {"HOME": "/elsewhere"}, 0)
    assert env["HOME"] == "/elsewhere" and env["PATH"] == DEFAULT_PATH
    # Not root: no HOME or USER from LXD (the session looks them up in /etc/passwd).
    assert exec_environment({}, {}, 1000) == {"PATH": DEFAULT_PATH, "LANG": "C.UTF-8"}
    assert "TERM" not in exec_environment({}, {}, 0)


def test_passwd_entry():
    text = "root:x:0:0:root:/root:/bin/sh\nbad line\nalice:x:1000:1000::/home/alice:/bin/sh\n"
    assert passwd_entry(text, 1000) == ("alice", "/home/alice")
    assert passwd_entry(text, 0) == ("root", "/root")
    assert passwd_entry(text, 5) is None


def test_log_names_and_window():
    assert log_name("abc", "1") == "exec_abc.stdout"
    assert log_name("abc", "2") == "exec_abc.stderr"
    assert EXEC_LOG.match("exec_6c0f1b9a-1c2d-4e5f-8a9b-0c1d2e3f4a5b.stdout")
    assert not EXEC_LOG.match("exec_x.log") and not EXEC_LOG.match("exec_/x.stdout")
    assert struct.unpack("HHHH", window_bytes(120, 40)) == (40, 120, 0, 0)
    assert struct.unpack("HHHH", window_bytes(10**6, -3)) == (0, 65535, 0, 0)


@pytest.mark.parametrize(
    ("given", "cleaned"),
    [
        ("/etc/passwd", "/etc/passwd"),
        ("etc/passwd", "/etc/passwd"),  # LXD takes a relative path from /
        ("//etc///passwd/", "/etc/passwd"),
        ("/", "/"),
        ("/a/../b/./c", "/a/../b/./c"),  # .. stays for the kernel to resolve in the root
    ],
)
def test_clean_path(given: str, cleaned: str):
    assert clean_path(given) == cleaned


def test_bad_paths():
    for bad in ("", "/etc/pass\0wd"):
        with pytest.raises(BadRequest):
            clean_path(bad)
    assert split_path("/etc/passwd") == ("/etc", "passwd")
    assert split_path("/top") == ("/", "top")
    for bad in ("/", "/tmp/..", "/tmp/."):
        with pytest.raises(BadRequest):
            split_path(bad)


def test_symlink_targets():
    assert symlink_display("/tmp/l", "../etc/passwd") == "/etc/passwd"
    assert symlink_display("/tmp/l", "/etc//x/") == "/etc/x"
    assert symlink_display("/a/up", "../../..") == "/"
    assert symlink_display("/bin/sh", "busybox") == "/bin/busybox"
    assert follow_link("/tmp/l", "../etc/passwd") == "/tmp/../etc/passwd"
    assert follow_link("/tmp/l", "/etc/shadow") == "/etc/shadow"


def test_ids():
    assert to_container_id(1_001_000, MAP) == 1000
    assert to_container_id(1_000_000, MAP) == 0
    assert to_container_id(0, MAP) == OVERFLOW_ID  # host root is nobody inside
    assert to_container_id(1_065_536, MAP) == OVERFLOW_ID
    assert to_container_id(0, None) == 0
    assert to_host_id(1000, MAP) == 1_001_000
    assert to_host_id(65535, MAP) == 1_065_535
    assert to_host_id(1000, None) == 1000
    for bad in (-1, 65536):
        with pytest.raises(BadRequest):
            to_host_id(bad, MAP)
    assert check_mode(None) is None and check_mode(0o4755) == 0o4755
    with pytest.raises(BadRequest):
        check_mode(0o10000)


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (errno.ENOENT, NotFound),
        (errno.ENOTDIR, NotFound),
        (errno.EISDIR, BadRequest),
        (errno.ENOTEMPTY, BadRequest),
        (errno.ELOOP, BadRequest),
        (errno.EEXIST, Conflict),
        (errno.EACCES, Forbidden),
        (errno.EROFS, Forbidden),
        (errno.ENOSPC, WarrenError),
        (errno.EIO, WarrenError),
    ],
)
def test_translate(code: int, kind: type[WarrenError]):
    error = translate(OSError(code, "x"), "/p")
    assert type(error) is kind and "/p" in error.message


def test_log_text():
    assert as_text(b"plain\n", 100) == b"plain\n"
    assert as_text(b"a\xffb", 100) == "a\ufffdb".encode()
    # A cut inside a character drops its remains; the result never exceeds the limit.
    euro = "€".encode()
    assert as_text(euro[1:] + b"x", 100, cut=True) == b"x"
    assert as_text(b"\xff" * 10, 8) == ("\ufffd" * 2).encode()
    assert valid_name("lxc.log") and not valid_name("../x") and not valid_name("..")
    assert not valid_name("") and not valid_name("a\0b")
