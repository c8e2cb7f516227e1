"""``mesh-info``: a resource snapshot of every host of the mesh, gathered on demand, and placement advice.

Each host's ``mesh-info`` service (eager, mesh-scoped, agent id ``service.mesh-info``) costs nothing
while nobody asks: it samples nothing and sends nothing on its own. A snapshot of its host (CPU, load,
memory, swap, the file system of its work directory, paglet counts, tags) is taken straight from psutil
when one is asked for and reused for at most ``sample_interval / 2`` seconds. A ``landscape`` or
``select`` call pulls the snapshots of the other hosts when the last pull is older than
``gossip_interval / 2`` seconds: it asks every online host (at most :data:`MAX_PULL_PEERS`, picked at
random in larger meshes, at most :data:`MAX_PEER_BATCH` requests in flight) for its snapshot with one
``sync`` exchange, and answers after :data:`PULL_TIMEOUT` seconds at the latest with what arrived; a host
that did not answer is named in ``errors`` and retried with exponential backoff (at most
:data:`MAX_PEER_BACKOFF` seconds). So a landscape shows snapshots at most about
``(sample_interval + gossip_interval) / 2`` seconds old, and an idle mesh pays nothing for the service
whatever its size. Snapshots older than ``max(3 * sample_ttl, sample_ttl + 1)`` are dropped, and the
table holds at most :data:`MAX_SNAPSHOTS` hosts.

**Clocks.** A snapshot's ``observed_at`` is a wall-clock time, re-based at each hop to the receiver's
clock (each sync carries the sender's ``sent_at``/``generated_at``), so skewed clocks between hosts do not
make snapshots look fresh or stale; replies carry ``generated_at`` so callers compute ages on one clock.
Between two snapshots of one host, the later ``sequence`` of the same ``incarnation`` wins (else the
later ``observed_at``), so re-sent copies never replace newer news.

Operations of the ``mesh-info`` contract (version 1): ``snapshot`` (this host, sampled now when
``force``), ``landscape`` (fresh snapshots of every known host, oldest-age cutoff ``max_age_seconds`` or
``sample_ttl``), ``sync`` (one exchange: the caller's snapshots in, this host's snapshot first and then
the fresh ones it knows out) and ``select`` (ranked placement targets). Unlike paglets 2.0, which
samples and gossips all the time, the snapshots are gathered only when asked for; ``select`` applies
``max_load_per_cpu`` and ``max_cpu_percent``, gives every rejected host its reason, and never offers
rejected hosts as a fallback. Score (lower is better):
``load_per_cpu + cpu%/100 + memory%/100 + work-disk%/100``.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field, replace
from typing import Any, Final, cast

from paglets.core.agent import Paglet, PagletState
from paglets.core.errors import InvalidAgentError, PagletInactiveError
from paglets.core.events import CreationEvent, MobilityEvent, PersistencyEvent
from paglets.core.messages import Message
from paglets.core.runtime_values import ResidentLifecycle, ServiceScope
from paglets.services.contracts import ServiceContract, ServiceOperation
from paglets.services.resident import ResidentServiceSpec

__all__ = [
    "GET_LANDSCAPE",
    "GET_SNAPSHOT",
    "MESH_INFO",
    "MESH_INFO_AGENT_ID",
    "SELECT_TARGETS",
    "SYNC_MESH_INFO",
    "LandscapeReply",
    "LandscapeRequest",
    "MeshHostSnapshot",
    "MeshInfoAgent",
    "MeshInfoState",
    "MeshInfoSyncReply",
    "MeshInfoSyncRequest",
    "SnapshotReply",
    "SnapshotRequest",
    "TargetCandidate",
    "TargetSelectionReply",
    "TargetSelectionRequest",
    "merge_snapshot",
    "rank_targets",
]

MESH_INFO_AGENT_ID: Final = "service.mesh-info"
DEFAULT_SAMPLE_INTERVAL: Final = 5.0
DEFAULT_GOSSIP_INTERVAL: Final = 5.0
DEFAULT_SAMPLE_TTL: Final = 30.0
DEFAULT_PEER_BATCH_SIZE: Final = 3
DEFAULT_SYNC_BATCH_SIZE: Final = 64
#: Shortest sample or pull interval accepted (tests use 0.2-1 s).
MIN_INTERVAL: Final = 0.1
#: Seconds one sync exchange may take; a peer slower than that counts as failed for this pull.
SYNC_TIMEOUT: Final = 2.0
#: Seconds one pull may take in all: the landscape is answered then with what arrived.
PULL_TIMEOUT: Final = 3.0
#: Hosts one pull asks at most (picked at random in larger meshes; their replies name more hosts).
MAX_PULL_PEERS: Final = 256
#: Sync requests one pull keeps in flight at most.
MAX_PEER_BATCH: Final = 16
#: Hosts the snapshot table holds (the oldest go first). Meshes are capped at a few thousand hosts.
MAX_SNAPSHOTS: Final = 4096
#: Snapshots one sync accepts or returns.
MAX_SYNC_BATCH: Final = 512
#: Longest pause before a failing peer is asked again.
MAX_PEER_BACKOFF: Final = 60.0
#: A CPU reading older than this many sample intervals is replaced by one measured over
#: :data:`FRESH_CPU_SECONDS` (psutil's reading since the previous call would average a long idle span).
CPU_READING_SPAN: Final = 2.0
#: Seconds over which CPU use is measured when the previous reading is too old.
FRESH_CPU_SECONDS: Final = 0.1


@dataclass(frozen=True, slots=True)
class MeshHostSnapshot:
    host_name: str
    host_url: str
    code_version: str = ""
    observed_at: float = 0.0
    platform: str = ""
    cpu_count_logical: int = 0
    cpu_percent: float = 0.0
    load_average: list[float] = field(default_factory=list)
    load_per_cpu: float = 0.0
    memory_total_bytes: int = 0
    memory_available_bytes: int = 0
    memory_percent: float = 0.0
    swap_percent: float = 0.0
    work_path: str = ""
    work_total_bytes: int = 0
    work_free_bytes: int = 0
    work_percent_used: float = 0.0
    active_count: int = 0
    inactive_count: int = 0
    host_tags: list[str] = field(default_factory=list)
    host_properties: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    #: Identifies one run of the sampling service; ``sequence`` counts its samples.
    incarnation: str = ""
    sequence: int = 0


@dataclass(frozen=True, slots=True)
class SnapshotRequest:
    force: bool = False


@dataclass(frozen=True, slots=True)
class SnapshotReply:
    snapshot: MeshHostSnapshot | None = None
    errors: list[str] = field(default_factory=list)
    generated_at: float = 0.0


@dataclass(frozen=True, slots=True)
class LandscapeRequest:
    fresh_only: bool = True
    #: Oldest snapshot age shown (0: the service's ``sample_ttl``).
    max_age_seconds: float = 0.0
    #: Most hosts returned (0: all).
    limit: int = 0


@dataclass(frozen=True, slots=True)
class LandscapeReply:
    generated_at: float
    hosts: list[MeshHostSnapshot] = field(default_factory=list)
    #: Host name or URL → why this service could not reach it.
    errors: dict[str, str] = field(default_factory=dict)
    #: Hosts whose last snapshot is older than the cutoff (left out of ``hosts``).
    stale: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class MeshInfoSyncRequest:
    snapshots: list[MeshHostSnapshot] = field(default_factory=list)
    max_age_seconds: float = 0.0
    limit: int = DEFAULT_SYNC_BATCH_SIZE
    #: The sender's wall clock when it sent the request (re-bases ``observed_at``).
    sent_at: float = 0.0


@dataclass(frozen=True, slots=True)
class MeshInfoSyncReply:
    generated_at: float
    accepted: int = 0
    snapshots: list[MeshHostSnapshot] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class TargetSelectionRequest:
    limit: int = 1
    max_age_seconds: float = 0.0
    max_load_per_cpu: float = 1.0
    max_cpu_percent: float = 100.0
    min_memory_available_bytes: int = 0
    min_work_free_bytes: int = 0
    include_self: bool = True


@dataclass(frozen=True, slots=True)
class TargetCandidate:
    snapshot: MeshHostSnapshot
    score: float
    reasons: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class TargetSelectionReply:
    generated_at: float
    targets: list[TargetCandidate] = field(default_factory=list)
    #: Host name → why it is not a target.
    rejected: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


GET_SNAPSHOT = ServiceOperation("snapshot", SnapshotRequest, SnapshotReply)
GET_LANDSCAPE = ServiceOperation("landscape", LandscapeRequest, LandscapeReply)
SYNC_MESH_INFO = ServiceOperation("sync", MeshInfoSyncRequest, MeshInfoSyncReply)
SELECT_TARGETS = ServiceOperation("select", TargetSelectionRequest, TargetSelectionReply)

MESH_INFO = ServiceContract(
    "mesh-info", operations=(GET_SNAPSHOT, GET_LANDSCAPE, SYNC_MESH_INFO, SELECT_TARGETS)
)


@dataclass
class MeshInfoState(PagletState):
    service_scope: ServiceScope = ServiceScope.MESH
    #: This host's snapshot is reused for at most half of this (sampled only when asked for).
    sample_interval: float = DEFAULT_SAMPLE_INTERVAL
    #: The other hosts' snapshots are pulled again when the last pull is older than half of this.
    gossip_interval: float = DEFAULT_GOSSIP_INTERVAL
    sample_ttl: float = DEFAULT_SAMPLE_TTL
    #: Accepted for launch configs of earlier versions, which pushed to this many peers per round.
    peer_batch_size: int = DEFAULT_PEER_BATCH_SIZE
    #: Snapshots one sync reply carries at most.
    sync_batch_size: int = DEFAULT_SYNC_BATCH_SIZE


def _gb(value: int) -> str:
    return f"{value / (1 << 30):.1f} GiB"


def _rejection(snapshot: MeshHostSnapshot, request: TargetSelectionRequest) -> str | None:
    """Why ``snapshot`` is no placement target under ``request`` (None: it is one)."""
    if snapshot.errors:
        return "snapshot has errors: " + "; ".join(snapshot.errors)
    if snapshot.cpu_count_logical > 0 and snapshot.load_per_cpu > request.max_load_per_cpu:
        return f"load per CPU {snapshot.load_per_cpu:.2f} above {request.max_load_per_cpu:.2f}"
    if snapshot.cpu_percent > request.max_cpu_percent:
        return f"CPU {snapshot.cpu_percent:.1f}% above {request.max_cpu_percent:.1f}%"
    if request.min_memory_available_bytes > 0 and (
        snapshot.memory_available_bytes < request.min_memory_available_bytes
    ):
        return (
            f"available memory {_gb(snapshot.memory_available_bytes)} below "
            f"{_gb(request.min_memory_available_bytes)}"
        )
    if request.min_work_free_bytes > 0 and snapshot.work_free_bytes < request.min_work_free_bytes:
        return f"free work storage {_gb(snapshot.work_free_bytes)} below {_gb(request.min_work_free_bytes)}"
    return None


def _score(snapshot: MeshHostSnapshot) -> float:
    memory = snapshot.memory_percent / 100.0 if snapshot.memory_total_bytes else 1.0
    disk = snapshot.work_percent_used / 100.0 if snapshot.work_total_bytes else 1.0
    return round(max(0.0, snapshot.load_per_cpu) + max(0.0, snapshot.cpu_percent) / 100.0 + memory + disk, 6)


def rank_targets(
    snapshots: list[MeshHostSnapshot],
    request: TargetSelectionRequest,
    *,
    self_url: str,
    now: float,
    max_age: float,
) -> tuple[list[TargetCandidate], dict[str, str]]:
    """Targets (best first, at most ``request.limit``) and the rejected hosts with their reasons."""
    targets: list[TargetCandidate] = []
    rejected: dict[str, str] = {}
    for snapshot in snapshots:
        key = snapshot.host_name or snapshot.host_url
        age = now - snapshot.observed_at
        if age > max_age:
            rejected[key] = f"snapshot {age:.0f} s old (older than {max_age:g} s)"
        elif not request.include_self and snapshot.host_url == self_url:
            rejected[key] = "self excluded"
        elif (reason := _rejection(snapshot, request)) is not None:
            rejected[key] = reason
        else:
            targets.append(TargetCandidate(snapshot, _score(snapshot), ["fresh", "within limits"]))
    targets.sort(key=lambda t: (t.score, t.snapshot.host_name, t.snapshot.host_url))
    return targets[: max(1, request.limit)], rejected


class MeshInfoAgent(Paglet[MeshInfoState]):
    """The ``mesh-info`` resident service (see the module docstring)."""

    State = MeshInfoState
    RESIDENT_SERVICES = (
        ResidentServiceSpec(
            contract=MESH_INFO,
            scope=ServiceScope.MESH,
            lifecycle=ResidentLifecycle.EAGER,
            idle_timeout=0.0,
            agent_id=MESH_INFO_AGENT_ID,
            singleton=True,
            state={"service_scope": ServiceScope.MESH.value},
        ),
    )

    def __init__(self, state: MeshInfoState | None = None, *, agent_id: str | None = None) -> None:
        super().__init__(state, agent_id=agent_id)
        self._lock = threading.Lock()
        self._snapshots: dict[str, MeshHostSnapshot] = {}
        self._errors: dict[str, tuple[str, float]] = {}
        self._backoff: dict[str, tuple[int, float]] = {}
        self._incarnation = uuid.uuid4().hex[:16]
        self._sequence = 0
        self._last_sample = -1e9  # monotonic time of the last sample (none yet)
        self._last_pull = -1e9  # monotonic time the last pull started (none yet)
        self._sample_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    # --- settings --------------------------------------------------------------------------------

    def _settings(self) -> tuple[float, float, float, int, int]:
        """(sample interval, pull interval, ttl, peer batch, sync batch), clamped to sane bounds."""
        state = self.state
        sample = max(MIN_INTERVAL, float(state.sample_interval))
        gossip = max(MIN_INTERVAL, float(state.gossip_interval))
        ttl = max(sample, float(state.sample_ttl))
        peers = max(1, min(MAX_PEER_BATCH, int(state.peer_batch_size)))
        batch = max(1, min(MAX_SYNC_BATCH, int(state.sync_batch_size)))
        return sample, gossip, ttl, peers, batch

    # --- lifecycle -------------------------------------------------------------------------------

    def on_creation(self, event: CreationEvent) -> None:
        self._settings()  # fail creation early on unusable settings

    def on_deactivating(self, event: PersistencyEvent) -> None:
        self._close()

    def on_disposing(self, event: PersistencyEvent) -> None:
        self._close()

    def on_dispatching(self, event: MobilityEvent) -> None:
        self._close()

    def _close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    # --- operations ------------------------------------------------------------------------------

    def handle_message(self, message: Message) -> Any:
        return MESH_INFO.route(
            message,
            {
                GET_SNAPSHOT: self.get_snapshot,
                GET_LANDSCAPE: self.get_landscape,
                SYNC_MESH_INFO: self.sync,
                SELECT_TARGETS: self.select_targets,
            },
            default=self.not_handled(),
        )

    def get_snapshot(self, request: SnapshotRequest) -> SnapshotReply:
        snapshot = self._sample() if request.force else self._own_snapshot()
        return SnapshotReply(snapshot, list(snapshot.errors), time.time())

    def get_landscape(self, request: LandscapeRequest) -> LandscapeReply:
        self._refresh()
        _, _, ttl, _, _ = self._settings()
        max_age = request.max_age_seconds if request.max_age_seconds > 0 else ttl
        now = time.time()
        hosts, stale = self._table(now, max_age if request.fresh_only else None)
        if request.limit > 0:
            hosts = hosts[: request.limit]
        return LandscapeReply(now, hosts, self._error_map(now), stale)

    def sync(self, request: MeshInfoSyncRequest) -> MeshInfoSyncReply:
        now = time.time()
        shift = now - request.sent_at if request.sent_at > 0 else 0.0
        accepted = sum(self._merge(s, shift, now) for s in request.snapshots[:MAX_SYNC_BATCH])
        own = self._own_snapshot()
        _, _, ttl, _, batch = self._settings()
        limit = max(1, min(MAX_SYNC_BATCH, request.limit, batch))
        hosts, _ = self._table(now, request.max_age_seconds if request.max_age_seconds > 0 else ttl)
        others = [s for s in hosts if s.host_url != own.host_url]
        return MeshInfoSyncReply(now, accepted, [own, *_newest(others, limit - 1)])

    def select_targets(self, request: TargetSelectionRequest) -> TargetSelectionReply:
        self._refresh()
        _, _, ttl, _, _ = self._settings()
        max_age = request.max_age_seconds if request.max_age_seconds > 0 else ttl
        now = time.time()
        hosts, _ = self._table(now, None)
        targets, rejected = rank_targets(hosts, request, self_url=self._self_url(), now=now, max_age=max_age)
        return TargetSelectionReply(now, targets, rejected, self._error_map(now))

    # --- snapshots -------------------------------------------------------------------------------

    def _self_url(self) -> str:
        return self.context.address.rstrip("/")

    def _own_snapshot(self) -> MeshHostSnapshot:
        """This host's snapshot, sampled now when the last one is older than half the sample interval."""
        reuse = self._settings()[0] / 2
        with self._lock:
            own = self._snapshots.get(self._self_url())
        if own is None or time.monotonic() - self._last_sample >= reuse:
            return self._sample()
        return own

    def _sample(self) -> MeshHostSnapshot:
        """Sample this host now (one sample at a time)."""
        from paglets.services.builtin import _probes
        from paglets.services.builtin.server_info import DiskRequest, LoadRequest

        with self._sample_lock:
            errors: list[str] = []
            name, url = self.context.name, self._self_url()
            health: dict[str, Any] = {}
            try:
                health = dict(cast(Any, self.context.host).health())
            except Exception as exc:
                errors.append(f"health: {exc}")
            stale_cpu = time.monotonic() - self._last_sample > CPU_READING_SPAN * self._settings()[0]
            request = LoadRequest(interval=FRESH_CPU_SECONDS if stale_cpu else 0.0, include_gpu=False)
            load = _probes.load(request, name, url)
            errors.extend(f"{probe}: {error}" for probe, error in load.errors.items())
            work_path = ""
            volume = None
            try:
                work_path = str(self.work_dir())
                disk = _probes.disk(DiskRequest(paths=[work_path]), name, url)
                errors.extend(f"work disk: {error}" for error in disk.errors.values())
                volume = disk.volumes[0] if disk.volumes else None
            except Exception as exc:
                errors.append(f"work disk: {exc}")
            cpus = load.cpu_count_logical
            self._sequence += 1
            snapshot = MeshHostSnapshot(
                host_name=name,
                host_url=url,
                code_version=str(health.get("code_version", "")),
                observed_at=time.time(),
                platform=_platform(),
                cpu_count_logical=cpus,
                cpu_percent=load.cpu_percent,
                load_average=list(load.load_average),
                load_per_cpu=round(load.load_average[0] / cpus, 4) if load.load_average and cpus else 0.0,
                memory_total_bytes=load.memory_total_bytes,
                memory_available_bytes=load.memory_available_bytes,
                memory_percent=load.memory_percent,
                swap_percent=load.swap_percent,
                work_path=work_path,
                work_total_bytes=volume.total_bytes if volume else 0,
                work_free_bytes=volume.free_bytes if volume else 0,
                work_percent_used=volume.percent_used if volume else 0.0,
                active_count=int(health.get("active_count", 0) or 0),
                inactive_count=int(health.get("inactive_count", 0) or 0),
                host_tags=[str(t) for t in health.get("tags", ()) or ()],
                host_properties={str(k): str(v) for k, v in dict(health.get("properties") or {}).items()},
                errors=errors,
                incarnation=self._incarnation,
                sequence=self._sequence,
            )
            with self._lock:
                self._snapshots[url] = snapshot
            self._last_sample = time.monotonic()
            return snapshot

    def _merge(self, snapshot: MeshHostSnapshot, shift: float, now: float) -> bool:
        self_url = self._self_url()
        with self._lock:
            return merge_snapshot(self._snapshots, snapshot, shift=shift, now=now, self_url=self_url)

    def _table(self, now: float, max_age: float | None) -> tuple[list[MeshHostSnapshot], list[str]]:
        """Snapshots sorted by host name (only those younger than ``max_age`` unless None) and the names
        of the stale ones."""
        with self._lock:
            snapshots = list(self._snapshots.values())
        fresh: list[MeshHostSnapshot] = []
        stale: list[str] = []
        for snapshot in snapshots:
            if max_age is not None and now - snapshot.observed_at > max_age:
                stale.append(snapshot.host_name or snapshot.host_url)
            else:
                fresh.append(snapshot)
        fresh.sort(key=lambda s: (s.host_name, s.host_url))
        return fresh, sorted(stale)

    def _prune(self, now: float) -> None:
        _, _, ttl, _, _ = self._settings()
        keep = max(3.0 * ttl, ttl + 1.0)
        own = self._self_url()
        with self._lock:
            for url, snapshot in list(self._snapshots.items()):
                if url != own and now - snapshot.observed_at > keep:
                    del self._snapshots[url]
            for key, (_, at) in list(self._errors.items()):
                if now - at > keep:
                    del self._errors[key]

    # --- pulling the other hosts' snapshots ------------------------------------------------------

    def _refresh(self) -> None:
        """Sample this host if due and, when the last pull is older than half the pull interval, pull
        every other host's snapshot (bounded fan-out, answered within :data:`PULL_TIMEOUT`)."""
        own = self._own_snapshot()
        _, gossip, ttl, _, batch = self._settings()
        if time.monotonic() - self._last_pull < gossip / 2:
            return
        self._last_pull = time.monotonic()
        now = time.time()
        self._prune(now)
        peers, every = self._pick_peers(MAX_PULL_PEERS)
        if not peers:
            return
        # every online host asked directly: its own snapshot is all this pull needs from it
        limit = 1 if every else batch
        pool = self._pool
        if pool is None:
            pool = self._pool = ThreadPoolExecutor(MAX_PEER_BATCH, thread_name_prefix="paglets-mesh-info")
        futures: dict[Future[Any], tuple[str, str]] = {}
        for name, url in peers:
            request = MeshInfoSyncRequest([own], ttl, limit, time.time())
            futures[pool.submit(self._exchange, url, request)] = (name, url)
        done, _ = wait_futures(futures, timeout=PULL_TIMEOUT)
        for future, (name, url) in futures.items():
            if future not in done:
                future.cancel()
                self._peer_failed(name, url, f"no mesh-info answer within {PULL_TIMEOUT:g} s")
                continue
            try:
                reply: MeshInfoSyncReply = future.result()
            except InvalidAgentError:
                self._peer_failed(name, url, f"no mesh-info service ({self.agent_id}) on this host")
                continue
            except PagletInactiveError:  # the peer's service is starting: ask again next pull
                continue
            except Exception as exc:
                self._peer_failed(name, url, f"mesh-info sync failed: {exc}")
                continue
            self._peer_ok(name, url)
            received = time.time()
            shift = received - reply.generated_at if reply.generated_at > 0 else 0.0
            for snapshot in reply.snapshots[:MAX_SYNC_BATCH]:
                self._merge(snapshot, shift, received)

    def _exchange(self, url: str, request: MeshInfoSyncRequest) -> MeshInfoSyncReply:
        proxy = self.context.get_proxy(self.agent_id, url)
        if proxy is None:
            raise InvalidAgentError(f"no paglet {self.agent_id} on {url}")
        reply = proxy.send(SYNC_MESH_INFO.to_message(request), timeout=SYNC_TIMEOUT)
        result: MeshInfoSyncReply = SYNC_MESH_INFO.decode_reply(reply)
        return result

    def _pick_peers(self, count: int) -> tuple[list[tuple[str, str]], bool]:
        """At most ``count`` online peers not backing off, and whether they are all the online peers."""
        now = time.monotonic()
        candidates: list[tuple[str, str]] = []
        online: set[str] = set()
        for ref in self.context.available_hosts(online_only=True, include_self=False):
            url = str(getattr(ref, "url", "")).rstrip("/")
            if not url or url == self._self_url():
                continue
            online.add(url)
            backoff = self._backoff.get(url)
            if backoff is None or backoff[1] <= now:
                candidates.append((str(getattr(ref, "name", "") or url), url))
        for url in list(self._backoff):
            if url not in online:
                del self._backoff[url]
        if len(candidates) <= count:
            return candidates, len(candidates) == len(online)
        return random.sample(candidates, count), False

    def _peer_failed(self, name: str, url: str, error: str) -> None:
        gossip = self._settings()[1]
        failures = self._backoff.get(url, (0, 0.0))[0] + 1
        delay = min(MAX_PEER_BACKOFF, gossip * 2 ** (failures - 1))
        self._backoff[url] = (failures, time.monotonic() + delay * random.uniform(0.8, 1.2))
        self._note_error(name, error)

    def _peer_ok(self, name: str, url: str) -> None:
        self._backoff.pop(url, None)
        with self._lock:
            self._errors.pop(name, None)

    def _note_error(self, key: str, error: str) -> None:
        with self._lock:
            self._errors[key] = (error[:500], time.time())

    def _error_map(self, now: float) -> dict[str, str]:
        with self._lock:
            return {key: error for key, (error, _) in sorted(self._errors.items())}


