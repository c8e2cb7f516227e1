"""Crash consistency of a whole host: SIGKILL during deactivations, queued appends and activations.

A ``paglets-host`` CLI process runs on its own persistence directory. Eight drivers (threads of this
process, one paglet each, over HTTP) create ``Counter`` paglets, send them ``add`` (n=1), deactivate them
with a policy that queues messages without activating (some also ``activate_on_startup``), queue ``add``
messages while they are inactive and activate them again, until a timer SIGKILLs the host 20-400 ms into
the round. The host is restarted on the same directory and checked against the model of
``_crash_driver`` (module docstring there):

- every paglet id is listed at most once (``GET /agents?state=all``) and no unknown id appears;
- a paglet whose last acknowledged operation left it inactive is present, one that was active is absent
  (active paglets die with their host, contract §5.7), and the one operation in flight may have happened
  or not; a present paglet's ``count`` + queued messages equals its value before or after that operation
  (read with ``GET /agents/{id}/state``, which also reads inactive records); paglets that came back
  active at startup are read once the queue they drained is through;
- nothing is quarantined (no ``record-quarantined`` event, no quarantine directory), no temporary file
  survives, one ``.rec`` file per inactive paglet;
- no process of the killed host survives (its zygote and paglets die with it: checked on /proc by an
  environment marker every one of them inherits, and by the host's process tree just before the kill).

Drivers sometimes wait for the queue drained at an activation to be applied and sometimes go on at
once, so deactivations (and kills) also come in the middle of a drain.

After the last round every paglet is activated in calm conditions: the ``activate`` event reports exactly
the messages known to be queued, and once they are drained ``count`` equals the value: every queued message
applied exactly once.

Two deterministic regression tests follow: a deactivation in the middle of a drain, killed right after
its reply or as soon as its record exists, keeps every queued message.
"""

from __future__ import annotations

import os
import random
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from _crash_driver import (
    DRAIN_TIMEOUT,
    QUEUEING_POLICY,
    KillableHost,
    PagletModel,
    Slot,
    alive,
    join_all,
    marked_processes,
    start_drivers,
    suppress_close,
)
from conftest import children_of, wait_until

from paglets.core.errors import PagletError
from paglets.core.messages import Message
from paglets.remote.client import HostClient

