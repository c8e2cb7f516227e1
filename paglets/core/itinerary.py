"""Itineraries: a route of hosts a paglet travels, kept in its state (docs/implementing/movement.md).

``ItineraryPlan`` is a plain dataclass meant to be a field of a paglet's state, so the route moves with
the paglet. Its rules:

- ``destinations`` is the route (host URLs or mesh names); ``current_index`` is the position of the
  *next* destination; ``visited_destinations`` records every destination in the order it was left for;
- ``dispatch_next(agent)`` takes the next destination, **advances the index and records the visit
  before** calling ``agent.dispatch(target)``: the state snapshot taken by the dispatch therefore
  already holds the new position, and the arrived copy continues from there. When no destination is
  left it sets ``completed`` and returns ``None``;
- a ``circular`` plan wraps around after its last destination and counts the completed rounds in
  ``loop_count`` (it never completes);
- while ``mutable`` is False, adding and removing destinations does nothing (returns False).

``TaskItineraryPlan`` adds tasks: per-destination tasks with a phase (``EXECUTE_ON_ARRIVAL``,
``_DISPATCH``, ``_REVERTING``) and default tasks (phase ``EXECUTE_ON_DEFAULT``) that run in every phase
whose ``execute_default_on_<phase>`` flag is set. ``tasks_for_phase`` returns the enabled defaults first,
then the destination's tasks of that phase.

``ItineraryAgentMixin`` gives a paglet ``go_to_next_destination()`` and ``execute_itinerary_tasks()``; it
reads the plan from the state field named by ``itinerary_attr`` (default ``"itinerary"``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from paglets.core.errors import HostError

__all__ = [
    "EXECUTE_ON_ARRIVAL",
    "EXECUTE_ON_DEFAULT",
    "EXECUTE_ON_DISPATCH",
    "EXECUTE_ON_REVERTING",
    "ItineraryAgentMixin",
    "ItineraryPlan",
    "ItineraryTask",
    "SupportsDispatch",
    "TaskItineraryPlan",
]

EXECUTE_ON_ARRIVAL: Final = "arrival"
EXECUTE_ON_DISPATCH: Final = "dispatch"
EXECUTE_ON_REVERTING: Final = "reverting"
EXECUTE_ON_DEFAULT: Final = "default"


class SupportsDispatch(Protocol):
    """What ``dispatch_next`` needs from a paglet."""

    def dispatch(self, target: str, /) -> Any: ...


@dataclass(slots=True)
class ItineraryPlan:
    """A route of destinations (see the module docstring)."""

    destinations: list[str] = field(default_factory=list)
    current_index: int = 0
    current_location: str | None = None
    visited_destinations: list[str] = field(default_factory=list)
    mutable: bool = True
    circular: bool = False
    loop_count: int = 0
    completed: bool = False

    # --- editing ----------------------------------------------------------------------------------------

    def add_next_destination(
        self,
        destination: str,
        *,
        index: int | None = None,
        after: str | None = None,
        allow_duplicate: bool = True,
    ) -> bool:
        """Insert ``destination`` and report whether the route changed.

        Position: right after the first occurrence of ``after`` when given (if ``after`` is not in the
        route it is appended first, then ``destination`` after it), else at ``index`` (0..len; out of
        range → False), else at the end. Refused (False) when the plan is immutable, the destination is
        empty, or it is already in the route and ``allow_duplicate`` is False.
        """
        if not self.mutable or not destination:
            return False
        if not allow_duplicate and destination in self.destinations:
            return False
        if after is not None:
            if after in self.destinations:
                index = self.destinations.index(after) + 1
            else:
                self.destinations.append(after)
                index = len(self.destinations)
        if index is None:
            self.destinations.append(destination)
            return True
        if not 0 <= index <= len(self.destinations):
            return False
        self.destinations.insert(index, destination)
        return True

    def add_next_destination_if_not_duplicated(self, destination: str) -> bool:
        return self.add_next_destination(destination, allow_duplicate=False)

    def remove_destination(self, destination: str) -> bool:
        """Remove the first occurrence of ``destination``; False if absent or immutable."""
        if not self.mutable or destination not in self.destinations:
            return False
        self.destinations.remove(destination)
        self._clamp_index()
        return True

    def remove_destination_at(self, index: int) -> bool:
        """Remove the destination at ``index``; False if out of range or immutable."""
        if not self.mutable or not 0 <= index < len(self.destinations):
            return False
        del self.destinations[index]
        self._clamp_index()
        return True

    def _clamp_index(self) -> None:
        self.current_index = min(self.current_index, len(self.destinations))

    def set_immutable(self) -> None:
        self.mutable = False

    def skip_next(self) -> None:
        """Pass over the next destination without going there (wraps for circular plans)."""
        if self.current_index < len(self.destinations):
            self.current_index += 1
        elif self.circular and self.destinations:
            self.current_index = 0
            self.loop_count += 1

    # --- queries ----------------------------------------------------------------------------------------

    def get_destination_count(self) -> int:
        return len(self.destinations)

    def get_remaining_destination_count(self) -> int:
        return max(0, len(self.destinations) - self.current_index)

    def get_destinations(self) -> list[str]:
        return list(self.destinations)

    def get_first_destination(self) -> str | None:
        return self.destinations[0] if self.destinations else None

    def get_last_destination(self) -> str | None:
        return self.destinations[-1] if self.destinations else None

    def get_current_location(self) -> str | None:
        return self.current_location

    def get_loop_count(self) -> int:
        return self.loop_count

    def next_destination(self) -> str | None:
        """The destination ``dispatch_next`` would go to, or None when the route is done."""
        if self.current_index < len(self.destinations):
            return self.destinations[self.current_index]
        if self.circular and self.destinations:
            return self.destinations[0]
        return None

    # --- moving -----------------------------------------------------------------------------------------

    def dispatch_next(self, agent: SupportsDispatch) -> Any | None:
        """Advance, record the visit, then return ``agent.dispatch(target)``; None when done."""
        target = self.next_destination()
        if target is None:
            self.completed = True
            return None
        if self.current_index >= len(self.destinations):  # circular wrap
            self.current_index = 0
            self.loop_count += 1
        self.current_index += 1
        self.current_location = target
        self.visited_destinations.append(target)
        return agent.dispatch(target)


@dataclass(slots=True)
class ItineraryTask:
    """A named unit of work run in one phase at a destination; ``args`` must be wire values."""

    name: str
    execution: str = EXECUTE_ON_ARRIVAL
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class TaskItineraryPlan(ItineraryPlan):
    """An ``ItineraryPlan`` with tasks per destination and default tasks (see the module docstring)."""

    destination_tasks: dict[str, list[ItineraryTask]] = field(default_factory=dict)
    default_tasks: list[ItineraryTask] = field(default_factory=list)
    execute_default_on_arrival: bool = True
    execute_default_on_dispatch: bool = False
    execute_default_on_reverting: bool = False

    def add_default_task(self, task: ItineraryTask) -> bool:
        """Add a default task; only tasks with phase ``EXECUTE_ON_DEFAULT``, each once."""
        if task.execution != EXECUTE_ON_DEFAULT or task in self.default_tasks:
            return False
        self.default_tasks.append(task)
        return True

    def remove_default_task(self, task: ItineraryTask) -> bool:
        if task not in self.default_tasks:
            return False
        self.default_tasks.remove(task)
        return True

    def add_task_for_destination(self, destination: str, task: ItineraryTask) -> bool:
        """Attach ``task`` to ``destination`` (a default-phase task becomes a default task)."""
        if not destination:
            return False
        if task.execution == EXECUTE_ON_DEFAULT:
            return self.add_default_task(task)
        self.destination_tasks.setdefault(destination, []).append(task)
        return True

    def add_next_destination_with_task(self, destination: str, task: ItineraryTask) -> bool:
        if not self.add_next_destination(destination):
            return False
        self.add_task_for_destination(destination, task)
        return True

    def remove_all_tasks_for_destination(self, destination: str) -> bool:
        return self.destination_tasks.pop(destination, None) is not None

    def remove_task_for_destination(self, destination: str, task: ItineraryTask) -> bool:
        tasks = self.destination_tasks.get(destination)
        if not tasks or task not in tasks:
            return False
        tasks.remove(task)
        if not tasks:
            del self.destination_tasks[destination]
        return True

    def get_tasks_for_destination(self, destination: str) -> list[ItineraryTask]:
        return list(self.destination_tasks.get(destination, ()))

    def default_enabled_for_phase(self, phase: str) -> bool:
        """Whether default tasks run in ``phase``."""
        enabled = {
            EXECUTE_ON_ARRIVAL: self.execute_default_on_arrival,
            EXECUTE_ON_DISPATCH: self.execute_default_on_dispatch,
            EXECUTE_ON_REVERTING: self.execute_default_on_reverting,
        }
        return enabled.get(phase, False)

    def tasks_for_phase(self, destination: str | None, phase: str) -> list[ItineraryTask]:
        """Enabled default tasks, then ``destination``'s tasks of ``phase``."""
        tasks = list(self.default_tasks) if self.default_enabled_for_phase(phase) else []
        if destination is not None:
            tasks.extend(t for t in self.destination_tasks.get(destination, ()) if t.execution == phase)
        return tasks


