"""The peer table's rules on a fake clock: evidence, ages, backoff, skips, version gate, bounds."""

from __future__ import annotations

from typing import Any

import pytest

from paglets.remote._mesh_table import NOT_CONTACTED_ERROR, STALE_ERROR, PeerTable
from paglets.remote.mesh import HostRef

A, B, C = "http://a:1", "http://b:1", "http://c:1"
SELF = "http://self:1"
OFFLINE_AFTER = 10.0


def table(**overrides: Any) -> PeerTable:
    options: dict[str, Any] = {
        "code_version": "v1",
        "offline_after": OFFLINE_AFTER,
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


def view(t: PeerTable, url: str, now: float) -> HostRef:
    found = t.lookup(url, now, 1_000_000.0)
    assert found is not None, url
    return found


def test_report_age_counts_back_from_the_send_time() -> None:
    t = table()
    t.report(ref(A, age=4.0), base=100.0, now=100.5)
    assert view(t, A, 100.5).online
    assert view(t, A, 100.5).age == pytest.approx(4.5)
    assert view(t, A, 106.0).online  # heard at 96.0, offline_after 10
    stale = view(t, A, 106.1)
    assert not stale.online
    assert stale.error == STALE_ERROR


def test_remote_wall_clock_is_ignored() -> None:
    """A reporter whose wall clock is an hour off does not make a fresh peer stale, or a stale one fresh."""
    t = table()
    t.report(ref(A, age=0.1, last_seen=1.0), base=50.0, now=50.0)  # last_seen in 1970
    t.report(ref(B, age=60.0, last_seen=9e9), base=50.0, now=50.0)  # last_seen far in the future
    assert view(t, A, 55.0).online
    assert not view(t, B, 55.0).online
    # last_seen we publish is *our* wall clock minus the age
    assert view(t, A, 50.0).last_seen == pytest.approx(1_000_000.0 - 0.1)


def test_reports_without_age_or_offline_carry_no_evidence() -> None:
    t = table()
    t.report(ref(A, age=None), base=0.0, now=0.0)  # a paglets 2.0 reporter: introduces A only
    a = view(t, A, 0.0)
    assert not a.online
    assert a.error == NOT_CONTACTED_ERROR
    assert t.due(0.0, skip_window=1.0, force=False) == [A]
    t.report(ref(B, online=False), base=0.0, now=0.0)  # an offline report never introduces a host
    assert t.lookup(B, 0.0, 0.0) is None
    t.report(ref(A, online=False, age=0.0), base=1.0, now=1.0)  # nor refreshes one
    assert not view(t, A, 1.0).online


def test_direct_failure_beats_fresh_reports_until_we_reach_the_peer() -> None:
    t = table()
    t.contact_succeeded(A, ref(A), now=0.0)
    assert view(t, A, 0.0).online
    t.contact_failed(A, "connection refused", now=1.0)
    failed = view(t, A, 1.0)
    assert not failed.online
    assert failed.error == "connection refused"
    assert t.due(1.5, skip_window=1.0, force=False) == []  # backing off (2 s)
    t.report(ref(A, age=0.0), base=2.0, now=2.0)  # someone else heard A after our failure
    assert not view(t, A, 2.0).online  # still unreachable for us ...
    assert t.due(2.0, skip_window=1.0, force=False) == [A]  # ... but the backoff is reset: probe now
    t.contact_succeeded(A, ref(A), now=2.1)
    assert view(t, A, 2.1).online


def test_backoff_grows_with_consecutive_failures() -> None:
    t = table()
    t.add_seed(A, 0.0)
    now = 0.0
    attempts = []
    while now < 60.0:
        if t.due(now, skip_window=1.0, force=False):
            attempts.append(now)
            t.contact_failed(A, "down", now)
        now += 0.25
    # backoff 2, 4, 8, 16, 32 s: 5 attempts in a minute instead of 240
    assert attempts == [0.0, 2.0, 6.0, 14.0, 30.0]
    listed = view(t, A, now)
    assert not listed.online
    assert listed.error == "down"  # a failing seed is listed, offline, with the error


def test_a_recent_join_from_a_peer_skips_our_heartbeat_unless_forced() -> None:
    t = table()
    t.inbound(ref(A), now=10.0)
    assert view(t, A, 10.0).online
    assert t.due(10.5, skip_window=1.5, force=False) == []
    assert t.due(10.5, skip_window=1.5, force=True) == [A]
    assert t.due(11.6, skip_window=1.5, force=False) == [A]
    # a peer we failed to reach is never skipped, even if it keeps joining us
    t.contact_failed(A, "refused", now=12.0)
    t.inbound(ref(A), now=12.1)
    assert not view(t, A, 12.1).online
    assert t.due(12.2, skip_window=1.5, force=False) == [A]


def test_version_gate() -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    t = table()
    t.report(ref(A, version="v2"), base=0.0, now=0.0)
    assert t.inbound(ref(B, version="v2"), now=0.0) is False
    assert t.lookup(A, 0.0, 0.0) is None
    assert t.lookup(B, 0.0, 0.0) is None
    assert t.views(0.0, 0.0) == []
    assert [r.url for r in t.rejected()] == [A, B]
    assert "differs" in (t.rejected()[0].error or "")
    drained, _ = t.drain()
    events.extend(drained)
    assert [kind for kind, _ in events] == ["mesh-host-rejected", "mesh-host-rejected"]
    # the rejected list is bounded, oldest first out
    for i in range(10):
        t.report(ref(f"http://r{i}:1", version="v9"), base=0.0, now=0.0)
    assert len(t.rejected()) == 4


def test_a_refused_seed_stays_hidden_and_is_retried() -> None:
    t = table()
    t.add_seed(A, 0.0)
    t.contact_succeeded(A, ref(A, version="v2"), now=0.0)  # answered with another code version
    assert t.views(0.0, 0.0) == []
    assert t.seeds() == [A]
    assert t.due(0.5, skip_window=1.0, force=False) == []  # backing off
    assert t.due(2.5, skip_window=1.0, force=False) == [A]
    t.contact_succeeded(A, ref(A, version="v1"), now=2.5)  # upgraded
    assert view(t, A, 2.5).online
    assert t.rejected() == []


def test_a_member_that_changes_version_leaves() -> None:
    t = table()
    t.contact_succeeded(A, ref(A), now=0.0)
    t.drain()
    t.contact_succeeded(A, ref(A, version="v2"), now=1.0)
    assert t.lookup(A, 1.0, 0.0) is None
    assert [kind for kind, _ in t.drain()[0]] == ["mesh-host-offline", "mesh-host-rejected"]


def test_forget_long_offline_non_seeds_but_keep_seeds() -> None:
    t = table(forget_after=30.0)
    t.add_seed(A, 0.0)
    t.report(ref(B, age=0.0), base=0.0, now=0.0)
    t.sweep(35.0)
    assert t.urls() == [A]
    assert t.counts(35.0).dropped == 1


def test_table_is_bounded() -> None:
    t = table(max_hosts=3)
    t.add_seed(A, 0.0)
    t.report(ref(B, age=0.0), base=0.0, now=0.0)
    t.report(ref(C, age=0.0), base=0.0, now=0.0)
    t.report(ref("http://d:1", age=0.0), base=0.0, now=0.0)  # full, nothing evictable
    assert sorted(t.urls()) == [A, B, C]
    t.report(ref("http://e:1", age=0.0), base=20.0, now=20.0)  # B and C stale now: B (older) goes
    assert sorted(t.urls()) == [A, C, "http://e:1"]
    assert t.counts(20.0).dropped == 2


def test_alias_seed_resolves_to_the_published_url() -> None:
    t = table()
    t.add_seed("http://localhost:1", 0.0)
    t.contact_succeeded("http://localhost:1", ref(A, name="alpha"), now=0.0)
    listed = t.views(0.0, 0.0)
    assert [r.url for r in listed] == [A]
    assert view(t, "http://localhost:1", 0.0).url == A
    assert t.due(1.0, skip_window=1.0, force=False) == [A]  # the alias is not contacted while A is up
    t.contact_failed(A, "down", now=1.0)
    assert sorted(t.due(9.0, skip_window=1.0, force=False)) == [A, "http://localhost:1"]


def test_lookup_by_name_prefers_online() -> None:
    t = table()
    t.report(ref(A, name="twin", age=0.0), base=0.0, now=0.0)
    t.report(ref(B, name="twin", age=0.0), base=0.0, now=0.0)
    t.contact_failed(A, "down", now=0.5)
    assert view(t, "twin", 0.5).url == B


def test_events_and_news() -> None:
    t = table()
    t.report(ref(A, age=0.0), base=0.0, now=0.0)
    events, news = t.drain()
    assert news
    assert events == [("mesh-host-online", {"name": "a", "url": A, "code_version": "v1"})]
    t.report(ref(A, age=0.0), base=1.0, now=1.0)
    assert t.drain() == ([], False)
    t.sweep(20.0)
    events, news = t.drain()
    assert [(kind, data["error"]) for kind, data in events] == [("mesh-host-offline", STALE_ERROR)]
    assert not news


def test_a_dead_host_goes_offline_everywhere_despite_gossip_loops() -> None:
    """Ages only grow along reports, so a cycle of hosts cannot keep a dead host alive."""
    tables = [table(), table(), table()]
    tables[0].contact_succeeded(C, ref(C), now=0.0)  # the last time anyone hears C directly
    now = 0.0
    while now < 30.0:
        now += 0.5
        for i, t in enumerate(tables):  # each table tells the next one what it knows, around and around
            nxt = tables[(i + 1) % len(tables)]
            for wire in t.gossip(now, 0.0, 100):
                nxt.report(HostRef.from_wire(wire), base=now, now=now)
        online = [t.lookup(C, now, 0.0) for t in tables]
        if now > OFFLINE_AFTER:
            assert all(r is None or not r.online for r in online), now
    assert any(t.lookup(C, now, 0.0) is not None for t in tables)


def test_self_is_never_an_entry() -> None:
    t = table()
    t.report(ref(SELF, age=0.0), base=0.0, now=0.0)
    assert t.inbound(ref(SELF), now=0.0)
    t.add_seed(SELF, 0.0)
    t.sweep(0.0)
    assert t.urls() == []
