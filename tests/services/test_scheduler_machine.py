"""A Hypothesis state machine over the compute-slot policy: submit, grant, release, cancel, expire, restart.

The model tracks every owner that ever asked for a slot and where it must be: queued, holding a lease,
or finished (refused, released, cancelled, dropped). After every step: no host ever leases more cores,
memory or scratch than it has; every owner is in exactly one place (nothing lost, nothing twice); the
queue keeps the order in which owners were first queued; a restart (journal encoded and decoded) changes
none of this.
"""

from __future__ import annotations

import msgspec
from _compute_fakes import Clock, GiB, capacity, request, scheduler
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from paglets.services.builtin._compute_journal import Journal
from paglets.services.builtin.compute_slots import (
    DECISION_REJECTED,
    DECISION_RUN_NOW,
    DECISION_SLEEP,
    CancelSlotRequestsRequest,
    LeaseUpdateRequest,
)

SLOTS = 4
MEMORY = 8 * GiB
OWNERS = [f"job{i}" for i in range(12)]


class SchedulerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.settings = {"lease_reclaim": 30.0, "kill_grace": 5.0, "backfill_limit": 60.0}
        self.sched = scheduler(self.clock, **self.settings)
        self.cap = capacity(slots=SLOTS, memory=MEMORY)
        #: owner -> "queued" | "leased" | "done"
        self.where: dict[str, str] = {}
        self.order: list[str] = []  # owners in the order they were first queued
        self.active: set[str] = set()  # owners whose job process runs

    # --- helpers ------------------------------------------------------------------------------------

    def _sync_grants(self, granted: list[str]) -> None:
        for owner in granted:
            assert self.where.get(owner) == "queued", f"{owner} granted from {self.where.get(owner)}"
            self.where[owner] = "leased"
            self.order.remove(owner)

    def _lease_of(self, owner: str) -> str:
        return next(k for k, lease in self.sched.leases.items() if lease.request.agent_id == owner)

    # --- rules --------------------------------------------------------------------------------------

    @rule(
        owner=st.sampled_from(OWNERS),
        cores=st.integers(1, 6),
        memory=st.sampled_from([GiB, 3 * GiB, 9 * GiB]),
    )
    def submit(self, owner: str, cores: int, memory: int) -> None:
        before = self.where.get(owner)
        if before == "done":
            return  # a finished owner does not come back in this model
        reply = self.sched.request(request(self.sched, owner, cores=cores, memory=memory), self.cap)
        if reply.decision == DECISION_REJECTED:
            assert cores > SLOTS or memory > MEMORY, reply.message
            if before == "leased":
                raise AssertionError("a lease holder asking again must get its lease back")
            if before == "queued":
                self.order.remove(owner)
            self.where[owner] = "done"
            return
        if before == "leased":
            assert reply.decision == DECISION_RUN_NOW
            return
        if reply.decision == DECISION_RUN_NOW:
            if before == "queued":
                self.order.remove(owner)
            self.where[owner] = "leased"
            self.active.add(owner)
            return
        assert reply.decision == DECISION_SLEEP
        if before is None:
            self.order.append(owner)
        self.where[owner] = "queued"

    @rule()
    def grant_pass(self) -> None:
        granted = [lease.request.agent_id for lease in self.sched.grant_pass(self.cap)]
        self._sync_grants(granted)
        self.active.update(granted)

    @precondition(lambda self: any(v == "leased" for v in self.where.values()))
    @rule(data=st.data())
    def start_or_release(self, data: st.DataObject) -> None:
        owner = data.draw(st.sampled_from(sorted(o for o, v in self.where.items() if v == "leased")))
        lease_id = self._lease_of(owner)
        if data.draw(st.booleans()):
            assert self.sched.lease_update(LeaseUpdateRequest(lease_id=lease_id, agent_id=owner, pid=100))
        else:
            assert self.sched.release(lease_id, owner) is not None
            self.where[owner] = "done"
            self.active.discard(owner)

    @rule(owners=st.lists(st.sampled_from(OWNERS), max_size=3), leases=st.booleans())
    def cancel(self, owners: list[str], leases: bool) -> None:
        removed, ended = self.sched.cancel(
            CancelSlotRequestsRequest(agent_ids=tuple(owners), include_leases=leases)
        )
        for r in removed:
            assert self.where[r.agent_id] == "queued"
            self.where[r.agent_id] = "done"
            self.order.remove(r.agent_id)
        for lease in ended:
            assert self.where[lease.request.agent_id] == "leased"
            self.where[lease.request.agent_id] = "done"
        for owner in owners:
            assert self.where.get(owner) != "queued"
            if leases:
                assert self.where.get(owner) != "leased"

    @rule(seconds=st.sampled_from([1.0, 10.0, 40.0, 200.0]), crash=st.booleans())
    def time_passes(self, seconds: float, crash: bool) -> None:
        """Time passes; with ``crash`` a running job's process dies."""
        self.clock.advance(seconds)
        if crash and self.active:
            self.active.discard(sorted(self.active)[0])
        for ended in self.sched.expire(set(self.active)):
            owner = ended.lease.request.agent_id
            if ended.action in ("dropped", "kill"):
                assert self.where[owner] == "leased"
                self.where[owner] = "done"
                self.active.discard(owner)

    @rule()
    def restart(self) -> None:
        """The host restarts: the journal is written, read back, and every job process is gone."""
        snap = self.sched.snapshot()
        data = msgspec.json.encode(
            Journal(queue=snap["queue"], leases=snap["leases"], last_grant_at=snap["last_grant_at"])
        )
        journal = msgspec.json.decode(data, type=Journal)
        self.sched = scheduler(self.clock, **self.settings)
        self.sched.restore(journal.queue, journal.leases, journal.last_grant_at)
        self.active.clear()

    # --- invariants ---------------------------------------------------------------------------------

    @invariant()
    def never_more_leased_than_the_host_has(self) -> None:
        cores, memory, _ = self.sched.reserved()
        assert cores <= SLOTS
        assert memory <= MEMORY
        reserved_ids = [i for lease in self.sched.leases.values() for i in lease.reserved_cpu_core_ids]
        assert len(reserved_ids) == len(set(reserved_ids)), "a CPU reserved twice"

    @invariant()
    def every_owner_is_in_exactly_one_place(self) -> None:
        queued = [r.agent_id for r in self.sched.queue]
        leased = [lease.request.agent_id for lease in self.sched.leases.values()]
        assert len(queued) == len(set(queued)), "queued twice"
        assert len(leased) == len(set(leased)), "leased twice"
        assert not set(queued) & set(leased), "queued and leased"
        expected_queued = {o for o, v in self.where.items() if v == "queued"}
        expected_leased = {o for o, v in self.where.items() if v == "leased"}
        assert set(queued) == expected_queued, "a queued request was lost or appeared"
        assert set(leased) == expected_leased, "a lease was lost or appeared"

    @invariant()
    def the_queue_keeps_its_order(self) -> None:
        assert [r.agent_id for r in self.sched.queue] == self.order


SchedulerMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
TestScheduler = SchedulerMachine.TestCase
