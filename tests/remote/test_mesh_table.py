"""The member table's rules on a fake clock: states and incarnations, suspicion timeouts, ages, backoff,
version gate, bounds."""

from __future__ import annotations

import random
from typing import Any

import pytest

from paglets.remote._mesh_table import NOT_CONTACTED_ERROR, STALE_ERROR, PeerTable
from paglets.remote._mesh_updates import ALIVE, DEAD, SUSPECT, Update
from paglets.remote.mesh import HostRef

A, B, C = "http://a:1", "http://b:1", "http://c:1"
SELF = "http://self:1"
SUSPICION_MIN, SUSPICION_MAX = 2.0, 8.0


def table(**overrides: Any) -> PeerTable:
    options: dict[str, Any] = {
        "code_version": "v1",
        "suspicion_min": SUSPICION_MIN,
        "suspicion_max": SUSPICION_MAX,
        "forget_after": 100.0,
        "max_hosts": 64,
        "max_rejected": 4,
        "backoff": lambda failures: 2.0**failures,
    }
    options.update(overrides)
    t = PeerTable(**options)
    t.self_url = SELF
    return t


def ref(url: str, *, version: str = "v1", online: bool = True, age: float | None = 0.0, **kw: Any) -> HostRef:
    name = kw.pop("name", url.split("//")[1].split(":")[0])
    return HostRef(name, url, version, online, kw.pop("last_seen", 0.0), 0, 0, age=age, **kw)


def upd(url: str, incarnation: int | None, state: str = ALIVE, by: str | None = None, **kw: Any) -> Update:
    return Update(ref(url, **kw), incarnation, state, by)


def view(t: PeerTable, url: str, now: float) -> HostRef:
    found = t.lookup(url, now, 1_000_000.0)
    assert found is not None, url
    return found


def test_alive_updates_win_by_incarnation_only() -> None:
    t = table()
    assert t.apply(upd(A, 5), base=0.0, now=0.0) is not None  # new: passed on
    assert view(t, A, 0.0).online
    assert t.apply(upd(A, 5), base=1.0, now=1.0) is None  # nothing new: not passed on
    assert t.apply(Update(ref(A).replace(active_count=9), 4), base=1.0, now=1.0) is None  # older: ignored
    assert view(t, A, 1.0).active_count == 0
    newer = Update(ref(A).replace(active_count=3), 6, ALIVE)
    assert t.apply(newer, base=2.0, now=2.0) is not None
    assert view(t, A, 2.0).active_count == 3
    assert t.incarnation(A) == 6


def test_suspicion_times_out_into_dead_unless_refuted() -> None:
    t = table()
    for url in (A, B, C):
        t.apply(upd(url, 1), base=0.0, now=0.0)
    assert t.apply(upd(A, 1, SUSPECT, by=B), base=1.0, now=1.0) is not None
    assert view(t, A, 1.0).online  # a suspect is still online
    # three members besides us: K = min(3, 4 - 2) = 2 expected confirmations; none so far
    assert t.sweep(1.0 + SUSPICION_MAX - 0.1) == []
    assert t.apply(upd(A, 1, SUSPECT, by=B), base=2.0, now=2.0) is None  # the same reporter again
    t.apply(upd(A, 1, SUSPECT, by=C), base=2.0, now=2.0)  # a first confirmation
    spread = t.suspect(A, now=2.5)  # our own probe failed too: a second one, spread as ours
    assert spread is not None
    assert spread.by == SELF
    assert t.suspect(A, now=2.6) is None
    dead = t.sweep(1.0 + SUSPICION_MIN)
    assert [(u.url, u.state, u.incarnation) for u in dead] == [(A, DEAD, 1)]
    assert not view(t, A, 3.0).online
    assert view(t, A, 3.0).error == STALE_ERROR
    # B is suspected too, and refutes with a higher incarnation before its timer runs out
    t.apply(upd(B, 1, SUSPECT, by=C), base=3.0, now=3.0)
    t.apply(upd(B, 2), base=4.0, now=4.0)
    assert t.sweep(100.0 - 1) == []
    assert view(t, B, 50.0).online


def test_suspicion_runs_for_the_longest_timeout_without_confirmations() -> None:
    t = table()
    for url in (A, B, C, "http://d:1"):
        t.apply(upd(url, 0), base=0.0, now=0.0)
    assert t.suspect(A, now=10.0) is not None
    assert t.suspect(A, now=10.5) is None  # already suspected
    assert t.sweep(10.0 + SUSPICION_MAX - 0.01) == []
    assert [u.url for u in t.sweep(10.0 + SUSPICION_MAX)] == [A]


def test_dead_updates_need_an_incarnation_at_least_as_new() -> None:
    t = table()
    t.apply(upd(A, 3), base=0.0, now=0.0)
    assert t.apply(upd(A, 2, DEAD), base=1.0, now=1.0) is None  # stale news of a death
    assert view(t, A, 1.0).online
    assert t.apply(upd(A, 3, DEAD), base=1.0, now=1.0) is not None
    assert not view(t, A, 1.0).online
    assert t.apply(upd(A, 3), base=2.0, now=2.0) is None  # alive needs a higher incarnation
    assert t.apply(upd(A, 4), base=2.0, now=2.0) is not None
    assert view(t, A, 2.0).online
    assert t.apply(upd(B, 9, DEAD), base=2.0, now=2.0) is None  # a death never introduces a host
    assert t.lookup(B, 2.0, 0.0) is None


