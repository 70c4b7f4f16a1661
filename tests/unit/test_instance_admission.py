"""Instance creates against project limits: creates under way count until the log has them,
and an instance both admitted and folded counts once."""

from __future__ import annotations

import pytest

from schemas.envelope import StoredEvent
from schemas.errors import Conflict
from services.instance.catalog import project
from services.instance.catalog.projection import CatalogProjection
from services.instance.instances import aggregate as instance
from services.instance.instances.admission import Admissions
from services.instance.instances.state import InstanceState


def _catalog(**config: str) -> tuple[CatalogProjection, project.ProjectState]:
    view = CatalogProjection()
    (event,) = project.decide(None, project.CreateProject(id="j", name="lim", config=config))
    view.apply(StoredEvent(seq=1, event=event))
    state = view.project("lim")
    assert state is not None
    return view, state


def _record(view: CatalogProjection, instance_id: str, seq: int) -> None:
    state = InstanceState(
        id=instance_id,
        project_id="j",
        name=f"c-{instance_id}",
        node="n1",
        host_name=f"w-{instance_id}",
        pool="default",
        image="",
    )
    for event in instance.decide(None, instance.Create(state, "lim")):
        view.apply(StoredEvent(seq=seq, event=event))


def test_a_create_under_way_takes_the_last_slot() -> None:
    view, lim = _catalog(**{"limits.instances": "2"})
    _record(view, "a", 2)
    admissions = Admissions(view)
    admissions.admit(lim, "b")
    with pytest.raises(Conflict, match='Reached maximum number of instances in project "lim"'):
        admissions.admit(lim, "c")
    admissions.done("j", "b")  # b failed: its slot is free again
    admissions.admit(lim, "c")


def test_an_admitted_create_the_log_has_counts_once() -> None:
    view, lim = _catalog(**{"limits.containers": "2"})
    admissions = Admissions(view)
    admissions.admit(lim, "a")
    _record(view, "a", 2)  # recorded, not yet done
    assert admissions.usage("j").containers == 1
    admissions.admit(lim, "b")
    with pytest.raises(Conflict, match='of type "container" in project "lim"'):
        admissions.admit(lim, "c")
    admissions.done("j", "a")
    admissions.done("j", "a")  # twice is harmless
    assert admissions.usage("j").containers == 2


def test_no_limits_admit_everything() -> None:
    view, lim = _catalog()
    admissions = Admissions(view)
    for i in range(5):
        admissions.admit(lim, str(i))
    assert admissions.usage("j").instances == 5
