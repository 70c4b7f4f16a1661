"""Rendering LXD image templates: pongo2 syntax, rendered with Jinja2's sandbox (blocking).

LXD renders an image's templates with pongo2 (Django-like syntax, close to Jinja2) inside
``{% autoescape off %}``, with this context: ``trigger``, ``path``, ``instance`` and its
deprecated twin ``container`` (name, type, architecture, privileged, ephemeral: strings),
``config`` (the expanded config), ``devices`` (the expanded devices), ``properties`` (the
template's own) and ``config_get(key, default)`` (the value with trailing newlines trimmed,
or the default).

Templates come from images, so they run in :class:`jinja2.sandbox.SandboxedEnvironment`; as
in LXD's pongo2 sandbox, a template cannot include (import, extend) another. pongo2's ways met
in real images are bridged: filter arguments after a colon (``|default:"x"``),
``{% autoescape off %}``, ``{% empty %}`` in a for loop, ``forloop.Counter`` and the like, a
missing variable rendering as nothing however deep (calling one too), the trailing newline
kept, and a few Django filters. Jinja2 is imported on first use: an instance service whose
images carry no templates never loads it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from typing import Any

#: Output of one template.
MAX_OUTPUT_BYTES = 4 * 1024 * 1024
_CACHE_SIZE = 256

_TAG = re.compile(r"(\{\{.*?\}\}|\{%.*?%\})", re.DOTALL)
_STRING = r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'"
_COLON_ARG = re.compile(rf"\|\s*(\w+)\s*:\s*({_STRING}|[\w.+-]+)")
_AUTOESCAPE = re.compile(r"\{%(-?)\s*autoescape\s+(on|off)\s*(-?)%\}")
_EMPTY = re.compile(r"\{%(-?)\s*empty\s*(-?)%\}")
_FORLOOP = re.compile(r"\bforloop\.(Counter0|Counter|Revcounter0|Revcounter|First|Last)\b")
_LOOP = {
    "Counter0": "index0",
    "Counter": "index",
    "Revcounter0": "revindex0",
    "Revcounter": "revindex",
    "First": "first",
    "Last": "last",
}


class TemplateFailure(Exception):
    """A template did not render; ``detail`` says why."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def jinja_source(text: str) -> str:
    """pongo2 source rewritten into the Jinja2 that means the same."""

    def tag(match: re.Match[str]) -> str:
        body = match.group(0)
        body = _AUTOESCAPE.sub(
            lambda m: f"{{%{m[1]} autoescape {'true' if m[2] == 'on' else 'false'} {m[3]}%}}",
            body,
        )
        body = _EMPTY.sub(lambda m: f"{{%{m[1]} else {m[2]}%}}", body)
        body = _FORLOOP.sub(lambda m: f"loop.{_LOOP[m[1]]}", body)
        return _COLON_ARG.sub(lambda m: f"|{m[1]}({m[2]})", body)

    return _TAG.sub(tag, text)


def _yesno(value: Any, choices: str = "yes,no,maybe") -> str:
    options = choices.split(",")
    if value is None:
        return options[2] if len(options) > 2 else options[1]
    return options[0] if value else options[1]


#: Django filters pongo2 has and Jinja2 lacks (the common ones).
_FILTERS: dict[str, Callable[..., Any]] = {
    "capfirst": lambda s: str(s)[:1].upper() + str(s)[1:],
    "cut": lambda s, part: str(s).replace(str(part), ""),
    "default_if_none": lambda v, d: d if v is None else v,
    "yesno": _yesno,
    "add": lambda a, b: a + b,
    "integer": lambda v: int(v),
    "float": lambda v: float(v),
    "truncatechars": lambda s, n: str(s) if len(str(s)) <= int(n) else str(s)[: int(n)],
}


class _Engine:
    """The sandboxed environment (made once) and the templates it compiled, by source."""

    def __init__(self) -> None:
        import jinja2
        from jinja2.sandbox import SandboxedEnvironment

        class NoIncludes(jinja2.BaseLoader):
            def get_source(self, environment: jinja2.Environment, template: str) -> Any:
                raise TemplateFailure(
                    f"loading template {template!r} is not allowed (sandbox restriction active)"
                )

        class Missing(jinja2.ChainableUndefined):
            """Nothing, as pongo2's nil: attributes, items and calls of it are nothing too."""

            def __call__(self, *args: Any, **kwargs: Any) -> Any:
                return self

        self.jinja = jinja2
        self.env = SandboxedEnvironment(
            loader=NoIncludes(),
            autoescape=False,
            keep_trailing_newline=True,
            undefined=Missing,
        )
        self.env.filters.update(_FILTERS)
        self._compiled: dict[str, Any] = {}
        self._lock = threading.Lock()

    def compile(self, source: str) -> Any:
        with self._lock:
            template = self._compiled.get(source)
        if template is None:
            template = self.env.from_string(jinja_source(source))
            with self._lock:
                if len(self._compiled) >= _CACHE_SIZE:
                    self._compiled.clear()
                self._compiled[source] = template
        return template


_engine: _Engine | None = None
_engine_lock = threading.Lock()


def _get_engine() -> _Engine:
    global _engine
    with _engine_lock:
        if _engine is None:
            _engine = _Engine()
        return _engine


def context(
    *,
    trigger: str,
    path: str,
    instance: Mapping[str, str],
    config: Mapping[str, str],
    devices: Mapping[str, Mapping[str, str]],
    properties: Mapping[str, str],
) -> dict[str, Any]:
    """LXD's template context."""
    expanded = dict(config)

    def config_get(key: Any, default: Any) -> Any:
        value = expanded.get(str(key))
        return default if value is None else value.rstrip("\r\n")

    return {
        "trigger": trigger,
        "path": path,
        "instance": dict(instance),
        "container": dict(instance),
        "config": expanded,
        "devices": {name: dict(device) for name, device in devices.items()},
        "properties": dict(properties),
        "config_get": config_get,
    }


def render(source: str, ctx: Mapping[str, Any]) -> str:
    """Render one template (blocking); :class:`TemplateFailure` when it does not."""
    engine = _get_engine()
    try:
        template = engine.compile(source)
        parts, size = [], 0
        for chunk in template.generate(dict(ctx)):
            size += len(chunk)
            if size > MAX_OUTPUT_BYTES:
                raise TemplateFailure(f"output larger than {MAX_OUTPUT_BYTES} bytes")
            parts.append(chunk)
        return "".join(parts)
    except engine.jinja.TemplateSyntaxError as exc:
        raise TemplateFailure(f"line {exc.lineno}: {exc.message}") from None
    except engine.jinja.TemplateError as exc:
        raise TemplateFailure(exc.message or type(exc).__name__) from None
    except TemplateFailure:
        raise
    except Exception as exc:  # what a template's expression raised (1/0, int("x"), ...)
        raise TemplateFailure(f"{type(exc).__name__}: {exc}") from None
