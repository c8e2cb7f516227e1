"""The built-in services' own rules: target ranking, snapshot merging, the user-info store and contracts."""

from __future__ import annotations

from dataclasses import replace

import pytest

from paglets.config.startup import bundled_launch_config_text, parse_launch_config, resolve_resident_services
from paglets.core.messages import Message
from paglets.serialization.codec import dataclass_from_wire, dataclass_to_wire
from paglets.services.builtin import mesh_info, server_info, user_info
from paglets.services.builtin.mesh_info import (
    MeshHostSnapshot,
    TargetSelectionRequest,
    merge_snapshot,
    rank_targets,
)
from paglets.services.builtin.user_info import (
    MAX_ENTRIES,
    UserInfoAgent,
    UserInfoReadRequest,
    UserInfoRequest,
    UserInfoState,
    UserInfoStreamRequest,
)

NOW = 1_000_000.0


def snap(name: str, **fields: object) -> MeshHostSnapshot:
    base: dict[str, object] = {
        "host_name": name,
        "host_url": f"http://{name}:1",
        "observed_at": NOW - 1,
        "cpu_count_logical": 4,
        "cpu_percent": 10.0,
        "load_average": [0.4, 0.4, 0.4],
        "load_per_cpu": 0.1,
        "memory_total_bytes": 8 << 30,
        "memory_available_bytes": 4 << 30,
        "memory_percent": 50.0,
        "work_total_bytes": 100 << 30,
        "work_free_bytes": 50 << 30,
        "work_percent_used": 50.0,
    }
    base.update(fields)
    return MeshHostSnapshot(**base)  # type: ignore[arg-type]


def test_targets_apply_every_limit_and_say_why() -> None:
    hosts = [
        snap("idle", cpu_percent=1.0, load_per_cpu=0.01),
        snap("busy", cpu_percent=95.0),
        snap("loaded", load_per_cpu=2.5),
        snap("small", memory_available_bytes=1 << 30),
        snap("full", work_free_bytes=1 << 20),
        snap("broken", errors=["load: boom"]),
        snap("old", observed_at=NOW - 100),
        snap("ok"),
    ]
    request = TargetSelectionRequest(
        limit=5,
        max_load_per_cpu=1.0,
        max_cpu_percent=90.0,
        min_memory_available_bytes=2 << 30,
        min_work_free_bytes=1 << 30,
    )
    targets, rejected = rank_targets(hosts, request, self_url="http://ok:1", now=NOW, max_age=30.0)
    assert [t.snapshot.host_name for t in targets] == ["idle", "ok"]
    assert targets[0].score < targets[1].score
    assert rejected == {
        "busy": "CPU 95.0% above 90.0%",
        "loaded": "load per CPU 2.50 above 1.00",
        "small": "available memory 1.0 GiB below 2.0 GiB",
        "full": "free work storage 0.0 GiB below 1.0 GiB",
        "broken": "snapshot has errors: load: boom",
        "old": "snapshot 100 s old (older than 30 s)",
    }
    excluded, why = rank_targets(
        hosts[-1:], replace(request, include_self=False), self_url="http://ok:1", now=NOW, max_age=30.0
    )
    assert excluded == []
    assert why == {"ok": "self excluded"}


def test_targets_are_limited_and_never_fall_back_to_rejected_hosts() -> None:
    hosts = [snap(f"h{i}", cpu_percent=float(i)) for i in range(6)]
    targets, _ = rank_targets(hosts, TargetSelectionRequest(limit=3), self_url="", now=NOW, max_age=30.0)
    assert [t.snapshot.host_name for t in targets] == ["h0", "h1", "h2"]
    none, rejected = rank_targets(
        hosts, TargetSelectionRequest(max_cpu_percent=-1.0), self_url="", now=NOW, max_age=30.0
    )
    assert none == []
    assert len(rejected) == 6


def test_merge_prefers_news_and_rebases_clocks() -> None:
    table: dict[str, MeshHostSnapshot] = {}
    first = snap("a", incarnation="i1", sequence=5, observed_at=NOW - 3)
    # the sender's clock is 100 s ahead: its times are moved onto ours
    assert merge_snapshot(table, replace(first, observed_at=NOW + 97), shift=-100.0, now=NOW, self_url="x")
    assert table["http://a:1"].observed_at == NOW - 3
    # an older or equal sequence of the same run is never news, whatever its time says
    assert not merge_snapshot(
        table, replace(first, sequence=4, observed_at=NOW), shift=0.0, now=NOW, self_url="x"
    )
    assert not merge_snapshot(table, first, shift=5.0, now=NOW, self_url="x")
    assert merge_snapshot(table, replace(first, sequence=6), shift=0.0, now=NOW, self_url="x")
    # a restarted service (new incarnation): the later observation wins
    restarted = snap("a", incarnation="i2", sequence=1, observed_at=NOW - 10)
    assert not merge_snapshot(table, restarted, shift=0.0, now=NOW, self_url="x")
    assert merge_snapshot(table, replace(restarted, observed_at=NOW - 1), shift=0.0, now=NOW, self_url="x")
    # times from the future are clamped to now
    assert merge_snapshot(table, snap("b", observed_at=NOW + 50), shift=0.0, now=NOW, self_url="x")
    assert table["http://b:1"].observed_at == NOW
    # another host's view of ourselves is ignored
    assert not merge_snapshot(table, snap("x", host_url="x/"), shift=0.0, now=NOW, self_url="x")


