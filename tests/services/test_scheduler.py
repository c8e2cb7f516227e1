"""The compute-slot policy (``paglets.services.builtin._scheduler``) with a fake clock and fake probes."""

from __future__ import annotations

import msgspec
import pytest
from _compute_fakes import URL, Clock, GiB, capacity, peer, request, scheduler

from paglets.services.builtin._compute_journal import Journal
from paglets.services.builtin._scheduler import (
    MAX_GRANT_RESENDS,
    can_ever_satisfy,
    candidate_score,
    redirect_budget,
)
from paglets.services.builtin.compute_slots import (
    DECISION_REDIRECT,
    DECISION_REJECTED,
    DECISION_RUN_NOW,
    DECISION_SLEEP,
    CancelSlotRequestsRequest,
    LeaseUpdateRequest,
)


def _started(sched, lease_id: str, pid: int = 4242) -> None:
    assert sched.lease_update(LeaseUpdateRequest(lease_id=lease_id, pid=pid))


# --- admission ------------------------------------------------------------------------------------------


def test_a_request_that_fits_runs_now_and_reserves_its_cores() -> None:
    clock = Clock()
    sched = scheduler(clock)
    cap = capacity(slots=2)
    first = sched.request(request(sched, "a"), cap)
    assert first.decision == DECISION_RUN_NOW
    assert first.cpu_core_ids == [0]
    second = sched.request(request(sched, "b"), cap)
    assert second.cpu_core_ids == [1]
    third = sched.request(request(sched, "c"), cap)
    assert third.decision == DECISION_SLEEP
    assert third.queue_position == 1
    status = sched.status(cap)
    assert (status.reserved_cpu_cores, status.free_cpu_cores, status.queue_length) == (2, 0, 1)


def test_free_memory_is_what_is_unreserved_but_never_more_than_available() -> None:
    clock = Clock()
    sched = scheduler(clock)
    sched.request(request(sched, "a", memory=6 * GiB), capacity(memory=16 * GiB))
    # reserved but not used yet: 16 - 6 = 10 GiB free (2.0 took available - reserved = 4 GiB)
    assert sched.status(capacity(memory=16 * GiB)).free_memory_bytes == 10 * GiB
    # something else took memory: only what is available counts
    assert sched.status(capacity(memory=16 * GiB, memory_available=3 * GiB)).free_memory_bytes == 3 * GiB


def test_impossible_requests_are_rejected_at_once_with_the_reason() -> None:
    clock = Clock()
    sched = scheduler(clock)
    big = sched.request(request(sched, "a", cores=64), capacity(slots=4))
    assert big.decision == DECISION_REJECTED
    assert big.message == "needs 64 CPU cores, the host offers 4"
    gpu = sched.request(request(sched, "b", requires_gpu=True), capacity())
    assert (gpu.decision, gpu.message) == (DECISION_REJECTED, "GPU jobs unsupported on this host")
    memory = sched.request(request(sched, "c", memory=64 * GiB), capacity(memory=16 * GiB))
    assert memory.message.startswith("needs 64.00 GiB memory")
    assert sched.queue == []
    assert sched.leases == {}


def test_gpu_jobs_need_a_declared_gpu_and_take_one_each() -> None:
    clock = Clock()
    sched = scheduler(clock)
    cap = capacity(gpu_count=1)
    assert sched.request(request(sched, "a", requires_gpu=True), cap).decision == DECISION_RUN_NOW
    assert sched.request(request(sched, "b", requires_gpu=True), cap).decision == DECISION_SLEEP
    assert sched.request(request(sched, "c"), cap).decision == DECISION_RUN_NOW


def test_the_load_gate_is_off_by_default_and_ignores_the_load_of_leased_jobs() -> None:
    clock = Clock()
    loaded = capacity(slots=4, load=8.0)
    assert scheduler(clock).request(request(scheduler(clock), "a"), loaded).decision == DECISION_RUN_NOW
    sched = scheduler(clock, max_load_per_cpu=1.0)
    assert sched.request(request(sched, "a"), capacity(slots=4, load=3.0)).decision == DECISION_RUN_NOW
    lease_id = next(iter(sched.leases))
    _started(sched, lease_id)
    # load 4.0 on 4 CPUs, of which 1.0 is our own job: external 0.75 < 1.0
    assert sched.request(request(sched, "b"), capacity(slots=4, load=4.0)).decision == DECISION_RUN_NOW
    # load 6.0 with two running jobs: external 1.0 -> held
    _started(sched, next(k for k in sched.leases if k != lease_id), pid=4343)
    assert sched.request(request(sched, "c"), capacity(slots=4, load=6.0)).decision == DECISION_SLEEP


# --- grant passes, spacing, burst -------------------------------------------------------------------------


