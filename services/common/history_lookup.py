"""Which objects a history request means, for any service: what the service says about its
kinds (a :class:`HistoryBook`) and the generic lookups over its :class:`NameHistory`.

A request names a kind, a name and the request's project. The book says which name scopes
that covers (project ids, a node, ``""``), which object has the name now, and how an object
looks now and at a past point; the lookup finds every object that carried the name there
(oldest first), picks one, and describes each as the history lists it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, urlencode

from schemas.catalog import HistoryHolder, HistoryName
from schemas.envelope import Event
from schemas.errors import NotFound
from services.common.eventstore import EventStore
from services.common.name_history import NameHistory

DEFAULT_PROJECT = "default"

#: An aggregate's own fold: ``evolve(state, event) -> state``.
Evolve = Callable[[Any, Event], Any]


def history_url(kind: str, name: str, project: str | None = None) -> str:
    """``/1.0/history/<kind>/<name>[?project=<p>]``, escaped as LXD's Go client escapes
    (``project`` only for project-scoped kinds, and not when ``default``)."""
    # Go's url.PathEscape leaves these sub-delimiters alone; quote() would not.
    url = f"/1.0/history/{kind}/{quote(name, safe='$&+:=@')}"
    if project is not None and project != DEFAULT_PROJECT:
        url += "?" + urlencode({"project": project})
    return url


class HistoryBook(ABC):
    """What one service tells the shared history about the kinds of object it owns."""

    #: Each kind this service keeps the history of -> its aggregate's ``evolve``.
    evolvers: Mapping[str, Evolve]
    #: The events, read back per object.
    store: EventStore

    @property
    @abstractmethod
    def names(self) -> NameHistory:
        """The service projection's name history."""

    @abstractmethod
    async def fresh(self) -> int:
        """Bring the projection up to everything committed; the sequence it reflects."""

    @abstractmethod
    def seq_of(self, object_id: str) -> int:
        """The stream sequence of the object's latest event."""

    @abstractmethod
    def scopes(self, kind: str, project: str) -> list[str]:
        """The name scopes a request in ``project`` covers (404 for an unknown project)."""

    @abstractmethod
    def live(self, kind: str, name: str, project: str) -> str | None:
        """The id of the live object that has ``name`` now, if any."""

    @abstractmethod
    async def current(self, kind: str, object_id: str) -> dict[str, Any] | None:
        """The object as its API shows it now (``None`` once deleted)."""

    @abstractmethod
    def past(self, kind: str, state: Any) -> dict[str, Any] | None:
        """The object as it was, from a state its own events folded to."""

    def project_scoped(self, kind: str) -> bool:
        """Whether objects of ``kind`` live in a project (``?project=`` means something)."""
        return False

    def project_name(self, kind: str, scope: str) -> str | None:
        """The (latest) name of the project a scope stands for; ``None`` if not a project."""
        return None

    def not_found(self, kind: str) -> str:
        """The message of the 404 for a name nothing of ``kind`` ever carried."""
        return f"{kind.replace('-', ' ').capitalize()} not found"

    def resolve(self, kind: str, name: str, project: str) -> str:
        """The name meant by ``name`` (e.g. a unique fingerprint prefix); itself by default."""
        return name


class HistoryLookup:
    """Name and project -> object ids, from the book's name history."""

    def __init__(self, book: HistoryBook) -> None:
        self.book = book

    def holders(self, kind: str, name: str, project: str) -> list[str]:
        """Every object that carried ``name`` in the request's scopes, oldest first."""
        last: dict[str, int] = {}
        for scope in self.book.scopes(kind, project):
            for object_id, seq in self.book.names.holders(kind, scope, name).items():
                last[object_id] = max(seq, last.get(object_id, 0))
        return sorted(last, key=lambda object_id: last[object_id])

    def select(
        self, kind: str, name: str, project: str, object_id: str | None
    ) -> tuple[str, list[str]]:
        """The object meant (``object_id``, else the live one, else the latest holder) and
        every holder of the name."""
        holders = self.holders(kind, name, project)
        if object_id is not None:
            if object_id not in holders:
                where = f" in project {project!r}" if self.book.project_scoped(kind) else ""
                raise NotFound(f"No {kind} with id {object_id!r} was ever named {name!r}{where}")
            return object_id, holders
        chosen = self.book.live(kind, name, project) or (holders[-1] if holders else None)
        if chosen is None:
            raise NotFound(self.book.not_found(kind))
        return chosen, holders

    def describe(self, object_id: str) -> HistoryHolder:
        """One object as the history lists it (its latest name and project name)."""
        seq = self.book.seq_of(object_id)
        known = self.book.names.carrier(object_id)
        if known is None:
            return HistoryHolder(object_id=object_id, name="", last_seq=seq)
        return HistoryHolder(
            object_id=object_id,
            name=known.name,
            project=self.book.project_name(known.kind, known.scope),
            deleted=known.deleted,
            last_seq=seq,
        )

    def names(self, kind: str, project: str) -> list[str]:
        """Every name objects of ``kind`` carried in the request's scopes."""
        found: set[str] = set()
        for scope in self.book.scopes(kind, project):
            found.update(self.book.names.names(kind, scope))
        return sorted(found)

    def url(self, kind: str, name: str, project: str) -> str:
        """The history URL of one name (``?project=`` for project-scoped kinds)."""
        return history_url(kind, name, project if self.book.project_scoped(kind) else None)

    def listing(self, kind: str, project: str) -> list[HistoryName]:
        """Each name with every object that carried it."""
        return [
            HistoryName(
                name=name,
                url=self.url(kind, name, project),
                holders=[self.describe(i) for i in self.holders(kind, name, project)],
            )
            for name in self.names(kind, project)
        ]