def test_merge_keeps_the_table_bounded() -> None:
    table: dict[str, MeshHostSnapshot] = {"me": snap("me", host_url="me", observed_at=0.0)}
    for i in range(10):
        merge_snapshot(
            table, snap(f"h{i}", observed_at=NOW - 100 + i), shift=0.0, now=NOW, self_url="me", max_size=4
        )
    assert len(table) == 4
    assert set(table) == {"me", "http://h7:1", "http://h8:1", "http://h9:1"}


def test_snapshot_wire_round_trip() -> None:
    original = snap("a", host_tags=["gpu"], host_properties={"rack": "3"}, errors=["x"])
    assert dataclass_from_wire(MeshHostSnapshot, dataclass_to_wire(original)) == original


def test_user_info_keeps_entries_in_order_and_reads_by_cursor_and_job() -> None:
    agent = UserInfoAgent(UserInfoState(echo=False))
    assert agent.notify(UserInfoRequest(title="t", message="one", job_id="j1")).seq == 1
    assert agent.stream(UserInfoStreamRequest(text="two\n", job_id="j2")).seq == 2
    assert agent.notify(UserInfoRequest(message="three\nlines\x1b[31m", job_id="j1")).seq == 3
    everything = agent.read(UserInfoReadRequest())
    assert [e.seq for e in everything.entries] == [1, 2, 3]
    assert everything.next_seq == 3
    assert not everything.dropped
    assert everything.entries[2].text == "three lines"  # one line, no terminal escapes
    assert everything.entries[1].kind == "stream"
    assert everything.entries[1].text == "two\n"
    job = agent.read(UserInfoReadRequest(job_id="j1"))
    assert [e.seq for e in job.entries] == [1, 3]
    page = agent.read(UserInfoReadRequest(limit=2))
    assert [e.seq for e in page.entries] == [1, 2]
    assert page.next_seq == 2
    assert agent.read(UserInfoReadRequest(since=page.next_seq)).entries[0].seq == 3
    assert agent.read(UserInfoReadRequest(since=3)).entries == []


def test_user_info_is_bounded_and_reports_dropped_entries() -> None:
    agent = UserInfoAgent(UserInfoState(echo=False))
    huge = "x" * (user_info.MAX_TEXT + 100)
    agent.stream(UserInfoStreamRequest(text=huge))
    assert len(agent.state.entries[0].text) == user_info.MAX_TEXT
    for i in range(MAX_ENTRIES + 5):
        agent.notify(UserInfoRequest(message=str(i)))
    assert len(agent.state.entries) == MAX_ENTRIES
    assert sum(len(e.text) for e in agent.state.entries) <= user_info.MAX_KEPT_CHARS
    late = agent.read(UserInfoReadRequest(since=0))
    assert late.dropped
    assert late.entries[0].seq == agent.state.entries[0].seq


def test_user_info_prints_on_the_console(capsys: pytest.CaptureFixture[str]) -> None:
    agent = UserInfoAgent(UserInfoState())
    agent.notify(
        UserInfoRequest(severity="warning", title="job", message="half done", job_id="7", timestamp=1.0)
    )
    agent.stream(UserInfoStreamRequest(text="3.14159", target="stdout"))
    agent.stream(UserInfoStreamRequest(text="oops\n", target="stderr"))
    out, err = capsys.readouterr()
    assert out == "3.14159"
    assert "WARNING: job job=7: half done\n" in err
    assert err.endswith("oops\n")


@pytest.mark.parametrize(
    ("contract", "operations"),
    [
        (server_info.SERVER_INFO, ["load", "df", "ps", "summary"]),
        (mesh_info.MESH_INFO, ["snapshot", "landscape", "sync", "select"]),
        (user_info.USER_INFO, ["notify", "stream", "read"]),
    ],
)
def test_contracts(contract: object, operations: list[str]) -> None:
    assert list(getattr(contract, "capabilities")) == operations  # noqa: B009


def test_services_route_their_operations_and_refuse_others() -> None:
    agent = UserInfoAgent(UserInfoState(echo=False))
    reply = agent.handle_message(user_info.NOTIFY_USER.to_message(UserInfoRequest(message="m")))
    assert reply == {"ok": True, "seq": 1}
    assert agent.handle_message(Message("nope")) is agent.not_handled()


def test_bundled_launch_config_declares_the_four_services() -> None:
    services = resolve_resident_services(parse_launch_config(bundled_launch_config_text()))
    by_id = {s.agent_id: s for s in services}
    assert set(by_id) == {
        "service.server-info",
        "service.mesh-info",
        "service.compute-slots",
        "service.user-info",
    }
    assert by_id["service.compute-slots"].lifecycle.value == "eager"
    assert by_id["service.compute-slots"].state["max_load_per_cpu"] == 0.0
    assert by_id["service.mesh-info"].lifecycle.value == "eager"
    assert by_id["service.server-info"].idle_timeout == 30.0
    assert by_id["service.mesh-info"].state["gossip_interval"] == 5.0
