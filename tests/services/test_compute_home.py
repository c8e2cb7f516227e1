"""A job's home (``_compute_home``): tracking, fencing and lost jobs, with a fake clock."""

from __future__ import annotations

from _compute_fakes import Clock

from paglets.services.builtin._compute_home import LOST, MAX_RESTART_STATE, HomeRegistry
from paglets.services.builtin.compute_slots import (
    JOB_CANCELLED,
    JOB_COMPLETED,
    JOB_FAILED,
    JOB_PLACING,
    JOB_RUNNING,
    JobUpdateRequest,
    ListJobsRequest,
    TrackJobRequest,
)

HOME = "http://127.0.0.1:9000"
BETA = "http://127.0.0.1:9002"


def tracked(clock: Clock, *, restarts: int = 1, state: bytes = b"state") -> HomeRegistry:
    home = HomeRegistry(clock)
    request = TrackJobRequest(
        job_id="job-1",
        agent_id="agent-1",
        class_name="m:Job",
        state_class="m:State",
        group_id="g",
        restart_state=state,
        max_restarts=restarts,
        collector_agent_id="collector",
        collector_host_url=HOME,
    )
    assert home.track(request, "alpha", HOME).attempt == 1
    return home


def update(status: str, *, attempt: int = 1, host: str = BETA, error: str = "") -> JobUpdateRequest:
    return JobUpdateRequest("job-1", "agent-1", attempt, status, "beta", host, error)


def test_tracking_follows_the_jobs_reports() -> None:
    clock = Clock()
    home = tracked(clock)
    job = home.jobs["job-1"]
    assert (job.status, job.host_name, job.restartable, job.collector_agent_id) == (
        JOB_PLACING,
        "alpha",
        True,
        "collector",
    )
    reply, lost = home.update(update(JOB_RUNNING))
    assert (reply.proceed, lost) == (True, None)
    assert (home.jobs["job-1"].status, home.jobs["job-1"].host_url) == (JOB_RUNNING, BETA)
    home.update(update(JOB_COMPLETED))
    assert home.jobs["job-1"].finished_at == clock.now
    assert home.listing(ListJobsRequest(include_finished=False)).jobs == []
    assert [j.job_id for j in home.listing(ListJobsRequest(group_id="g")).jobs] == ["job-1"]


def test_a_job_whose_host_stays_offline_is_restarted_then_failed() -> None:
    clock = Clock()
    home = tracked(clock, restarts=1)
    home.update(update(JOB_RUNNING))
    online = {"beta": False}
    assert home.check_hosts(lambda url: online.get(url, True), "alpha", HOME, lost_after=20.0) == []
    clock.advance(19)
    assert home.check_hosts(lambda url: online.get(url, True), "alpha", HOME, lost_after=20.0) == []
    clock.advance(2)
    (lost,) = home.check_hosts(lambda url: online.get(url, True), "alpha", HOME, lost_after=20.0)
    assert lost.restart
    assert (lost.job.attempt, lost.job.restarts, lost.job.excluded_host_urls) == (2, 1, (BETA,))
    home.restarted("job-1", "agent-2", "alpha", HOME)
    # the old run reports from the host that came back: it is told to stop
    reply, _ = home.update(update(JOB_RUNNING, attempt=1))
    assert (reply.proceed, reply.reason) == (False, "superseded by attempt 2")
    # the second attempt is lost too: no restarts left, it fails with the reason
    home.update(JobUpdateRequest("job-1", "agent-2", 2, JOB_RUNNING, "gamma", "http://127.0.0.1:9003"))
    reply, lost2 = home.update(
        JobUpdateRequest("job-1", "agent-2", 2, LOST, error="its process on gamma vanished")
    )
    assert lost2 is not None
    assert not lost2.restart
    assert home.jobs["job-1"].status == JOB_FAILED
    assert home.jobs["job-1"].error == "lost: its process on gamma vanished"


def test_a_host_that_comes_back_in_time_loses_nothing() -> None:
    clock = Clock()
    home = tracked(clock)
    home.update(update(JOB_RUNNING))
    online = {"beta": False}
    home.check_hosts(lambda url: online.get(url, True), "alpha", HOME, lost_after=20.0)
    clock.advance(10)
    online["beta"] = True
    assert home.check_hosts(lambda url: online.get(url, True), "alpha", HOME, lost_after=20.0) == []
    online["beta"] = False
    clock.advance(15)  # offline again: the clock starts again
    assert home.check_hosts(lambda url: online.get(url, True), "alpha", HOME, lost_after=20.0) == []


def test_a_job_on_the_home_host_is_never_judged_lost_even_when_its_url_changed() -> None:
    clock = Clock()
    home = tracked(clock)
    home.update(JobUpdateRequest("job-1", "agent-1", 1, JOB_RUNNING, "alpha", "http://127.0.0.1:9999"))
    clock.advance(100)
    assert home.check_hosts(lambda name: False, "alpha", HOME, lost_after=20.0) == []


def test_without_a_restart_state_a_lost_job_fails_and_says_why() -> None:
    clock = Clock()
    home = tracked(clock, state=b"x" * (MAX_RESTART_STATE + 1))
    assert not home.jobs["job-1"].restartable
    _, lost = home.update(update(LOST, error="gone"))
    assert lost is not None
    assert not lost.restart
    assert home.jobs["job-1"].error == "lost: gone (no restart state)"


def test_cancelled_jobs_are_told_to_stop() -> None:
    clock = Clock()
    home = tracked(clock)
    (cancelled,) = home.cancel(("job-1",), (), False)
    assert cancelled.status == JOB_CANCELLED
    reply, _ = home.update(update(JOB_RUNNING))
    assert (reply.proceed, reply.reason) == (False, "cancelled")
    assert home.cancel((), (), True) == []  # finished ones stay as they are
