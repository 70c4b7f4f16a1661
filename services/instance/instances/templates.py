"""Image templates rendered into an instance's root filesystem, when LXD renders them.

LXD defers the ``create`` (and ``copy``) trigger to the instance's first start: creating it
sets ``volatile.apply_template`` (:data:`~services.instance.instances.config.APPLY_TEMPLATE`),
and renaming it sets the key to ``rename`` unless a trigger is pending already. Every start
renders the pending trigger's templates, then the ``start`` ones; the key goes once the start
succeeded (it is dropped by the ``instance-started`` event). A template that fails to render
fails the start with an error naming it (LXD's names only pongo2's line and column, in its
log), and the trigger stays pending for the next start. (LXD drops the key as soon as the
pending trigger's templates rendered, before the ``start`` ones: when only a ``start``
template fails, LXD's next start skips the pending trigger and Warren's renders it again.)

The templates come from this node's storage service (the image volume holds ``metadata.yaml``
and ``templates/``), asked once per image and kept: an image's content never changes under
its fingerprint. Files are written with :class:`~services.instance.rootfs_files.RootFS`, so
paths resolve inside the root filesystem (symlinks included), with the container's id map:
new files and directories belong to the container's root, 0644 and 0755; an existing file
keeps its owner and mode. A target with ``..`` is refused. Instance copies do not exist in
Warren yet, so nothing fires ``copy``.
"""

from __future__ import annotations

import asyncio
import logging
import posixpath
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from schemas import storage as storage_wire
from schemas import subjects
from schemas.errors import NotFound, WarrenError
from schemas.messages import RequestMeta
from services.instance import template_render
from services.instance.instances import config as cfg
from services.instance.instances.context import Instances
from services.instance.instances.state import Expanded, InstanceState
from services.instance.rootfs_files import RootFS

log = logging.getLogger(__name__)

START = "start"
#: Images whose templates this process keeps (each a few KiB).
_KEEP = 64
_TIMEOUT = 60.0


@dataclass(frozen=True)
class Job:
    """One template to render now: its target, its entry and the trigger firing it."""

    path: str
    entry: storage_wire.ImageTemplate
    trigger: str


def target_path(path: str, template: str) -> str:
    """The container path a template writes; ``..`` (a way out of the root) is refused."""
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if not parts or ".." in parts or "\0" in path:
        raise WarrenError(
            f'Template "{template}": target {path!r} is not a file inside the instance'
        )
    return "/" + "/".join(parts)


def jobs(templates: storage_wire.ImageTemplates, triggers: list[str]) -> list[Job]:
    """The templates each trigger fires, trigger by trigger, paths in order."""
    return [
        Job(path, entry, trigger)
        for trigger in triggers
        for path, entry in sorted(templates.templates.items())
        if trigger in entry.when
    ]


def triggers_at_start(config: dict[str, str]) -> list[str]:
    """The pending trigger (create, copy or rename), if any, then ``start``."""
    pending = config.get(cfg.APPLY_TEMPLATE, "")
    return [pending, START] if pending and pending != START else [START]