def merge_snapshot(
    table: dict[str, MeshHostSnapshot],
    snapshot: MeshHostSnapshot,
    *,
    shift: float,
    now: float,
    self_url: str,
    max_size: int = MAX_SNAPSHOTS,
) -> bool:
    """Put ``snapshot`` (its clock shifted by ``shift`` onto ours) in ``table`` if it is news.

    Never takes another host's view of ``self_url``; within one incarnation the higher sequence wins,
    otherwise the later ``observed_at``. The table keeps at most ``max_size`` hosts (the oldest other
    host goes). True if the snapshot was taken.
    """
    url = snapshot.host_url.rstrip("/")
    if not url or url == self_url:
        return False
    snapshot = replace(snapshot, host_url=url, observed_at=min(now, snapshot.observed_at + shift))
    current = table.get(url)
    if current is not None:
        if current.incarnation and current.incarnation == snapshot.incarnation:
            if snapshot.sequence <= current.sequence:
                return False
        elif snapshot.observed_at <= current.observed_at:
            return False
    table[url] = snapshot
    if len(table) > max_size:
        oldest = min((s for s in table.values() if s.host_url != self_url), key=lambda s: s.observed_at)
        del table[oldest.host_url]
    return True


def _newest(snapshots: list[MeshHostSnapshot], limit: int) -> list[MeshHostSnapshot]:
    if len(snapshots) <= limit:
        return snapshots
    return sorted(snapshots, key=lambda s: s.observed_at, reverse=True)[:limit]


_PLATFORM: list[str] = []


def _platform() -> str:
    if not _PLATFORM:
        import platform

        _PLATFORM.append(platform.platform())
    return _PLATFORM[0]