def test_grant_pass_grants_in_queue_order_when_capacity_frees() -> None:
    clock = Clock()
    sched = scheduler(clock)
    cap = capacity(slots=1)
    running = sched.request(request(sched, "a"), cap)
    for owner in ("b", "c", "d"):
        assert sched.request(request(sched, owner), cap).decision == DECISION_SLEEP
    sched.release(running.lease_id)
    granted = sched.grant_pass(cap)
    assert [lease.request.agent_id for lease in granted] == ["b"]
    assert [r.agent_id for r in sched.queue] == ["c", "d"]


def test_grants_per_pass_are_bounded() -> None:
    clock = Clock()
    sched = scheduler(clock, max_grants_per_tick=2)
    cap = capacity(slots=1)
    first = sched.request(request(sched, "a"), cap)
    for owner in "bcde":
        sched.request(request(sched, owner), cap)
    sched.release(first.lease_id)
    granted = sched.grant_pass(capacity(slots=8))
    assert len(granted) == 2
    assert len(sched.grant_pass(capacity(slots=8))) == 2


def test_grant_spacing_holds_grants_unless_there_is_burst_headroom() -> None:
    clock = Clock()
    sched = scheduler(clock, grant_interval=15.0, burst_resource_headroom_factor=2.0, burst_load_per_cpu=0.5)
    roomy = capacity(slots=8)
    assert sched.request(request(sched, "a"), roomy).decision == DECISION_RUN_NOW
    clock.advance(1)
    # 7 free >= 2 x 1 core, low load: a burst grant right away
    assert sched.request(request(sched, "b"), roomy).decision == DECISION_RUN_NOW
    clock.advance(1)
    # 6 free, but the request needs 4 cores: 2 x 4 = 8 > 6, no headroom -> spaced
    assert sched.request(request(sched, "c", cores=4), roomy).decision == DECISION_SLEEP
    # load above the burst limit: spaced as well
    assert sched.request(request(sched, "d"), capacity(slots=8, load=6.0)).decision == DECISION_SLEEP
    assert sched.grant_pass(roomy) == []
    clock.advance(15)
    granted = sched.grant_pass(roomy)
    assert [lease.request.agent_id for lease in granted] == ["c", "d"]  # d as a burst after c


def test_no_spacing_by_default() -> None:
    clock = Clock()
    sched = scheduler(clock)
    cap = capacity(slots=16)
    decisions = [sched.request(request(sched, str(i), cores=4), cap).decision for i in range(4)]
    assert decisions == [DECISION_RUN_NOW] * 4


def test_backfill_stops_once_the_blocked_request_waited_its_limit() -> None:
    clock = Clock()
    sched = scheduler(clock, backfill_limit=60.0)
    cap = capacity(slots=4)
    sched.request(request(sched, "a", cores=2), cap)
    assert sched.request(request(sched, "big", cores=4), cap).decision == DECISION_SLEEP
    # a small one may pass the big one while it has not waited long
    assert sched.request(request(sched, "small", cores=1), cap).decision == DECISION_RUN_NOW
    clock.advance(61)
    assert sched.request(request(sched, "late", cores=1), cap).decision == DECISION_SLEEP
    assert [r.agent_id for r in sched.queue] == ["big", "late"]


# --- redirects ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("queue", "fraction", "per_tick", "budget"),
    [
        (0, 0.5, 4, 0),
        (1, 0.5, 4, 1),
        (2, 0.5, 4, 1),
        (3, 0.5, 4, 2),
        (10, 0.5, 4, 4),
        (10, 0.2, 4, 2),
        (5, 0.5, 0, 0),
    ],
)
def test_redirect_budget(queue: int, fraction: float, per_tick: int, budget: int) -> None:
    assert redirect_budget(queue, fraction, per_tick) == budget


def test_redirect_pass_sends_queued_requests_to_peers_with_room_and_reserves_it() -> None:
    clock = Clock()
    sched = scheduler(clock)
    cap = capacity(slots=1)
    sched.request(request(sched, "a"), cap)
    for owner in "bcde":
        sched.request(request(sched, owner), cap)
    beta = peer("beta", 9002, free=1)
    moves = sched.redirect_pass(cap, [beta])
    # one slot free on beta: one request goes there, not all of them
    assert [(r.agent_id, reply.host_name, reply.decision) for r, reply in moves] == [
        ("b", "beta", DECISION_REDIRECT)
    ]
    assert moves[0][1].redirect_count == 1
    assert moves[0][1].redirected_from_host_url == URL
    assert [r.agent_id for r in sched.queue] == ["c", "d", "e"]