class TemplateRenderer:
    """Renders the templates of this node's instances at their start."""

    def __init__(self, instances: Instances) -> None:
        self.i = instances
        self._images: OrderedDict[str, storage_wire.ImageTemplates] = OrderedDict()

    async def image_templates(self, state: InstanceState) -> storage_wire.ImageTemplates:
        """The templates of the instance's image (none when its image volume is gone)."""
        fingerprint = state.image
        if not fingerprint:
            return storage_wire.ImageTemplates()
        known = self._images.get(fingerprint)
        if known is not None:
            self._images.move_to_end(fingerprint)
            return known
        query = storage_wire.ImageTemplatesQuery(pool=state.pool, fingerprint=fingerprint)
        subject = subjects.storage(subjects.STORAGE_IMAGE_VOLUME_TEMPLATES, self.i.node)
        try:
            result = await self.i.peers.bus.request(
                subject, query.model_dump(), RequestMeta(), timeout=_TIMEOUT
            )
        except NotFound as exc:
            log.warning("instance %s: no templates rendered: %s", state.name, exc.message)
            return storage_wire.ImageTemplates()
        templates = storage_wire.ImageTemplates.model_validate(result)
        self._images[fingerprint] = templates
        while len(self._images) > _KEEP:
            self._images.popitem(last=False)
        return templates

    async def apply_at_start(self, state: InstanceState, rootfs: Path) -> None:
        """Render what this start fires into the mounted root filesystem ``rootfs``."""
        # As the log has it now: a rename or config change may have come since the caller
        # read ``state`` (they hold the instance's lock, as this start does now).
        current = self.i.projection.instances.by_id.get(state.id)
        state = current if current is not None and not current.deleted else state
        templates = await self.image_templates(state)
        todo = jobs(templates, triggers_at_start(state.config))
        if todo:
            await self.apply(state, rootfs, templates, todo)

    async def apply(
        self,
        state: InstanceState,
        rootfs_path: Path,
        templates: storage_wire.ImageTemplates,
        todo: list[Job],
    ) -> None:
        """Render ``todo`` (in one worker thread call), then write each file in order; nothing
        is written unless all rendered. The first failure is raised, naming its template."""
        expanded = self.i.expanded(state)
        rootfs = RootFS(rootfs_path, self.i.idmap(expanded))
        instance = {
            "name": state.name,
            "type": "container",
            "architecture": state.architecture,
            "ephemeral": str(state.ephemeral).lower(),
            "privileged": str(cfg.privileged(expanded.config)).lower(),
        }
        chosen: list[tuple[Job, str]] = []
        planned: set[str] = set()
        for job in todo:
            path = target_path(job.path, job.entry.template)
            # create_only: a file there already (or written by an earlier job) is left alone.
            if job.entry.create_only and (path in planned or await _exists(rootfs, path)):
                continue
            planned.add(path)
            chosen.append((job, path))
        if not chosen:
            return
        texts = await asyncio.to_thread(
            _render_all, [job for job, _ in chosen], templates.files, instance, expanded
        )
        for (job, path), text in zip(chosen, texts, strict=True):
            try:
                await _write(rootfs, path, text.encode())
            except WarrenError as exc:
                raise WarrenError(
                    f'Failed to write template "{job.entry.template}" to {job.path}: '
                    f"{exc.message}"
                ) from None


def _render_all(
    todo: list[Job], files: dict[str, str], instance: dict[str, str], expanded: Expanded
) -> list[str]:
    """The text of each job (blocking)."""
    texts = []
    for job in todo:
        name = job.entry.template
        source = files.get(name)
        if source is None:
            raise WarrenError(
                f'Failed to read template file "{name}" for {job.path}: '
                "the image's templates/ has no such file"
            )
        ctx = template_render.context(
            trigger=job.trigger,
            path=job.path,
            instance=instance,
            config=expanded.config,
            devices=expanded.devices,
            properties=job.entry.properties,
        )
        try:
            texts.append(template_render.render(source, ctx))
        except template_render.TemplateFailure as exc:
            raise WarrenError(
                f'Failed to render template "{name}" for {job.path}: {exc.detail}'
            ) from None
    return texts


async def _exists(rootfs: RootFS, path: str) -> bool:
    try:
        await rootfs.info(path)
    except NotFound:
        return False
    return True


async def _write(rootfs: RootFS, path: str, data: bytes) -> None:
    """Write ``data`` to ``path``, making missing parent directories (LXD's MkdirAll)."""
    try:
        await rootfs.write_file(path, data)
        return
    except NotFound:
        pass
    parent, parents = posixpath.dirname(path), []
    while parent != "/":
        parents.append(parent)
        parent = posixpath.dirname(parent)
    for directory in reversed(parents):
        await rootfs.mkdir(directory)
    await rootfs.write_file(path, data)
