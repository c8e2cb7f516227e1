from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import pytest

from paglets.core.agent import Paglet, PagletState
from paglets.core.errors import HostError
from paglets.core.itinerary import (
    EXECUTE_ON_ARRIVAL,
    EXECUTE_ON_DEFAULT,
    EXECUTE_ON_DISPATCH,
    EXECUTE_ON_REVERTING,
    ItineraryAgentMixin,
    ItineraryPlan,
    ItineraryTask,
    TaskItineraryPlan,
)


class RecordingAgent:
    """Records the plan as the dispatch saw it (what the state snapshot would carry)."""

    def __init__(self, plan: ItineraryPlan) -> None:
        self.plan = plan
        self.snapshots: list[ItineraryPlan] = []

    def dispatch(self, target: str) -> str:
        self.snapshots.append(copy.deepcopy(self.plan))
        return f"proxy@{target}"


def test_phase_constants() -> None:
    assert (EXECUTE_ON_ARRIVAL, EXECUTE_ON_DISPATCH, EXECUTE_ON_REVERTING, EXECUTE_ON_DEFAULT) == (
        "arrival",
        "dispatch",
        "reverting",
        "default",
    )


def test_dispatch_next_advances_before_dispatching() -> None:
    plan = ItineraryPlan(destinations=["alpha", "beta"])
    agent = RecordingAgent(plan)
    assert plan.dispatch_next(agent) == "proxy@alpha"
    seen = agent.snapshots[0]
    assert seen.current_index == 1
    assert seen.current_location == "alpha"
    assert seen.visited_destinations == ["alpha"]
    assert plan.dispatch_next(agent) == "proxy@beta"
    assert agent.snapshots[1].visited_destinations == ["alpha", "beta"]
    assert plan.get_remaining_destination_count() == 0
    assert plan.dispatch_next(agent) is None
    assert plan.completed
    assert len(agent.snapshots) == 2


def test_circular_plans_wrap_and_count_loops() -> None:
    plan = ItineraryPlan(destinations=["a", "b"], circular=True)
    agent = RecordingAgent(plan)
    targets = [plan.dispatch_next(agent) for _ in range(5)]
    assert targets == ["proxy@a", "proxy@b", "proxy@a", "proxy@b", "proxy@a"]
    assert [s.loop_count for s in agent.snapshots] == [0, 0, 1, 1, 2]
    assert agent.snapshots[2].current_index == 1
    assert not plan.completed
    assert ItineraryPlan(circular=True).dispatch_next(agent) is None


def test_add_next_destination_positions() -> None:
    plan = ItineraryPlan(destinations=["a", "c"])
    assert plan.add_next_destination("b", index=1)
    assert plan.add_next_destination("d")
    assert plan.add_next_destination("c2", after="c")
    assert plan.get_destinations() == ["a", "b", "c", "c2", "d"]
    assert not plan.add_next_destination("x", index=99)
    assert not plan.add_next_destination("x", index=-1)
    assert not plan.add_next_destination("")
    assert not plan.add_next_destination_if_not_duplicated("a")
    assert plan.add_next_destination("a")
    # ``after`` missing from the route: it is appended first, then the destination after it
    assert plan.add_next_destination("z", after="y")
    assert plan.get_destinations()[-2:] == ["y", "z"]


def test_removal_keeps_the_index_in_range() -> None:
    plan = ItineraryPlan(destinations=["a", "b", "c"], current_index=3)
    assert plan.remove_destination("c")
    assert plan.current_index == 2
    assert not plan.remove_destination("nope")
    assert plan.remove_destination_at(0)
    assert plan.current_index == 1
    assert plan.destinations == ["b"]
    assert not plan.remove_destination_at(5)


def test_immutable_plans_refuse_edits() -> None:
    plan = ItineraryPlan(destinations=["a"])
    plan.set_immutable()
    assert not plan.add_next_destination("b")
    assert not plan.remove_destination("a")
    assert not plan.remove_destination_at(0)
    assert plan.destinations == ["a"]