def test_no_redirect_back_within_the_cooldown_and_never_past_the_limit() -> None:
    clock = Clock()
    sched = scheduler(clock, redirect_cooldown=30.0, max_redirects=2)
    cap = capacity(slots=1)
    sched.request(request(sched, "a"), cap)
    gamma = peer("gamma", 9003, free=2)
    recent = request(
        sched,
        "b",
        redirect_count=1,
        last_redirect_at=clock.now - 5,
        last_redirect_from_host_url=gamma.host_url,
    )
    assert sched.request(recent, cap, [gamma]).decision == DECISION_SLEEP  # cooled down: stays
    clock.advance(40)
    # after the cooldown, still not straight back to the host it came from
    assert sched.redirect_pass(cap, [gamma]) == []
    delta = peer("delta", 9004, free=2)
    (move,) = sched.redirect_pass(cap, [gamma, delta])
    assert move[1].host_name == "delta"
    assert move[1].redirect_count == 2
    worn = request(sched, "c", redirect_count=2)
    assert sched.request(worn, cap, [delta]).decision == DECISION_SLEEP  # out of redirects


def test_a_request_this_host_cannot_ever_run_is_redirected_to_one_that_can() -> None:
    clock = Clock()
    sched = scheduler(clock)
    big_peer = peer("big", 9005, free=0, slots=32)
    reply = sched.request(request(sched, "a", cores=16), capacity(slots=4), [big_peer])
    assert (reply.decision, reply.host_name) == (DECISION_REDIRECT, "big")


# --- leases: release, expiry, timeouts, lost jobs --------------------------------------------------------


def test_a_job_past_its_timeout_is_told_to_stop_then_killed() -> None:
    clock = Clock()
    sched = scheduler(clock, kill_grace=5.0)
    reply = sched.request(request(sched, "a", timeout_seconds=30.0), capacity())
    _started(sched, reply.lease_id)
    assert reply.expires_at == clock.now + 30.0
    clock.advance(29)
    assert sched.expire({"a"}) == []
    clock.advance(2)
    (stop,) = sched.expire({"a"})
    assert (stop.action, stop.reason) == ("stop", "timeout")
    assert sched.status(capacity()).reserved_cpu_cores == 1  # still held while it stops
    clock.advance(5)
    (kill,) = sched.expire({"a"})
    assert (kill.action, kill.reason) == ("kill", "timeout")
    assert sched.leases == {}


def test_a_timed_out_job_that_stopped_by_itself_just_ends_its_lease() -> None:
    clock = Clock()
    sched = scheduler(clock)
    reply = sched.request(request(sched, "a", timeout_seconds=10.0), capacity())
    _started(sched, reply.lease_id)
    clock.advance(11)
    sched.expire({"a"})
    (ended,) = sched.expire(set())
    assert (ended.action, ended.reason) == ("dropped", "timeout")


def test_default_timeout_follows_the_estimate() -> None:
    clock = Clock()
    sched = scheduler(clock, timeout_factor=3.0, timeout_floor=60.0)
    reply = sched.request(request(sched, "a"), capacity())  # estimate 10 s
    assert reply.expires_at == clock.now + 3 * 10 + 60


def test_a_grant_the_job_never_picked_up_is_sent_again_then_dropped_as_lost() -> None:
    clock = Clock()
    sched = scheduler(clock, lease_reclaim=30.0)
    cap = capacity(slots=1)
    sched.request(request(sched, "a"), cap)
    sched.request(request(sched, "b"), cap)
    sched.release(next(iter(sched.leases)))
    (lease,) = sched.grant_pass(cap)
    clock.advance(29)
    assert sched.expire(set()) == []
    for attempt in range(MAX_GRANT_RESENDS):
        clock.advance(31)
        (again,) = sched.expire(set())
        assert (again.action, again.lease.grant_resends) == ("resend", attempt + 1)
    clock.advance(31)
    (lost,) = sched.expire(set())
    assert (lost.action, lost.reason, lost.lease.lease_id) == ("dropped", "lost", lease.lease_id)


def test_a_running_job_that_vanished_loses_its_lease_after_a_grace() -> None:
    clock = Clock()
    sched = scheduler(clock)
    reply = sched.request(request(sched, "a"), capacity())
    _started(sched, reply.lease_id)
    assert sched.expire(set()) == []  # gone: a short grace first (it may be moving its process)
    clock.advance(10)
    (lost,) = sched.expire(set())
    assert (lost.action, lost.reason) == ("dropped", "lost")


def test_release_needs_the_owner() -> None:
    clock = Clock()
    sched = scheduler(clock)
    reply = sched.request(request(sched, "a"), capacity())
    assert sched.release(reply.lease_id, "someone-else") is None
    assert sched.release(reply.lease_id, "a") is not None
    assert sched.release(reply.lease_id, "a") is None