def test_direct_contact_is_the_best_evidence() -> None:
    t = table()
    t.apply(upd(A, 3, DEAD), base=0.0, now=0.0)  # unknown + dead: ignored
    t.apply(upd(A, 3), base=0.0, now=0.0)
    t.apply(upd(A, 3, DEAD), base=0.0, now=0.0)
    assert not view(t, A, 0.0).online
    spread = t.direct(A, ref(A), 3, now=1.0)  # it answered us: alive, whatever others said
    assert spread is not None
    assert spread.state == ALIVE
    assert view(t, A, 1.0).online
    accepted, spread = t.inbound(ref(B), 7, now=2.0)  # a request from B itself
    assert accepted
    assert spread is not None
    assert spread.incarnation == 7
    assert t.inbound(ref(B), 7, now=3.0) == (True, None)  # not news


def test_report_age_counts_back_from_the_send_time() -> None:
    t = table()
    t.apply(upd(A, 1, age=4.0), base=100.0, now=100.5)
    assert view(t, A, 100.5).age == pytest.approx(4.5)
    assert view(t, A, 500.0).online  # the state decides, not the age


def test_remote_wall_clock_is_ignored() -> None:
    t = table()
    t.apply(upd(A, 1, age=0.1, last_seen=1.0), base=50.0, now=50.0)  # last_seen in 1970
    assert view(t, A, 55.0).online
    # last_seen we publish is *our* wall clock minus the age
    assert view(t, A, 50.0).last_seen == pytest.approx(1_000_000.0 - 0.1)


def test_legacy_refs_introduce_hosts_but_carry_no_state() -> None:
    t = table()
    t.apply(upd(A, None, age=None), base=0.0, now=0.0)  # a paglets 2.0 reporter: introduces A only
    a = view(t, A, 0.0)
    assert not a.online
    assert a.error == NOT_CONTACTED_ERROR
    assert t.reconnects_due(0.0, force=False, limit=8) == [A]
    t.apply(upd(B, None, online=False), base=0.0, now=0.0)  # an offline legacy ref introduces nothing
    assert t.lookup(B, 0.0, 0.0) is None
    t.apply(upd(C, None, age=0.0), base=0.0, now=0.0)  # with an age (register()): a member
    assert view(t, C, 0.0).online


def test_mark_offline_holds_until_we_reach_the_peer() -> None:
    t = table()
    t.direct(A, ref(A), 1, now=0.0)
    t.mark_offline(A, "dispatch failed", now=1.0)
    down = view(t, A, 1.0)
    assert not down.online
    assert down.error == "dispatch failed"
    t.apply(upd(A, 2), base=1.5, now=1.5)  # others hear it: still unreachable for us
    assert not view(t, A, 1.5).online
    assert t.reconnects_due(1.5, force=False, limit=8) == [A]  # ... so we contact it ourselves
    t.direct(A, ref(A), 2, now=2.0)
    assert view(t, A, 2.0).online


def test_backoff_grows_with_consecutive_failures() -> None:
    t = table()
    t.add_seed(A, 0.0)
    now = 0.0
    attempts = []
    while now < 60.0:
        if t.reconnects_due(now, force=False, limit=8):
            attempts.append(now)
            t.failed(A, "down", now)
        now += 0.25
    # backoff 2, 4, 8, 16, 32 s: 5 attempts in a minute instead of 240
    assert attempts == [0.0, 2.0, 6.0, 14.0, 30.0]
    listed = view(t, A, now)
    assert not listed.online
    assert listed.error == "down"  # a failing seed is listed, offline, with the error
    assert t.reconnects_due(now, force=True, limit=8) == [A]


def test_a_failed_request_to_a_live_member_leaves_the_verdict_to_the_protocol() -> None:
    t = table()
    t.direct(A, ref(A), 1, now=0.0)
    t.failed(A, "timed out", now=1.0)
    assert view(t, A, 1.0).online
    assert t.reconnects_due(1.0, force=False, limit=8) == []


def test_probe_targets_are_a_shuffled_round_robin_of_live_members() -> None:
    t = table()
    for url in (A, B, C):
        t.direct(url, ref(url), 1, now=0.0)
    t.add_seed("http://never:1", 0.0)  # not a member: reconnected, never probed
    rng = random.Random(4)
    first = [t.next_probe_target(rng) for _ in range(3)]
    second = [t.next_probe_target(rng) for _ in range(3)]
    assert sorted(first) == sorted(second) == [A, B, C]  # each member exactly once per round
    assert table().next_probe_target(rng) is None