class ItineraryAgentMixin:
    """Itinerary helpers for a paglet whose state holds an ``ItineraryPlan``.

    Put it before ``Paglet`` in the bases: ``class Tour(ItineraryAgentMixin, Paglet[TourState])``.
    """

    itinerary_attr: str = "itinerary"

    def get_itinerary(self) -> ItineraryPlan:
        state = getattr(self, "state", None)
        plan = getattr(state, self.itinerary_attr, None)
        if not isinstance(plan, ItineraryPlan):
            raise HostError(
                f"{type(self).__name__}: state field {self.itinerary_attr!r} is not an ItineraryPlan"
            )
        return plan

    def go_to_next_destination(self) -> Any | None:
        """``dispatch_next`` on this paglet's plan: the new location's proxy, or None when done."""
        agent: SupportsDispatch = self  # type: ignore[assignment]  # the mixin sits on a Paglet
        return self.get_itinerary().dispatch_next(agent)

    def execute_itinerary_tasks(self, phase: str, event: Any = None) -> list[Any]:
        """Run the tasks of ``phase`` at the current location; their results in order."""
        plan = self.get_itinerary()
        if not isinstance(plan, TaskItineraryPlan):
            return []
        tasks = plan.tasks_for_phase(plan.get_current_location(), phase)
        return [self.execute_itinerary_task(task, phase, event) for task in tasks]

    def execute_itinerary_task(self, task: ItineraryTask, phase: str, event: Any = None) -> Any:
        """Run one task; paglets that use tasks override this."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement execute_itinerary_task ({task.name!r})"
        )