def test_cancel_needs_a_filter_and_ends_leases_only_when_asked() -> None:
    clock = Clock()
    sched = scheduler(clock)
    cap = capacity(slots=1)
    sched.request(request(sched, "a"), cap)
    sched.request(request(sched, "b"), cap)
    assert sched.cancel(CancelSlotRequestsRequest()) == ([], [])
    removed, ended = sched.cancel(CancelSlotRequestsRequest(job_ids=("job-a", "job-b")))
    assert ([r.agent_id for r in removed], ended) == (["b"], [])
    removed, ended = sched.cancel(CancelSlotRequestsRequest(agent_ids=("a",), include_leases=True))
    assert (removed, [lease.request.agent_id for lease in ended]) == ([], ["a"])


# --- one owner per request ------------------------------------------------------------------------------


def test_the_same_owner_asking_again_keeps_its_place_or_gets_its_lease_back() -> None:
    clock = Clock()
    sched = scheduler(clock)
    cap = capacity(slots=1)
    granted = sched.request(request(sched, "a"), cap)
    again = sched.request(request(sched, "a"), cap)
    assert (again.decision, again.lease_id) == (DECISION_RUN_NOW, granted.lease_id)
    for owner in "bcd":
        sched.request(request(sched, owner), cap)
    clock.advance(5)
    # "c" asks again with more memory: same place, same waiting time, the new size
    reply = sched.request(request(sched, "c", memory=2 * GiB), cap)
    assert (reply.decision, reply.queue_position) == (DECISION_SLEEP, 2)
    assert [r.agent_id for r in sched.queue] == ["b", "c", "d"]
    assert sched.queue[1].memory_bytes == 2 * GiB
    assert sched.queue[1].submitted_at == clock.now - 5
    # the same job from another agent id (its next run) is the same owner too
    moved = sched.request(request(sched, "d2", job_id="job-d"), cap)
    assert moved.queue_position == 3
    assert len(sched.queue) == 3


def test_an_older_attempt_of_a_job_is_refused_and_a_newer_one_replaces_it() -> None:
    clock = Clock()
    sched = scheduler(clock)
    cap = capacity(slots=2)
    first = sched.request(request(sched, "a", attempt=2), cap)
    stale = sched.request(request(sched, "a-old", job_id="job-a", attempt=1), cap)
    assert (stale.decision, stale.message) == (DECISION_REJECTED, "superseded by attempt 2 of job job-a")
    newer = sched.request(request(sched, "a-new", job_id="job-a", attempt=3), cap)
    assert newer.decision == DECISION_RUN_NOW
    assert newer.lease_id != first.lease_id
    assert list(sched.leases) == [newer.lease_id]


# --- durability -----------------------------------------------------------------------------------------


def test_queue_order_and_leases_survive_a_restart_through_the_journal() -> None:
    clock = Clock()
    sched = scheduler(clock, lease_reclaim=30.0)
    cap = capacity(slots=2)
    leases = [sched.request(request(sched, owner), cap).lease_id for owner in "ab"]
    _started(sched, leases[0])
    for owner in "cdef":
        sched.request(request(sched, owner, preferred_host_tags=("fast",)), cap)
    data = msgspec.json.encode(Journal(queue=sched.queue, leases=list(sched.leases.values())))
    journal = msgspec.json.decode(data, type=Journal)
    clock.advance(100)
    again = scheduler(clock, lease_reclaim=30.0)
    again.restore(journal.queue, journal.leases, journal.last_grant_at)
    assert [r.agent_id for r in again.queue] == ["c", "d", "e", "f"]
    assert again.queue[0].preferred_host_tags == ("fast",)
    assert set(again.leases) == set(leases)
    assert again.status(cap).free_cpu_cores == 0  # the leases still hold their cores
    # "a" comes back and gets its lease; "b" does not come back and loses it after the reclaim window
    back = again.request(request(again, "a"), cap)
    assert (back.decision, back.lease_id) == (DECISION_RUN_NOW, leases[0])
    clock.advance(31)
    assert [e.action for e in again.expire({"a"})] == ["resend"]
    assert again.leases[leases[1]].grant_resends == 1


# --- placement ------------------------------------------------------------------------------------------


def test_candidate_score_prefers_free_slots_and_preferred_tags() -> None:
    idle, busy = peer("idle", 9002, free=4), peer("busy", 9003, free=1)
    assert candidate_score(idle) < candidate_score(busy)
    clock = Clock()
    sched = scheduler(clock)
    wanted = request(sched, "a", preferred_host_tags=("gpu",))
    tagged = peer("tagged", 9004, free=1)
    from dataclasses import replace

    tagged = replace(tagged, host_tags=("gpu",))
    assert candidate_score(tagged, wanted) < candidate_score(busy, wanted)
    assert can_ever_satisfy(tagged, request(sched, "b", required_host_tags=("ssd",))) == (
        "missing required host tags: ssd"
    )
