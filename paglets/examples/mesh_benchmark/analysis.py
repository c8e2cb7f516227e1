"""The mesh benchmark's arithmetic: the route, clock offsets and the summary (pure functions).

**Route.** An Eulerian circuit of the complete directed graph of the hosts (with a self-loop per host
unless excluded), starting and ending at the entry host: every directed pair is travelled exactly once
per repeat, and the circuit can be repeated back to back.

**Clocks.** Each probe is a message from the traveller on some host to the coordinator on the entry
host: the traveller notes its send time ``t0`` and receive time ``t3``; the coordinator answers with
its receive and send times ``r`` and ``s``. Then (as in NTP) the offset of the host's clock against
the entry host's is ``((t0 - r) + (t3 - s)) / 2`` and the round trip without the coordinator's own time
is ``(t3 - t0) - (s - r)``. The probe with the shortest round trip gives the offset used to put a hop's
local departure and arrival instants on the entry host's clock.

**Hop time.** From just before the traveller dispatches itself (on the source host) to the first thing
its ``run()`` does on the target host: the whole user-visible move (check of the target, state
snapshot, transfer, the new process, ``on_arrival``, the commit). The probes are outside it.
"""

from __future__ import annotations

import itertools
import statistics
from dataclasses import dataclass, field

__all__ = [
    "ClockProbe",
    "HostClock",
    "MeshBenchmarkSummary",
    "MeshTravelRecord",
    "eulerian_route",
    "offset_and_rtt",
    "summarize",
]


@dataclass(frozen=True, slots=True)
class MeshTravelRecord:
    sequence: int
    repeat: int
    source: str
    target: str
    #: Departure and arrival on the entry host's clock (``time.time()`` seconds).
    departed_at: float
    arrived_at: float
    seconds: float
    payload_bytes: int = 0
    #: A move made only to reach the next unvisited pair after a host went away (still a sample).
    extra: bool = False


@dataclass(frozen=True, slots=True)
class ClockProbe:
    host: str
    offset_seconds: float
    rtt_seconds: float


@dataclass(frozen=True, slots=True)
class HostClock:
    host: str
    samples: int = 0
    #: Offset of the host's clock against the entry host's (median over the samples).
    median_offset_seconds: float = 0.0
    best_rtt_seconds: float = 0.0
    median_rtt_seconds: float = 0.0
    average_rtt_seconds: float = 0.0
    worst_rtt_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class MeshBenchmarkSummary:
    hosts: list[str] = field(default_factory=list)
    #: ``source -> target -> mean seconds`` over that pair's samples.
    matrix_seconds: dict[str, dict[str, float]] = field(default_factory=dict)
    #: ``source -> target -> samples``.
    matrix_samples: dict[str, dict[str, int]] = field(default_factory=dict)
    clocks: list[HostClock] = field(default_factory=list)
    movement_count: int = 0
    average_seconds: float = 0.0
    sum_seconds: float = 0.0
    #: First departure to last arrival.
    round_trip_seconds: float = 0.0
    #: Round trip minus the hops themselves (probes, reports, choosing the next hop).
    overhead_seconds: float = 0.0
    #: Start of the job to the first departure (creating the traveller, its payload, the first probes).
    setup_seconds: float = 0.0
    #: Start of the job to its end.
    total_seconds: float = 0.0
    payload_bytes: int = 0
    #: Destination host → payload bytes per second into it (payload size / hop time, averaged).
    payload_speeds: dict[str, float] = field(default_factory=dict)
    #: Directed pairs without a sample (``source->target``).
    missing_pairs: list[str] = field(default_factory=list)


def eulerian_route(hosts: list[str], *, include_self: bool) -> list[tuple[str, str]]:
    """Every directed pair of ``hosts`` once (self-pairs too when ``include_self``), as one circuit
    starting and ending at ``hosts[0]`` (Hierholzer's algorithm)."""
    if not hosts:
        return []
    remaining = {a: [b for b in reversed(hosts) if include_self or b != a] for a in hosts}
    stack, path = [hosts[0]], []
    while stack:
        here = stack[-1]
        if remaining[here]:
            stack.append(remaining[here].pop())
        else:
            path.append(stack.pop())
    path.reverse()
    return list(itertools.pairwise(path))


def offset_and_rtt(
    sent: float, received: float, remote_received: float, remote_sent: float
) -> tuple[float, float]:
    """``(offset, rtt)`` of one probe (see the module docstring)."""
    offset = ((sent - remote_received) + (received - remote_sent)) / 2
    rtt = max(0.0, (received - sent) - (remote_sent - remote_received))
    return offset, rtt


def summarize(
    hosts: list[str],
    records: list[MeshTravelRecord],
    probes: list[ClockProbe],
    *,
    include_self: bool,
    started_at: float,
    finished_at: float,
) -> MeshBenchmarkSummary:
    pairs: dict[tuple[str, str], list[float]] = {}
    speeds: dict[str, list[float]] = {}
    for record in records:
        pairs.setdefault((record.source, record.target), []).append(record.seconds)
        if record.payload_bytes and record.seconds > 0:
            speeds.setdefault(record.target, []).append(record.payload_bytes / record.seconds)
    matrix = {a: {b: statistics.fmean(v) for (s, b), v in pairs.items() if s == a} for a in hosts}
    samples = {a: {b: len(v) for (s, b), v in pairs.items() if s == a} for a in hosts}
    missing = [f"{a}->{b}" for a in hosts for b in hosts if (include_self or a != b) and (a, b) not in pairs]
    clocks = []
    for host in hosts:
        mine = [p for p in probes if p.host == host]
        if not mine:
            clocks.append(HostClock(host))
            continue
        rtts = [p.rtt_seconds for p in mine]
        clocks.append(
            HostClock(
                host=host,
                samples=len(mine),
                median_offset_seconds=statistics.median(p.offset_seconds for p in mine),
                best_rtt_seconds=min(rtts),
                median_rtt_seconds=statistics.median(rtts),
                average_rtt_seconds=statistics.fmean(rtts),
                worst_rtt_seconds=max(rtts),
            )
        )
    total = sum(r.seconds for r in records)
    first = min((r.departed_at for r in records), default=0.0)
    last = max((r.arrived_at for r in records), default=0.0)
    round_trip = max(0.0, last - first) if records else 0.0
    return MeshBenchmarkSummary(
        hosts=list(hosts),
        matrix_seconds=matrix,
        matrix_samples=samples,
        clocks=clocks,
        movement_count=len(records),
        average_seconds=total / len(records) if records else 0.0,
        sum_seconds=total,
        round_trip_seconds=round_trip,
        overhead_seconds=max(0.0, round_trip - total),
        setup_seconds=max(0.0, first - started_at) if records else 0.0,
        total_seconds=max(0.0, finished_at - started_at),
        payload_bytes=max((r.payload_bytes for r in records), default=0),
        payload_speeds={host: statistics.fmean(values) for host, values in speeds.items()},
        missing_pairs=missing,
    )
