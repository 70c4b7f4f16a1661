"""Image templates through the real ``lxc`` client: an image whose metadata.yaml templates
/etc/hostname (create, rename), a custom file with ``config_get`` (create only) and a file
rendered at every start, launched, renamed and started again; a template that fails to
render fails the start, and its trigger stays pending.

As in LXD, templates are rendered when the instance starts: ``lxc init`` leaves
``volatile.apply_template: create``, the first start renders and drops it, a rename sets it to
``rename`` for the next start. Run with ``WARREN_COMPAT_LXD_SOCKET=<lxd unix.socket>`` to
check the expectations against a real LXD.
"""

from __future__ import annotations

import io
import shutil
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from _helpers import LxdReference, lxc_ok, unique

from services.image.builders.busybox import build_busybox

pytestmark = [
    pytest.mark.skipif(shutil.which("lxc") is None, reason="the lxc client is missing"),
    pytest.mark.skipif(not Path("/bin/busybox").exists(), reason="busybox-static not installed"),
    pytest.mark.timeout(180),
]

TEMPLATES = {
    "/etc/hostname": {"when": ["create", "copy", "rename"], "template": "hostname.tpl"},
    "/etc/custom.conf": {"when": ["create"], "template": "custom.tpl"},
    "/var/lib/tpl/started": {
        "when": ["start"],
        "template": "started.tpl",
        "properties": {"greeting": "hi"},
    },
    "/etc/fail": {"when": ["create"], "template": "fail.tpl"},
}
FILES = {
    "hostname.tpl": "{{ instance.name }}\n",
    "custom.tpl": 'x={{ config_get("user.x", "none") }}\n',
    "started.tpl": (
        '{{ trigger }} {{ container.name }} {{ config_get("user.x", "none") }} '
        "{{ properties.greeting }} {{ instance.privileged }}\n"
    ),
    # Renders nothing unless user.fail=yes, then divides by zero.
    "fail.tpl": '{% if config_get("user.fail", "") == "yes" %}{{ 1/0 }}{% endif %}',
}


def _member(name: str, data: bytes | None = None) -> tuple[tarfile.TarInfo, io.BytesIO | None]:
    info = tarfile.TarInfo(name)
    if data is None:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        return info, None
    info.size, info.mode = len(data), 0o644
    return info, io.BytesIO(data)


def templated_image(busybox: Path, dest: Path) -> Path:
    """The busybox image with this suite's metadata.yaml and templates/ instead of its own."""
    with tarfile.open(busybox) as source:
        meta = yaml.safe_load(source.extractfile("metadata.yaml").read())  # type: ignore[union-attr]
        meta["creation_date"] = int(time.time())
        meta["properties"]["description"] = unique("busybox with templates")  # a new fingerprint
        meta["templates"] = TEMPLATES
        with tarfile.open(dest, "w:gz") as out:
            out.addfile(*_member("metadata.yaml", yaml.safe_dump(meta).encode()))
            out.addfile(*_member("templates"))
            for name, text in FILES.items():
                out.addfile(*_member(f"templates/{name}", text.encode()))
            for member in source:
                name = member.name.removeprefix("./")
                if name == "metadata.yaml" or name.split("/")[0] == "templates":
                    continue
                out.addfile(member, source.extractfile(member) if member.isfile() else None)
    return dest


@pytest.fixture(scope="module")
def image(target: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    work = tmp_path_factory.mktemp("templated")
    path = templated_image(Path(build_busybox(work).path), work / "templated.tar.gz")
    alias = unique("templated")
    lxc_ok(target, "image", "import", str(path), "--alias", alias)
    yield alias
    target.lxc("image", "delete", alias)


@pytest.fixture
def names(target: Any) -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    for name in made:
        target.lxc("delete", "--force", name)


def config(target: Any, name: str) -> dict[str, str]:
    return yaml.safe_load(lxc_ok(target, "config", "show", name))["config"]


def cat(target: Any, name: str, path: str) -> str:
    return lxc_ok(target, "exec", name, "--", "cat", path)


def test_templates_render_at_first_start_and_after_rename(
    target: Any, image: str, names: list[str]
) -> None:
    name, renamed = unique("tpl"), unique("tpl")
    names += [name, renamed]
    lxc_ok(target, "init", image, name, "-c", "user.x=hello")
    assert config(target, name)["volatile.apply_template"] == "create"
    lxc_ok(target, "start", name)
    assert cat(target, name, "/etc/hostname") == f"{name}\n"
    assert cat(target, name, "/etc/custom.conf") == "x=hello\n"
    assert cat(target, name, "/var/lib/tpl/started") == f"start {name} hello hi false\n"
    assert cat(target, name, "/etc/fail") == ""
    # Owned by the container's root (mapped to a high host id outside), 0644; parents 0755.
    owners = lxc_ok(
        target, "exec", name, "--", "stat", "-c", "%u:%g:%a", "/etc/custom.conf", "/var/lib/tpl"
    )
    assert owners.split() == ["0:0:644", "0:0:755"]
    assert "volatile.apply_template" not in config(target, name)

    lxc_ok(target, "stop", "--force", name)
    lxc_ok(target, "rename", name, renamed)
    assert config(target, renamed)["volatile.apply_template"] == "rename"
    lxc_ok(target, "config", "set", renamed, "user.x", "changed")
    lxc_ok(target, "start", renamed)
    assert cat(target, renamed, "/etc/hostname") == f"{renamed}\n"  # the rename trigger
    assert cat(target, renamed, "/etc/custom.conf") == "x=hello\n"  # create only: as it was
    assert cat(target, renamed, "/var/lib/tpl/started") == f"start {renamed} changed hi false\n"
    assert "volatile.apply_template" not in config(target, renamed)


def test_a_template_that_fails_fails_the_start(target: Any, image: str, names: list[str]) -> None:
    name = unique("tplfail")
    names.append(name)
    lxc_ok(target, "init", image, name, "-c", "user.fail=yes")  # the create does not fail
    failed = target.lxc("start", name)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    if not isinstance(target, LxdReference):  # LXD puts the template's error in its log
        assert 'Failed to render template "fail.tpl" for /etc/fail' in failed.stderr
    assert config(target, name)["volatile.apply_template"] == "create"  # still to render
    lxc_ok(target, "config", "unset", name, "user.fail")
    lxc_ok(target, "start", name)
    assert cat(target, name, "/etc/hostname") == f"{name}\n"
    assert "volatile.apply_template" not in config(target, name)
