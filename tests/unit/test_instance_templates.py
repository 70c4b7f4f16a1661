"""LXD image templates: rendering (context, pongo2 syntax, sandbox), triggers, and writing into
a root filesystem (create_only, owners, paths kept inside the root)."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from schemas import events
from schemas.errors import WarrenError
from schemas.storage import ImageTemplate, ImageTemplates, VolumeIdMap
from services.instance import template_render as tr
from services.instance.instances import aggregate as agg
from services.instance.instances.config import APPLY_TEMPLATE, privileged
from services.instance.instances.state import InstanceState, expand
from services.instance.instances.templates import (
    TemplateRenderer,
    jobs,
    target_path,
    triggers_at_start,
)
from services.storage.pools.image_templates import read_templates

FP = "ab" * 32
MAP = VolumeIdMap(host_base=1_000_000, count=65_536)
INSTANCE = {
    "name": "c1",
    "type": "container",
    "architecture": "x86_64",
    "privileged": "false",
    "ephemeral": "false",
}


def ctx(**over: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "trigger": "create",
        "path": "/etc/hostname",
        "instance": INSTANCE,
        "config": {"user.x": "value\r\n", "limits.cpu": "1"},
        "devices": {"eth0": {"type": "nic", "hwaddr": "00:16:3e:00:00:01"}},
        "properties": {"default": "#cloud-config\n{}"},
    }
    return tr.context(**{**args, **over})


# -- rendering ----------------------------------------------------------------------------


def test_context_as_lxd_gives_it():
    text = (
        "{{ instance.name }} {{ container.name }} {{ instance.architecture }} "
        "{{ instance.privileged }} {{ instance.ephemeral }} {{ instance.type }}\n"
        "{{ trigger }} {{ path }} {{ config['limits.cpu'] }} {{ devices.eth0.hwaddr }}\n"
        '{{ config_get("user.x", "none") }}|{{ config_get("user.y", "none") }}|'
        "{{ properties.default }}\n"
    )
    assert tr.render(text, ctx()) == (
        "c1 c1 x86_64 false false container\n"
        "create /etc/hostname 1 00:16:3e:00:00:01\n"
        "value|none|#cloud-config\n{}\n"  # config_get trims trailing newlines; the last is kept
    )


def test_pongo2_syntax_and_missing_values():
    assert tr.render('{{ nothing.deep.down }}|{{ nothing|default:"dflt" }}', ctx()) == "|dflt"
    assert tr.render("{% for x in [] %}a{% empty %}none{% endfor %}", ctx()) == "none"
    assert tr.render('{% autoescape off %}<{{ "&" }}>{% endautoescape %}', ctx()) == "<&>"
    assert tr.render("{{ 'ab'|capfirst }} {{ None|yesno:'y,n,u' }}", ctx()) == "Ab u"
    assert tr.render("{{ nosuch(1) }}|{{ a.b(2).c }}", ctx()) == "|"  # pongo2's nil
    loop = "{% for x in 'ab' %}{{ forloop.Counter }}{{ x }}{% if forloop.Last %}.{% endif %}"
    assert tr.render(loop + "{% endfor %}", ctx()) == "1a2b."
    # A real image's network-config template (cloud-init variants of images.linuxcontainers.org).
    cloud = (
        '{% if config_get("cloud-init.network-config", "") == "" %}'
        '{% if config_get("user.network-config", "") == "" %}{{ properties.default | safe }}'
        '{% else %}{{ config_get("user.network-config", "") | safe }}{% endif %}'
        '{% else %}{{ config_get("cloud-init.network-config", "") | safe }}{% endif %}'
    )
    assert tr.render(cloud, ctx()) == "#cloud-config\n{}"


def test_sandbox_and_failures():
    # Unsafe attributes are nothing (and so is calling them).
    assert tr.render("{{ ''.__class__.__mro__[1].__subclasses__() }}", ctx()) == ""
    assert tr.render("{{ config_get.__globals__ }}", ctx()) == ""
    for bad, says in (
        ("{{ ", "line 1"),
        ("{{ 1/0 }}", "ZeroDivisionError"),
        ("{{ x|nosuch }}", "nosuch"),
        ("{% include '/etc/passwd' %}", "not allowed (sandbox restriction active)"),
        ("{% import 'x' as y %}", "not allowed"),
        ('{{ config_get("user.x") }}', "TypeError"),  # pongo2 wants both arguments too
    ):
        with pytest.raises(tr.TemplateFailure) as info:
            tr.render(bad, ctx())
        assert says in info.value.detail


# -- triggers -----------------------------------------------------------------------------


def templates(**entries: ImageTemplate) -> ImageTemplates:
    return ImageTemplates(templates={f"/{k.replace('_', '/')}": v for k, v in entries.items()})


def test_triggers_and_jobs():
    assert triggers_at_start({}) == ["start"]
    assert triggers_at_start({APPLY_TEMPLATE: "create"}) == ["create", "start"]
    assert triggers_at_start({APPLY_TEMPLATE: "rename"}) == ["rename", "start"]
    tpl = templates(
        etc_hostname=ImageTemplate(when=["create", "copy", "rename"], template="h.tpl"),
        etc_hosts=ImageTemplate(when=["create", "start"], template="hosts.tpl"),
        etc_motd=ImageTemplate(when=["copy"], template="m.tpl"),
    )
    todo = [(j.trigger, j.path) for j in jobs(tpl, ["create", "start"])]
    assert todo == [("create", "/etc/hostname"), ("create", "/etc/hosts"), ("start", "/etc/hosts")]
    assert [j.path for j in jobs(tpl, ["start"])] == ["/etc/hosts"]


def test_paths_leaving_the_root_are_refused():
    assert target_path("/etc//hostname", "t") == "/etc/hostname"
    for bad in ("/../etc/passwd", "/etc/../../x", "/", "", "/a\0b"):
        with pytest.raises(WarrenError, match="not a file inside the instance"):
            target_path(bad, "t")


def new_state(**over: Any) -> InstanceState:
    state = InstanceState(
        id="11111111-2222-3333-4444-555555555555",
        project_id="p",
        name="c1",
        node="n",
        host_name="w-1",
        pool="default",
        image=FP,
        config={APPLY_TEMPLATE: "create", "user.x": "hello"},
    )
    return replace(state, **over)


def test_rename_defers_unless_pending_and_start_consumes():
    created = new_state()
    renamed = agg.from_event(agg.decide(created, agg.Rename("default", "c2"))[-1])
    assert renamed.config[APPLY_TEMPLATE] == "create"  # pending create kept, as LXD does
    started = agg.from_event(
        agg.decide(
            renamed,
            agg.RecordPower("default", events.INSTANCE_STARTED, unset=(APPLY_TEMPLATE,)),
        )[-1]
    )
    assert APPLY_TEMPLATE not in started.config and started.config["user.x"] == "hello"
    again = agg.from_event(agg.decide(started, agg.Rename("default", "c3"))[-1])
    assert again.config[APPLY_TEMPLATE] == "rename"


# -- writing into a root filesystem ---------------------------------------------------------


class _Instances:
    """What TemplateRenderer uses of Instances."""

    node = "n"

    class projection:  # the log knows nothing newer than what the test passes
        class instances:
            by_id: dict[str, InstanceState] = {}

    def expanded(self, state: InstanceState) -> Any:
        return expand(state.config, state.devices, [])

    def idmap(self, expanded: Any) -> VolumeIdMap | None:
        return None if privileged(expanded.config) else MAP


def renderer(tpl: ImageTemplates) -> TemplateRenderer:
    r = TemplateRenderer(_Instances())  # type: ignore[arg-type]
    r._images[FP] = tpl  # as if storage had answered
    return r


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    if os.geteuid() != 0:
        pytest.skip("owners need root")
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc/hostname").write_text("image\n")
    os.chown(root / "etc/hostname", MAP.host_base + 5, MAP.host_base + 5)
    os.chmod(root / "etc/hostname", 0o600)
    (root / "etc/keep").write_text("mine\n")
    return root


IMAGE = ImageTemplates(
    templates={
        "/etc/hostname": ImageTemplate(when=["create", "rename"], template="hostname.tpl"),
        "/etc/keep": ImageTemplate(when=["create"], template="x.tpl", create_only=True),
        "/var/lib/x/seed": ImageTemplate(
            when=["create"], template="x.tpl", create_only=True, properties={"p": "prop"}
        ),
        "/etc/every-start": ImageTemplate(when=["start"], template="start.tpl"),
    },
    files={
        "hostname.tpl": "{{ instance.name }}\n",
        "x.tpl": '{{ config_get("user.x", "none") }} {{ properties.p }}',
        "start.tpl": "{{ trigger }} {{ instance.privileged }}\n",
    },
)


async def test_first_start_renders_create_and_start(rootfs: Path):
    await renderer(IMAGE).apply_at_start(new_state(), rootfs)
    hostname = rootfs / "etc/hostname"
    assert hostname.read_text() == "c1\n"
    st = hostname.stat()  # an existing file keeps its owner and mode
    assert (st.st_uid, st.st_mode & 0o777) == (MAP.host_base + 5, 0o600)
    assert (rootfs / "etc/keep").read_text() == "mine\n"  # create_only: left alone
    seed = rootfs / "var/lib/x/seed"
    assert seed.read_text() == "hello prop"
    for made in (seed, seed.parent, seed.parent.parent):  # the container's root owns them
        assert (made.stat().st_uid, made.stat().st_gid) == (MAP.host_base, MAP.host_base)
    assert seed.stat().st_mode & 0o777 == 0o644
    assert seed.parent.stat().st_mode & 0o777 == 0o755
    assert (rootfs / "etc/every-start").read_text() == "start false\n"


async def test_later_starts_render_start_only(rootfs: Path):
    state = new_state(name="c2", config={"security.privileged": "true"})
    await renderer(IMAGE).apply_at_start(state, rootfs)
    assert (rootfs / "etc/hostname").read_text() == "image\n"
    assert not (rootfs / "var/lib/x").exists()
    made = rootfs / "etc/every-start"
    assert made.read_text() == "start true\n"
    assert made.stat().st_uid == 0  # privileged: container root is host root
    await renderer(IMAGE).apply_at_start(replace(state, config={APPLY_TEMPLATE: "rename"}), rootfs)
    assert (rootfs / "etc/hostname").read_text() == "c2\n"


async def test_symlinks_stay_inside_the_root(rootfs: Path, tmp_path: Path):
    outside = tmp_path / "outside"
    outside.write_text("host file\n")
    (rootfs / "etc/hostname").unlink()
    os.symlink("../../../outside", rootfs / "etc/hostname")
    await renderer(IMAGE).apply_at_start(new_state(), rootfs)
    assert outside.read_text() == "host file\n"
    assert (rootfs / "outside").read_text() == "c1\n"  # where the link leads inside the root


async def test_failures_name_the_template(rootfs: Path):
    cases = (
        ({"/etc/hostname": "bad.tpl"}, {"bad.tpl": "{{ oops"}, 'render template "bad.tpl"'),
        ({"/etc/hostname": "gone.tpl"}, {}, 'read template file "gone.tpl"'),
        ({"/../../escape": "x.tpl"}, {"x.tpl": "x"}, 'Template "x.tpl"'),
        ({"/etc": "x.tpl"}, {"x.tpl": "x"}, 'write template "x.tpl"'),
    )
    for targets, files, says in cases:
        tpl = ImageTemplates(
            templates={p: ImageTemplate(when=["create"], template=t) for p, t in targets.items()},
            files=files,
        )
        with pytest.raises(WarrenError, match=says):
            await renderer(tpl).apply_at_start(new_state(), rootfs)
    assert (rootfs / "etc/hostname").read_text() == "image\n"
    assert not (rootfs.parent / "escape").exists()


# -- what the storage service answers -------------------------------------------------------


def test_read_templates_of_an_image_volume(tmp_path: Path):
    volume = tmp_path / FP
    assert read_templates(volume) == ImageTemplates()  # no metadata.yaml: nothing to render
    (volume / "templates").mkdir(parents=True)
    (volume / "metadata.yaml").write_text(
        "architecture: x86_64\ncreation_date: 1\ntemplates:\n"
        "  /etc/hostname: {when: [create], template: hostname.tpl}\n"
        "  /etc/a: {when: [start], template: sub/a.tpl, create_only: true,"
        " properties: {k: v}}\n"
        "  /etc/b: {when: [start], template: link.tpl}\n"
        "  /etc/c: {when: [start], template: missing.tpl}\n"
    )
    (volume / "templates/hostname.tpl").write_text("{{ instance.name }}\n")
    (volume / "templates/sub").mkdir()
    (volume / "templates/sub/a.tpl").write_text("a")
    (tmp_path / "secret").write_text("secret")
    os.symlink(tmp_path / "secret", volume / "templates/link.tpl")
    got = read_templates(volume)
    assert sorted(got.templates) == ["/etc/a", "/etc/b", "/etc/c", "/etc/hostname"]
    assert got.templates["/etc/a"] == ImageTemplate(
        when=["start"], template="sub/a.tpl", create_only=True, properties={"k": "v"}
    )
    # Symlinks are not followed; a missing file is left out (rendering it fails, naming it).
    assert got.files == {"hostname.tpl": "{{ instance.name }}\n", "sub/a.tpl": "a"}
