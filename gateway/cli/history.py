"""``warren history``: an object's events as a readable table, and its state at a point."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

#: Payload keys that are bookkeeping, not something a user changed (``project`` is the
#: project's name at the event: a project rename is not a change of the object).
_HIDDEN = frozenset({"name", "old_name", "project"})
_MISSING = object()


def flatten(payload: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"config": {"a": "1"}}`` -> ``{"config.a": "1"}``; internal ids are left out."""
    flat: dict[str, Any] = {}
    for key, value in payload.items():
        if not prefix and (key in _HIDDEN or key.endswith("_id")):
            continue
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{path}."))
        else:
            flat[path] = value
    return flat


def _show(value: Any) -> str:
    if value is _MISSING:
        return "(unset)"
    if value in ({}, [], "", None):
        return '""' if value == "" else str(value if value is not None else "null")
    return str(value)


def changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """What differs between two flattened states, one phrase per key."""
    out = []
    for key in sorted(before.keys() | after.keys()):
        old, new = before.get(key, _MISSING), after.get(key, _MISSING)
        if old == new:
            continue
        if old is _MISSING and new in ({}, ""):
            continue  # an empty map or text appearing is no change worth reading
        if new is _MISSING and old in ({}, ""):
            continue
        out.append(f"{key}: {_show(old)} -> {_show(new)}")
    return out


def describe(events: list[dict[str, Any]]) -> list[str]:
    """One "what happened" line per event, diffing each payload against the previous one."""
    lines: list[str] = []
    previous: dict[str, Any] = {}
    for event in events:
        payload = event.get("payload") or {}
        kind = str(event.get("type", ""))
        verb = kind.rsplit("-", 1)[-1]
        current = flatten(payload)
        if verb == "created":
            set_fields = [
                f"{k}={_show(v)}" for k, v in sorted(current.items()) if v not in ({}, "")
            ]
            line = "created" + (f" with {', '.join(set_fields)}" if set_fields else "")
        elif verb == "renamed":
            line = f"renamed {payload.get('old_name', '?')} -> {payload.get('name', '?')}"
            extra = changes(previous, current)
            if extra:
                line += "; " + "; ".join(extra)
        elif verb == "deleted":
            line = "deleted"
        else:
            diff = changes(previous, current)
            line = "; ".join(diff) if diff else f"{kind} (no visible change)"
        lines.append(line)
        previous = current
    return lines


def _when(stamp: str) -> str:
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return stamp
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%SZ")


def _after(event: dict[str, Any], at: str | None) -> bool:
    """Whether an event lies after the ``--at`` point."""
    if not at:
        return False
    if at.isdigit():
        return int(event["seq"]) > int(at)
    try:
        point = datetime.fromisoformat(at.replace("Z", "+00:00"))
        when = datetime.fromisoformat(str(event["occurred_at"]).replace("Z", "+00:00"))
    except ValueError:
        return False
    return when > point


def columns(rows: list[tuple[str, ...]]) -> list[str]:
    """Rows as left-aligned columns two spaces apart (the last one not padded)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)) + "  " + row[-1]
        for row in rows
    ]


def _holder_row(holder: dict[str, Any], mark: str = "") -> tuple[str, ...]:
    status = "deleted" if holder.get("deleted") else "live"
    return (
        mark + str(holder.get("object_id", "?")),
        str(holder.get("name", "")),
        str(holder.get("project") or "-"),
        status,
        str(holder.get("last_seq", "")),
    )


def holders_table(history: dict[str, Any], name: str) -> list[str]:
    """The objects that carried the name, the shown one starred (nothing if only one)."""
    holders = history.get("holders") or []
    if len(holders) < 2:
        return []
    chosen = history.get("object_id")
    rows = [("  ID", "LATEST NAME", "PROJECT", "STATUS", "LAST SEQ")]
    rows += [_holder_row(h, "* " if h.get("object_id") == chosen else "  ") for h in holders]
    title = f"{len(holders)} objects carried the name {name} (oldest first; pick one with --id):"
    return [title, *columns(rows), ""]


def names_table(listing: list[dict[str, Any]]) -> str:
    """``warren history <kind>``: every name and each object that carried it."""
    rows = [("NAME", "ID", "LATEST NAME", "PROJECT", "STATUS", "LAST SEQ")]
    for item in listing:
        for holder in item.get("holders") or []:
            rows.append((str(item.get("name", "")), *_holder_row(holder)))
    if len(rows) == 1:
        return "(no history)"
    return "\n".join(columns(rows))


def table(history: dict[str, Any], at: str | None = None) -> str:
    """The events as columns SEQ, TIME, WHO, WHAT; a rule marks the ``--at`` point."""
    events = history.get("events") or []
    whats = describe(events)
    rows = [
        (str(e["seq"]), _when(str(e["occurred_at"])), str(e.get("requestor", "")), what)
        for e, what in zip(events, whats, strict=True)
    ]
    lines = columns([("SEQ", "TIME", "WHO", "WHAT"), *rows])
    out = [lines[0]]
    marked = False
    for event, line in zip(events, lines[1:], strict=True):
        if not marked and _after(event, at):
            out.append(f"---- --at {at} (later events are not in the state below) ----")
            marked = True
        out.append(line)
    return "\n".join(out)


def render_value(value: Any, indent: int = 0) -> list[str]:
    """A YAML-looking rendering of plain data (what ``lxc ... show`` prints)."""
    pad = "  " * indent
    lines: list[str] = []
    if isinstance(value, dict):
        if not value:
            return [pad + "{}"]
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                lines.append(f"{pad}{key}:")
                lines.extend(render_value(item, indent + 1))
            else:
                lines.append(f"{pad}{key}: {_scalar(item)}")
        return lines
    if isinstance(value, list):
        for item in value:
            lines.append(f"{pad}- {_scalar(item)}")
        return lines
    return [pad + _scalar(value)]


def _scalar(value: Any) -> str:
    if value == {}:
        return "{}"
    if value == []:
        return "[]"
    if value is None:
        return "null"
    if value == "":
        return '""'
    return str(value)


def report(history: dict[str, Any], kind: str, name: str, at: str | None) -> str:
    """The whole human-readable answer: heading, table, state."""
    count = len(history.get("events") or [])
    where = f" in project {history['project']}" if history.get("project") else ""
    now = history.get("name")
    renamed = f", latest name {now}" if now and now != name else ""
    parts = [
        f"{kind} {name}{where} (id {history.get('object_id', '?')}{renamed}): {count} event(s)",
        "",
        *holders_table(history, name),
        table(history, at),
        "",
    ]
    state = history.get("state")
    title = f"State as of {at}:" if at else "Current state:"
    parts.append(title)
    if state is None:
        parts.append("  (did not exist at that point)" if at else "  (deleted)")
    else:
        parts.extend(render_value(state, 1))
    return "\n".join(parts)