def test_version_gate() -> None:
    t = table()
    t.apply(upd(A, 1, version="v2"), base=0.0, now=0.0)
    assert t.inbound(ref(B, version="v2"), 1, now=0.0) == (False, None)
    assert t.lookup(A, 0.0, 0.0) is None
    assert t.lookup(B, 0.0, 0.0) is None
    assert t.views(0.0, 0.0) == []
    assert [r.url for r in t.rejected()] == [A, B]
    assert "differs" in (t.rejected()[0].error or "")
    events, _ = t.drain()
    assert [kind for kind, _ in events] == ["mesh-host-rejected", "mesh-host-rejected"]
    for i in range(10):  # the rejected list is bounded, oldest first out
        t.apply(upd(f"http://r{i}:1", 1, version="v9"), base=0.0, now=0.0)
    assert len(t.rejected()) == 4


def test_a_refused_seed_stays_hidden_and_is_retried() -> None:
    t = table()
    t.add_seed(A, 0.0)
    t.direct(A, ref(A, version="v2"), 1, now=0.0)  # answered with another code version
    assert t.views(0.0, 0.0) == []
    assert t.seeds() == [A]
    assert t.reconnects_due(0.5, force=False, limit=8) == []  # backing off
    assert t.reconnects_due(2.5, force=False, limit=8) == [A]
    t.direct(A, ref(A, version="v1"), 1, now=2.5)  # upgraded
    assert view(t, A, 2.5).online
    assert t.rejected() == []


def test_a_member_that_changes_version_leaves() -> None:
    t = table()
    t.direct(A, ref(A), 1, now=0.0)
    t.drain()
    t.direct(A, ref(A, version="v2"), 2, now=1.0)
    assert t.lookup(A, 1.0, 0.0) is None
    assert [kind for kind, _ in t.drain()[0]] == ["mesh-host-offline", "mesh-host-rejected"]


def test_forget_long_dead_non_seeds_but_keep_seeds() -> None:
    t = table(forget_after=30.0)
    t.add_seed(A, 0.0)
    t.apply(upd(B, 1), base=0.0, now=0.0)
    t.apply(upd(B, 1, DEAD), base=1.0, now=1.0)
    t.sweep(20.0)
    assert sorted(t.urls()) == [A, B]
    t.sweep(35.0)
    assert t.urls() == [A]
    assert t.counts(35.0).dropped == 1


def test_table_is_bounded() -> None:
    t = table(max_hosts=3)
    t.add_seed(A, 0.0)
    t.apply(upd(B, 1), base=0.0, now=0.0)
    t.apply(upd(C, 1), base=0.0, now=0.0)
    t.apply(upd("http://d:1", 1), base=0.0, now=0.0)  # full, nothing evictable
    assert sorted(t.urls()) == [A, B, C]
    t.apply(upd(B, 1, DEAD), base=10.0, now=10.0)
    t.apply(upd("http://e:1", 1), base=20.0, now=20.0)  # B is dead now: it goes
    assert sorted(t.urls()) == [A, C, "http://e:1"]
    assert t.counts(20.0).dropped == 2


def test_alias_seed_resolves_to_the_published_url() -> None:
    t = table()
    t.add_seed("http://localhost:1", 0.0)
    t.direct("http://localhost:1", ref(A, name="alpha"), 1, now=0.0)
    assert [r.url for r in t.views(0.0, 0.0)] == [A]
    assert view(t, "http://localhost:1", 0.0).url == A
    assert t.reconnects_due(1.0, force=False, limit=8) == []  # the alias is not contacted while A is up
    assert t.next_probe_target(random.Random(1)) == A
    t.apply(upd(A, 1, DEAD), base=1.0, now=1.0)
    assert sorted(t.reconnects_due(9.0, force=False, limit=8)) == [A, "http://localhost:1"]


def test_lookup_by_name_prefers_online() -> None:
    t = table()
    t.apply(upd(A, 1, name="twin"), base=0.0, now=0.0)
    t.apply(upd(B, 1, name="twin"), base=0.0, now=0.0)
    t.mark_offline(A, "down", now=0.5)
    assert view(t, "twin", 0.5).url == B


def test_events_and_news() -> None:
    t = table()
    t.apply(upd(A, 1), base=0.0, now=0.0)
    events, news = t.drain()
    assert news
    assert events == [("mesh-host-online", {"name": "a", "url": A, "code_version": "v1"})]
    t.apply(upd(A, 1, SUSPECT, by=B), base=1.0, now=1.0)
    assert t.drain() == ([], False)  # a suspicion is not an event
    t.sweep(20.0)
    events, news = t.drain()
    assert [(kind, data["error"]) for kind, data in events] == [("mesh-host-offline", STALE_ERROR)]
    assert not news


def test_what_we_hold_against_a_member_is_told_to_it() -> None:
    t = table()
    t.apply(upd(A, 4), base=0.0, now=0.0)
    assert t.about(A) is None
    t.suspect(A, now=1.0)
    about = t.about(A)
    assert about is not None
    assert (about.state, about.incarnation, about.by) == (SUSPECT, 4, SELF)


def test_self_is_never_an_entry() -> None:
    t = table()
    t.apply(upd(SELF, 1), base=0.0, now=0.0)
    assert t.inbound(ref(SELF), 1, now=0.0) == (True, None)
    t.add_seed(SELF, 0.0)
    t.sweep(0.0)
    assert t.urls() == []