#: Kill-and-restart rounds (each about a second: host start ~0.5 s, drive <= 0.4 s, checks).
ROUNDS = 20
#: Paglets driven at a time (one driver thread each).
SLOTS = 8
#: The kill comes this many seconds after the drivers start (uniformly at random).
KILL_AFTER = (0.02, 0.4)
SEED = 0x5EED_C4A5
#: Seconds for the drivers to notice the kill, and for the killed host's processes to disappear.
AFTER_KILL_TIMEOUT = 30.0


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_sigkill_during_deactivation_queueing_and_activation(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    directory = tmp_path / "store"
    log = tmp_path / "host.log"
    client = HostClient(timeout=30)
    slots = [Slot(i) for i in range(SLOTS)]
    gone: set[str] = set()
    host: KillableHost | None = None
    try:
        for round_no in range(ROUNDS):
            host = KillableHost(directory, log)
            if round_no:
                _verify(client, host, directory, slots, gone, round_no)
            _problems(slots)
            doomed = _drive_until_killed(host, slots, rng)
            _problems(slots)
            _assert_processes_end(host.marker, doomed)
            host = None

        host = KillableHost(directory, log)
        _verify(client, host, directory, slots, gone, ROUNDS)
        _activate_all_and_check(client, host, slots)
        host.close()
        _assert_processes_end(host.marker, set())
        host = None
    finally:
        suppress_close(host)
        client.close()

    cut = Counter[str]()
    done = Counter[str]()
    for slot in slots:
        cut.update(slot.cut)
        done.update(slot.done)
    # the kills did land in the middle of each kind of durable operation at least once
    assert {"deactivate", "append", "activate"} <= set(cut), (cut, done)


def _drive_until_killed(host: KillableHost, slots: list[Slot], rng: random.Random) -> set[int]:
    """Run the drivers until a timer SIGKILLs the host; returns the host's process tree at the kill."""
    dying = threading.Event()
    threads = start_drivers(slots, host.url, rng, dying)
    doomed: set[int] = set()

    def kill() -> None:
        doomed.update(children_of(host.pid))
        dying.set()
        host.kill()

    # the kill delay counts from the moment the drivers are under way (one acknowledged operation per
    # driver on average), so that a slow start of the host on a loaded machine cannot swallow the round
    before = _acknowledged(slots)
    wait_until(lambda: _acknowledged(slots) - before >= len(slots) or _any_problem(slots), AFTER_KILL_TIMEOUT)
    timer = threading.Timer(rng.uniform(*KILL_AFTER), kill)
    timer.start()
    timer.join()
    host.close()
    join_all(threads, AFTER_KILL_TIMEOUT)
    return doomed


def _acknowledged(slots: list[Slot]) -> int:
    return sum(sum(slot.done.values()) for slot in slots)


def _any_problem(slots: list[Slot]) -> bool:
    return any(slot.problems for slot in slots)


def _assert_processes_end(marker: str, pids: set[int]) -> None:
    """No process of a killed host survives it (zygote and paglets die with it), within a deadline."""

    def ended() -> bool:
        return not (marked_processes(marker) | alive(pids))

    wait_until(ended, AFTER_KILL_TIMEOUT)


def _problems(slots: list[Slot]) -> None:
    problems = [p for slot in slots for p in slot.problems]
    assert not problems, problems


def _verify(
    client: HostClient, host: KillableHost, directory: Path, slots: list[Slot], gone: set[str], round_no: int
) -> None:
    """Check a restarted host against the model, then settle the model on what was found."""
    url = host.url
    listed = client.get_json(url + "/agents?state=all")["agents"]
    ids = Counter(a["agent_id"] for a in listed)
    assert [i for i, n in ids.items() if n > 1] == [], f"round {round_no}: listed twice: {listed}"
    known = {s.paglet.agent_id for s in slots if s.paglet is not None}
    assert set(ids) <= known, (
        f"round {round_no}: unknown or resurrected ids {set(ids) - known} (gone: {gone})"
    )
    events = _events(client, url)
    assert [e for e in events if e["kind"] == "record-quarantined"] == [], events
    assert [e for e in events if e["kind"] == "paglet-crashed"] == [], events
    activated = {e["agent_id"]: e["data"]["queued_message_count"] for e in events if e["kind"] == "activate"}
    by_id = {a["agent_id"]: a for a in listed}

    for slot in slots:
        paglet = slot.paglet
        if paglet is None:
            continue
        entry = by_id.get(paglet.agent_id)
        allowed = paglet.outcomes()
        observed: int | None = None
        queued: int | None = None
        if entry is not None:
            assert not entry.get("crashed"), entry
            if entry["active"]:  # came back at startup: read it once its drained queue is through
                assert paglet.agent_id in activated, (entry, events)
                observed = _drained_count(client, url, paglet.agent_id, activated[paglet.agent_id])
            else:
                state = client.get_json(f"{url}/agents/{paglet.agent_id}/state")
                queued = state["queued_message_count"]
                observed = state["state"]["count"] + queued
        assert observed in allowed, (
            f"round {round_no}: paglet {paglet.agent_id} found with value {observed} "
            f"({'absent' if entry is None else entry}); allowed {sorted(allowed, key=str)} for {paglet}"
        )
        if observed is None:
            gone.add(paglet.agent_id)
            slot.paglet = None
        else:
            assert entry is not None
            found = PagletModel(paglet.agent_id, observed, active=entry["active"], queued=queued)
            found.drained = entry["active"]  # a paglet back at startup was read after its drain
            found.history = paglet.history
            found.note(f"round {round_no}: found {'active' if entry['active'] else 'inactive'}, {observed}")
            slot.paglet = found

    inactive = sum(1 for a in listed if not a["active"])
    names = os.listdir(directory / "inactive")
    assert sum(1 for n in names if n.endswith(".rec")) == inactive, names
    assert [n for n in names if n != ".lock" and not n.endswith((".rec", ".q"))] == [], names
    quarantine = directory / "quarantine"
    assert not quarantine.exists() or os.listdir(quarantine) == [], os.listdir(quarantine)


def _events(client: HostClient, url: str, since: int = 0) -> list[dict[str, Any]]:
    """Every event of the host after ``since``, oldest first (paged: one call returns at most 1000)."""
    out: list[dict[str, Any]] = []
    while True:
        page = client.get_json(f"{url}/events?since={since}&limit=1000")["events"]
        out.extend(page)
        if len(page) < 1000:
            return out
        since = page[-1]["event_id"]


def _drained_count(client: HostClient, url: str, agent_id: str, queued: int) -> int:
    """``count`` of an active paglet once the ``queued`` messages drained at its activation are done."""
    mailbox: dict[str, Any] = {}

    def drained() -> bool:
        mailbox.update(client.get_json(f"{url}/agents/{agent_id}")["mailbox"])
        through: bool = mailbox["delivered_count"] + mailbox["failed_count"] >= queued
        return through and mailbox["queued_count"] == 0 and mailbox["in_flight_count"] == 0

    wait_until(drained, DRAIN_TIMEOUT)
    assert mailbox["failed_count"] == 0, mailbox
    count: int = client.get_json(f"{url}/agents/{agent_id}/state")["state"]["count"]
    return count


def _activate_all_and_check(client: HostClient, host: KillableHost, slots: list[Slot]) -> None:
    """Calm activation of every inactive paglet: exactly the queued messages are applied, once each."""
    url = host.url
    since = max((e["event_id"] for e in _events(client, url)), default=0)
    inactive = [s.paglet for s in slots if s.paglet is not None and not s.paglet.active]
    assert inactive, "no paglet survived to the end"
    for paglet in inactive:
        client.post_json(f"{url}/agents/{paglet.agent_id}/activate", {})
    events = _events(client, url, since)
    activated = {e["agent_id"]: e["data"]["queued_message_count"] for e in events if e["kind"] == "activate"}
    for paglet in inactive:
        assert activated.get(paglet.agent_id) == paglet.queued, (paglet, activated)
        assert paglet.queued is not None
        count = _drained_count(client, url, paglet.agent_id, paglet.queued)
        assert count == paglet.value, (paglet, count)


# --- deactivation while the queue drained at activation is still running ------------------------------
# Regression tests: the record written by such a deactivation must hold, in the same atomic write, the
# queued messages the paglet has not received yet. It once got only the state, and the messages were
# queued again one by one afterwards (after the reply): a kill in between lost acknowledged messages.

#: ``add`` messages queued behind the blocking one: the deactivation must carry them into its record.
BEHIND = 50
#: Seconds the first drained message blocks its handler, so that the deactivation comes mid-drain.
BLOCK = 0.3


def _queued_then_activated(client: HostClient, host: KillableHost) -> str:
    """A paglet with ``block`` + ``BEHIND`` adds queued while inactive, activated, its drain blocked."""
    agent_id: str = client.post_json(host.url + "/agents", {"agent_class_name": "_paglets:Counter"})["proxy"][
        "agent_id"
    ]
    base = f"{host.url}/agents/{agent_id}"
    client.post_json(base + "/deactivate", {"request": {"policy": QUEUEING_POLICY}})
    client.post_json(base + "/messages", {"message": Message("block", arg=BLOCK).to_wire()})
    for _ in range(BEHIND):
        client.post_json(base + "/messages", {"message": Message("add", {"n": 1}).to_wire()})
    assert client.get_json(base + "/state")["queued_message_count"] == BEHIND + 1
    client.post_json(base + "/activate", {})
    # the drain hands the messages over one at a time: while ``block`` runs, the adds all wait
    wait_until(lambda: client.get_json(base)["mailbox"]["in_flight_count"] == 1, 10, interval=0.001)
    return agent_id


def _value_after_restart(client: HostClient, directory: Path, log: Path, agent_id: str) -> int:
    host = KillableHost(directory, log)
    try:
        state = client.get_json(f"{host.url}/agents/{agent_id}/state")
        value: int = state["state"]["count"] + state["queued_message_count"]
        return value
    finally:
        host.close()


@pytest.mark.timeout(120)
def test_deactivation_during_a_drain_acknowledged_then_killed(tmp_path: Path) -> None:
    directory, log = tmp_path / "store", tmp_path / "host.log"
    client = HostClient(timeout=30)
    host = KillableHost(directory, log)
    try:
        agent_id = _queued_then_activated(client, host)
        client.post_json(f"{host.url}/agents/{agent_id}/deactivate", {"request": {"policy": QUEUEING_POLICY}})
        host.close()  # SIGKILL right after the acknowledgement
        assert _value_after_restart(client, directory, log, agent_id) == BEHIND
    finally:
        host.close()
        client.close()


@pytest.mark.timeout(120)
def test_deactivation_during_a_drain_killed_once_the_record_exists(tmp_path: Path) -> None:
    directory, log = tmp_path / "store", tmp_path / "host.log"
    client = HostClient(timeout=30)
    host = KillableHost(directory, log)
    caller: threading.Thread | None = None
    try:
        agent_id = _queued_then_activated(client, host)
        url = f"{host.url}/agents/{agent_id}/deactivate"

        def deactivate() -> None:
            other = HostClient(timeout=30)
            try:
                other.post_json(url, {"request": {"policy": QUEUEING_POLICY}})
            except PagletError:
                pass  # cut by the kill
            finally:
                other.close()

        caller = threading.Thread(target=deactivate)
        caller.start()
        records = directory / "inactive"
        wait_until(lambda: any(n.endswith(".rec") for n in os.listdir(records)), 10, interval=0.0005)
        host.close()  # SIGKILL as soon as the deactivation's record exists
        # the new record exists, so the paglet is there, and with every message it had not received yet
        assert _value_after_restart(client, directory, log, agent_id) == BEHIND
    finally:
        host.close()
        if caller is not None:
            caller.join(30)
        client.close()