def test_skip_next_and_getters() -> None:
    plan = ItineraryPlan(destinations=["a", "b"])
    assert plan.next_destination() == "a"
    plan.skip_next()
    assert plan.next_destination() == "b"
    plan.skip_next()
    plan.skip_next()
    assert plan.current_index == 2
    assert plan.next_destination() is None
    assert (plan.get_destination_count(), plan.get_first_destination(), plan.get_last_destination()) == (
        2,
        "a",
        "b",
    )
    assert plan.get_current_location() is None
    assert plan.get_loop_count() == 0
    circular = ItineraryPlan(destinations=["a"], circular=True, current_index=1)
    circular.skip_next()
    assert (circular.current_index, circular.loop_count) == (0, 1)
    empty = ItineraryPlan()
    assert empty.get_first_destination() is None
    assert empty.get_last_destination() is None


def test_task_plan_phases() -> None:
    plan = TaskItineraryPlan(destinations=["a"])
    default = ItineraryTask("log", EXECUTE_ON_DEFAULT)
    arrive = ItineraryTask("scan", EXECUTE_ON_ARRIVAL, {"depth": 2})
    leave = ItineraryTask("flush", EXECUTE_ON_DISPATCH)
    assert plan.add_task_for_destination("a", arrive)
    assert plan.add_task_for_destination("a", leave)
    assert plan.add_task_for_destination("a", default)  # a default-phase task becomes a default task
    assert not plan.add_default_task(default)
    assert not plan.add_default_task(arrive)
    assert not plan.add_task_for_destination("", arrive)
    assert plan.default_tasks == [default]
    assert plan.tasks_for_phase("a", EXECUTE_ON_ARRIVAL) == [default, arrive]
    assert plan.tasks_for_phase("a", EXECUTE_ON_DISPATCH) == [leave]
    plan.execute_default_on_dispatch = True
    assert plan.tasks_for_phase("a", EXECUTE_ON_DISPATCH) == [default, leave]
    assert plan.tasks_for_phase(None, EXECUTE_ON_REVERTING) == []
    assert plan.get_tasks_for_destination("a") == [arrive, leave]
    assert plan.remove_task_for_destination("a", arrive)
    assert not plan.remove_task_for_destination("a", arrive)
    assert plan.remove_task_for_destination("a", leave)
    assert "a" not in plan.destination_tasks
    assert plan.remove_default_task(default)
    assert not plan.remove_default_task(default)
    assert plan.add_next_destination_with_task("b", arrive)
    assert plan.remove_all_tasks_for_destination("b")
    assert not plan.remove_all_tasks_for_destination("b")


@dataclass
class TourState(PagletState):
    itinerary: TaskItineraryPlan = field(default_factory=TaskItineraryPlan)
    log: list[str] = field(default_factory=list)


class Tour(ItineraryAgentMixin, Paglet[TourState]):
    State = TourState

    def dispatch(self, target: Any) -> Any:  # no host in this unit test: record instead of moving
        self.state.log.append(f"dispatch:{target}:{self.state.itinerary.current_index}")
        return f"proxy@{target}"

    def execute_itinerary_task(self, task: ItineraryTask, phase: str, event: Any = None) -> Any:
        self.state.log.append(f"{phase}:{task.name}:{event}")
        return task.name


def test_mixin_drives_the_plan() -> None:
    tour = Tour()
    plan = tour.get_itinerary()
    plan.add_next_destination_with_task("alpha", ItineraryTask("scan"))
    assert tour.go_to_next_destination() == "proxy@alpha"
    assert tour.execute_itinerary_tasks(EXECUTE_ON_ARRIVAL, "ev") == ["scan"]
    assert tour.state.log == ["dispatch:alpha:1", "arrival:scan:ev"]
    assert tour.go_to_next_destination() is None
    assert plan.completed


def test_mixin_needs_an_itinerary_field() -> None:
    @dataclass
    class Plain(PagletState):
        n: int = 0

    class NoPlan(ItineraryAgentMixin, Paglet[Plain]):
        State = Plain

    with pytest.raises(HostError, match="itinerary"):
        NoPlan().get_itinerary()


def test_plain_plans_have_no_tasks_and_the_default_task_handler_refuses() -> None:
    @dataclass
    class PlainTourState(PagletState):
        itinerary: ItineraryPlan = field(default_factory=ItineraryPlan)

    class PlainTour(ItineraryAgentMixin, Paglet[PlainTourState]):
        State = PlainTourState

    tour = PlainTour()
    assert tour.execute_itinerary_tasks(EXECUTE_ON_ARRIVAL) == []
    with pytest.raises(NotImplementedError):
        tour.execute_itinerary_task(ItineraryTask("x"), EXECUTE_ON_ARRIVAL)
