"""Mesh membership: which hosts exist, which are online, which run our code (docs/operations/hosts.md).

**Code version.** :func:`resolve_code_version` picks, in order: the explicit value (``--mesh-version`` /
``mesh_version=``), the ``PAGLETS_MESH_VERSION`` environment variable, ``git rev-parse HEAD`` of the
source tree the package was imported from (only when a ``.git`` sits above it; 1 s timeout), else
``paglets-<version>-no-git``.

**Registry.** :class:`MeshRegistry` lives on the host's event loop and keeps a bounded table of peers
keyed by normalized URL (rules in :mod:`paglets.remote._mesh_table`). Queries are synchronous,
thread-safe and always include a fresh self entry; :meth:`MeshRegistry.wait_for_host` is event-driven.

**Membership protocol** (SWIM, with Lifeguard's dynamic suspicion; docs/design.md "Mesh membership").
Each host's load is constant, whatever the size of the mesh:

- every ``interval`` (±20 %) one *protocol period*: probe one member, chosen by a shuffled
  round-robin over the live members, with ``POST <peer>/hosts/join`` (a ping: our ref, our
  incarnation and up to ``MAX_PIGGYBACK`` updates; the answer brings the peer's ref and its own
  updates). No answer within ``request_timeout``: ask ``INDIRECT_PROBES`` other members to ping it
  for us (``POST /hosts/probe``); none of them gets an answer either: the member becomes *suspect*;
- a suspicion becomes *dead* (offline) after a timeout that falls from ``offline_after - 2·interval``
  to a fifth of ``offline_after`` as other members confirm it, unless the suspect refutes it by
  raising its incarnation (it hears about it on the next message it gets);
- joins, suspicions, deaths and data changes (an incarnation raised because counts, tags or
  properties changed) travel as *updates* piggybacked on those messages, each sent about
  ``3·log10(n)`` times, and while any wait, on a gossip tick every ``interval / 5`` to three random
  members;
- a joining host (a seed, a host someone introduced) and, every ``SYNC_PERIODS`` periods, one random
  member exchange their full member lists (``sync``): anything a lost update missed is repaired;
- entries that are not live members (seeds not reached, dead hosts, refused seeds, hosts we could not
  reach ourselves) are contacted with exponential backoff (``interval·2^(k-1)``, capped at
  ``min(30 s, 16·interval)``, ±20 %) until they answer or are forgotten (``forget_after``).

So a host that stops answering is suspected at the first failed probe of it (each member probes one
member per period, so that takes a period or two on average) and listed offline everywhere within
``offline_after`` of that (plus a gossip tick or two); a host that is slow but answers within
``request_timeout`` (directly, or to one of the indirect probes) is never suspected.

**No wall clocks.** The protocol's state, never a remote time, decides who is online. Each ref on the
wire carries ``age``: seconds since the reporter last had evidence the host is alive, on the reporter's
monotonic clock; we turn it into a moment on *our* monotonic clock (request sent time minus age) for the
``age`` we report; ``last_seen`` is only produced (our wall clock minus age) for paglets 2.0 clients.

**Version gating.** A ref with another code version is never a member: it lands in :meth:`rejected`
with the reason, and a join from such a host is answered 409 (:meth:`accept_join`). Movement code calls
:meth:`MeshRegistry.check_version` (``TransferError``), also for direct URL targets; a ticket's
``expected_code_version`` overrides our version there.

**Seeds only.** With ``seeds_only=True`` heartbeats go to seeds only: a connect-mode host (docs/relay.md)
reaches the mesh through its hub alone and learns every member from the hub's answers.

**LAN discovery** is an opt-in multicast beacon (:mod:`paglets.remote._mesh_beacon`); beacons only
introduce hosts, which are then contacted over HTTP like any other.

**paglets 2.0 peers** send joins without an incarnation: they are answered with the full list, as 2.0
expects, and become members by direct contact only (what they relay introduces hosts, never changes
a state).

Context events (``on_event(kind, data)``, from the thread that made the change): ``mesh-host-online``,
``mesh-host-offline`` (with ``error``), ``mesh-host-rejected`` (with ``code_version`` and ``error``) and
``mesh-peer-unreachable`` (with ``error``: a peer that was not online failed to answer us; once, until it
answers again), ``data`` holding ``name``, ``url`` and ``code_version``. Each marks a change, never a
probe, so they are few and fit a console.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import msgspec

from paglets import __version__
from paglets.core.errors import HostError, TransferError, UnknownHostError
from paglets.http.aclient import AsyncHttpClient
from paglets.http.errormap import error_payload
from paglets.remote._mesh_beacon import BEACON_GROUP, BEACON_PORT
from paglets.remote._mesh_gossip import (
    JITTER,
    MAX_GOSSIP_REFS,
    MAX_MESH_HOSTS,
    MAX_PARALLEL_HEARTBEATS,
    MAX_PIGGYBACK,
    Counters,
    Gossip,
    PostJson,
    same_url,
)
from paglets.remote._mesh_ref import (
    HostRef,
    explicit_url,
    looks_like_address,
    normalize_host_url,
    normalize_tags,
    peer_url,
)
from paglets.remote._mesh_table import PeerTable
from paglets.remote._mesh_updates import incarnation_from_wire

__all__ = [
    "DEFAULT_GOSSIP_INTERVAL",
    "DEFAULT_OFFLINE_AFTER",
    "MAX_BACKOFF",
    "MAX_GOSSIP_REFS",
    "MAX_MESH_HOSTS",
    "MAX_PARALLEL_HEARTBEATS",
    "MESH_VERSION_ENV",
    "EventSink",
    "HostRef",
    "JoinReply",
    "MeshRegistry",
    "MeshStatistics",
    "PostJson",
    "normalize_host_url",
    "normalize_tags",
    "resolve_code_version",
]

MESH_VERSION_ENV: Final = "PAGLETS_MESH_VERSION"
#: Suffix of the fallback code version used when neither a flag, the environment nor git gives one.
NO_GIT_SUFFIX: Final = "-no-git"
#: Seconds ``git rev-parse HEAD`` may take (contract: 1 s); a slow or hung git falls back.
GIT_TIMEOUT: Final = 1.0

DEFAULT_GOSSIP_INTERVAL: Final = 1.0
DEFAULT_OFFLINE_AFTER: Final = 10.0
#: Shortest gossip interval accepted (tests use 0.05 s; below 10 ms heartbeats become a busy loop).
MIN_GOSSIP_INTERVAL: Final = 0.01
#: Longest pause between attempts to a failing peer, in seconds and in intervals (the smaller wins).
MAX_BACKOFF: Final = 30.0
MAX_BACKOFF_INTERVALS: Final = 16
#: Longest per-request timeout by default (the default is the interval, at most this).
MAX_HEARTBEAT_TIMEOUT: Final = 5.0
#: Shortest suspicion timeout, as a fraction of ``offline_after`` (and at least two intervals).
SUSPICION_MIN_FRACTION: Final = 0.2
#: Indirect probes this host runs for others at once; more are answered "not now" (``ok: false``).
MAX_INDIRECT_SERVED: Final = 8
#: Host names listed in an "unknown host" error (a mesh may have thousands).
MAX_NAMES_SHOWN: Final = 20
#: Rejected (other code version) hosts kept for diagnostics.
MAX_REJECTED_HOSTS: Final = 256
#: Default ``forget_after`` as a multiple of ``offline_after``: long enough to ride out a restart.
FORGET_AFTER_OFFLINE_MULTIPLE: Final = 10
#: Extra seconds a blocking ``wait_for_host`` waits for the loop to deliver the answer or the
#: timeout error (only a stuck loop needs it).
SYNC_WAIT_GRACE: Final = 5.0

#: ``on_event(kind, data)``: receives the context events listed in the module docstring.
EventSink = Callable[[str, dict[str, Any]], None]

_ENCODER: Final = msgspec.json.Encoder()


# --- code version -------------------------------------------------------------------------------------------


def _git_root(start: Path) -> Path | None:
    for directory in (start, *start.parents):
        if (directory / ".git").exists():
            return directory
    return None


def resolve_code_version(explicit: str | None, *, repo_root: Path | None = None) -> str:
    """The host's code version (see the module docstring).

    ``repo_root`` replaces the search for a ``.git`` above the installed package (tests, tools).
    """
    if explicit is not None and explicit.strip():
        return explicit.strip()
    env = os.environ.get(MESH_VERSION_ENV, "").strip()
    if env:
        return env
    root = repo_root if repo_root is not None else _git_root(Path(__file__).resolve().parent)
    if root is not None and (root / ".git").exists():
        try:
            done = subprocess.run(
                ["git", "-C", str(root), "rev-parse", "HEAD"],
                capture_output=True,
                text=True,
                timeout=GIT_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            done = None
        head = done.stdout.strip() if done is not None and done.returncode == 0 else ""
        if head and all(ch in "0123456789abcdef" for ch in head) and len(head) in (40, 64):
            return head
    return f"paglets-{__version__}{NO_GIT_SUFFIX}"


# --- values -------------------------------------------------------------------------------------------------


class MeshStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of one registry since it was created."""

    peers_known: int
    peers_online: int
    seeds: int
    rejected: int
    #: Entries forgotten (long offline) or evicted / ignored because the table was full.
    dropped: int
    rounds: int
    requests_sent: int
    requests_failed: int
    #: Our joins that peers refused (another code version).
    refusals: int
    joins_received: int
    joins_refused: int
    #: Malformed refs skipped in answers and join bodies.
    invalid_refs: int
    beacons_sent: int
    beacons_received: int
    multicast_active: bool
    #: ``on_event`` callbacks that raised (the event is dropped, the mesh carries on).
    event_failures: int
    #: Protocol periods that ended in an unexpected exception (a bug; the next one runs anyway).
    round_failures: int
    #: Probes of members (one per period), indirect probes asked of others, suspicions we raised,
    #: suspicions of us we refuted, periodic full syncs.
    probes: int = 0
    indirect_probes: int = 0
    suspicions: int = 0
    refutations: int = 0
    syncs: int = 0


@dataclass(frozen=True, slots=True)
class JoinReply:
    """What :meth:`MeshRegistry.accept_join` decided; ``body`` is the JSON to answer with."""

    accepted: bool
    body: dict[str, Any]
    hosts: list[HostRef] = field(default_factory=list)
    error: str | None = None

    @property
    def status(self) -> int:
        return 200 if self.accepted else 409


# --- the registry -------------------------------------------------------------------------------------------


class MeshRegistry:
    """See the module docstring. Create it anywhere; call :meth:`start` on the loop it should run on."""

    def __init__(
        self,
        self_ref: Callable[[], HostRef],
        *,
        code_version: str,
        seeds: Iterable[str] = (),
        interval: float = DEFAULT_GOSSIP_INTERVAL,
        offline_after: float = DEFAULT_OFFLINE_AFTER,
        forget_after: float | None = None,
        request_timeout: float | None = None,
        client: AsyncHttpClient | None = None,
        api_key: str | None = None,
        post_json: PostJson | None = None,
        on_event: EventSink | None = None,
        multicast: bool = False,
        beacon_group: str = BEACON_GROUP,
        beacon_port: int = BEACON_PORT,
        beacon_interface: str = "0.0.0.0",
        max_hosts: int = MAX_MESH_HOSTS,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        seeds_only: bool = False,
    ) -> None:
        if not code_version:
            raise ValueError("code_version must not be empty")
        _check_positive("interval", interval, MIN_GOSSIP_INTERVAL)
        _check_positive("offline_after", offline_after, 0.0)
        self.code_version = code_version
        self.interval = float(interval)
        self.offline_after = float(offline_after)
        self.forget_after = (
            float(forget_after)
            if forget_after is not None
            else self.offline_after * FORGET_AFTER_OFFLINE_MULTIPLE
        )
        _check_positive("forget_after", self.forget_after, 0.0)
        self.request_timeout = (
            float(request_timeout)
            if request_timeout is not None
            else min(self.interval, MAX_HEARTBEAT_TIMEOUT)
        )
        _check_positive("request_timeout", self.request_timeout, 0.0)
        if max_hosts < 1:
            raise ValueError("max_hosts must be at least 1")
        self._self_ref = self_ref
        self._clock = clock
        self._wall = wall_clock
        self._rng = rng if rng is not None else random.Random()
        self._on_event = on_event
        self._client = client
        self._own_client = client is None and post_json is None
        self._api_key = api_key
        suspicion_max = max(self.offline_after - 2 * self.interval, self.interval)
        suspicion_min = max(2 * self.interval, SUSPICION_MIN_FRACTION * self.offline_after)
        self._table = PeerTable(
            code_version=code_version,
            suspicion_min=min(suspicion_max, suspicion_min),
            suspicion_max=suspicion_max,
            forget_after=self.forget_after,
            max_hosts=max_hosts,
            max_rejected=MAX_REJECTED_HOSTS,
            backoff=self._backoff,
        )
        self._table.seeds_only = seeds_only
        self._counters = Counters()
        self._gossip = Gossip(
            self._table,
            self_ref=self.self_ref,
            post=post_json if post_json is not None else self._http_post,
            counters=self._counters,
            after_change=self._after_change,
            code_version=code_version,
            interval=self.interval,
            request_timeout=self.request_timeout,
            rng=self._rng,
            clock=clock,
            wall=wall_clock,
            beacon=(beacon_group, beacon_port, beacon_interface) if multicast else None,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._changed: asyncio.Event | None = None
        self._stopped = False
        self._indirect: asyncio.Semaphore | None = None
        now = clock()
        for seed in seeds:
            self._table.add_seed(peer_url(seed), now)
        self._table.drain()

    # --- queries (any thread) -----------------------------------------------------------------------------

    def self_ref(self) -> HostRef:
        """Our own ref, fresh (online, age 0, our code version)."""
        ref = self._self_ref()
        url = normalize_host_url(ref.url)
        self._table.self_url = url
        return ref.replace(
            url=url,
            code_version=self.code_version,
            online=True,
            last_seen=round(self._wall(), 3),
            error=None,
            age=0.0,
        )

    def hosts(self, *, online_only: bool = False, include_self: bool = True) -> list[HostRef]:
        """Every member we know (offline ones too unless ``online_only``), sorted by (name, url)."""
        me = self.self_ref()
        refs = self._table.views(self._clock(), self._wall(), online_only=online_only)
        if include_self:
            refs.append(me)
        refs.sort(key=lambda ref: (ref.name, ref.url))
        return refs

    def lookup(self, name_or_url: str) -> HostRef | None:
        """The member with this name or URL (self included), or ``None``."""
        target = name_or_url.strip()
        if not target:
            return None
        me = self.self_ref()
        if target == me.name or same_url(target, me.url):
            return me
        return self._table.lookup(target, self._clock(), self._wall())

    def resolve_url(self, name_or_url: str) -> str:
        """The URL for a host name or URL: an ``http(s)://`` URL as it is (normalized), anything else is
        a name looked up among the members (self included): ``UnknownHostError`` when no member has it.

        Deviation from paglets 2.0, which turned an unknown name into ``http://<name>`` and so into a DNS
        lookup: a name never leaves the mesh. A scheme-less ``host:port`` matches a member listed at that
        address and is otherwise refused with a hint to write the scheme.
        """
        url = explicit_url(name_or_url)
        if url is not None:
            return url
        ref = self.lookup(name_or_url)
        if ref is not None:
            return ref.url
        raise UnknownHostError(self.unknown_host_text(name_or_url))

    def unknown_host_text(self, name: str) -> str:
        """``no host named 'zeta' in this mesh (known: alpha, beta)``, plus a hint for ``host:port``."""
        names = sorted({ref.name for ref in self.hosts()})
        shown = ", ".join(names[:MAX_NAMES_SHOWN])
        if len(names) > MAX_NAMES_SHOWN:
            shown += f" and {len(names) - MAX_NAMES_SHOWN} more"
        text = f"no host named {name.strip()[:200]!r} in this mesh (known: {shown or 'none'})"
        if looks_like_address(name):
            text += f"; a URL needs its scheme: http://{name.strip().rstrip('/')}"
        return text

    def is_online(self, name_or_url: str) -> bool:
        ref = self.lookup(name_or_url)
        return ref is not None and ref.online

    def peer_urls(self, *, include_known: bool = True) -> list[str]:
        """Seed URLs, plus every known peer URL with ``include_known`` (never our own)."""
        me = self.self_ref().url
        urls = set(self._table.urls() if include_known else self._table.seeds())
        urls.discard(me)
        return sorted(urls)

    def rejected(self) -> list[HostRef]:
        """Hosts refused for another code version, with the reason in ``error`` (oldest first)."""
        return self._table.rejected()

    def check_version(self, peer_version: str | None, *, expected: str | None = None) -> None:
        """``TransferError`` unless ``peer_version`` equals ``expected`` (default: our code version)."""
        want = self.code_version if expected is None else expected
        if peer_version != want:
            source = "the ticket's expected_code_version" if expected is not None else "this host's"
            raise TransferError(f"target runs code version {peer_version!r}, {source} is {want!r}")

    def statistics(self) -> MeshStatistics:
        counts = self._table.counts(self._clock())
        return MeshStatistics(
            peers_known=counts.known,
            peers_online=counts.online,
            seeds=counts.seeds,
            rejected=counts.rejected,
            dropped=counts.dropped,
            multicast_active=self._gossip.beacon is not None,
            **self._counters.snapshot(),
        )

    # --- mutations (any thread) -----------------------------------------------------------------------------

    def add_seed(self, url: str) -> None:
        """Contact ``url`` every round until it answers, and keep it for good (``--peer``)."""
        self._table.add_seed(peer_url(url), self._clock())
        self._after_change()

    def register(self, ref: HostRef) -> HostRef | None:
        """Take ``ref`` as a report from a third party (its ``age``, if any, counts back from now: a
        ref with an age makes a host we know nothing of a member; one without only introduces it).

        Returns our view of the host, or ``None`` when it is ours, refused (other code version) or the
        table is full.
        """
        now = self._clock()
        self.self_ref()
        self._gossip.absorb([ref.replace(url=normalize_host_url(ref.url)).to_wire()], base=now, skip=None)
        self._after_change()
        return self._table.lookup(ref.url, self._clock(), self._wall())

    def register_wire(self, payload: Any) -> HostRef | None:
        """:meth:`register` for a wire dict; ``HostError`` when it is malformed."""
        return self.register(HostRef.from_wire(payload))

    def mark_offline(self, url: str, error: str) -> None:
        """Someone could not reach ``url``: it is offline until one of our requests gets through."""
        normalized = normalize_host_url(url)
        self.self_ref()
        self._table.mark_offline(normalized, str(error), self._clock())
        self._after_change()

    def address_changed(self, previous_url: str) -> None:
        """Our own URL changed (rebind): forget the old one and tell the mesh at once."""
        self._table.remove(normalize_host_url(previous_url))
        self._gossip.announce()  # a new incarnation carries the new address
        self._kick()

    def accept_join(self, payload: Any) -> JoinReply:
        """Handle ``POST /hosts/join``: ``HostError`` (400) for a malformed body, else a :class:`JoinReply`.

        The caller's ref is direct evidence that it is alive; its ``updates`` and ``known_hosts`` are
        merged as reports that arrived now. A caller with another code version is refused (409) and
        recorded in :meth:`rejected`; the answer still carries our own ref so the caller can record why.
        The answer's ``hosts`` is our full list when the caller asked for a sync or is a paglets 2.0 host
        (no ``incarnation``), else empty; ``updates`` carries our piggybacked updates.
        """
        ref = HostRef.from_wire(payload)
        known = payload.get("known_hosts", [])
        if not isinstance(known, list):
            raise HostError("'known_hosts' must be a list of host refs")
        updates = payload.get("updates", [])
        if not isinstance(updates, list):
            raise HostError("'updates' must be a list of host refs")
        raw = payload.get("incarnation")
        incarnation = None if raw is None else incarnation_from_wire(raw)
        legacy = incarnation is None
        me = self.self_ref()
        now = self._clock()
        self._counters.bump("joins_received")
        accepted, spread = self._table.inbound(ref, incarnation, now)
        if not accepted:
            error = (
                f"code version mismatch: {me.url} runs {self.code_version!r}, "
                f"{ref.url} runs {ref.code_version!r}"
            )
            self._counters.bump("joins_refused")
            self._after_change()
            refusal = error_payload(HostError(error))
            refusal["host"] = me.to_wire()
            return JoinReply(False, refusal, [], error)
        if spread is not None:
            self._gossip.queue.put(spread)
        self._gossip.absorb(updates[:MAX_PIGGYBACK], base=now, skip=ref.url)
        self._gossip.absorb(known[:MAX_GOSSIP_REFS], base=now, skip=ref.url)
        self._after_change()
        body: dict[str, Any] = {"host": self._gossip.own_wire(me), "hosts": [], "updates": []}
        if legacy:
            hosts = self.hosts()
            body["hosts"] = [h.to_wire() for h in hosts]
            return JoinReply(True, body, hosts)
        if payload.get("sync") is True:
            body["hosts"] = self._gossip.full_list(me)
        else:
            self._gossip.compare(ref.url, payload.get("members"))
        body["updates"] = self._gossip.piggyback(ref.url)
        body["members"] = self._table.member_count()
        return JoinReply(True, body, [])

    async def accept_probe(self, payload: Any) -> dict[str, Any]:
        """Handle ``POST /hosts/probe`` (an indirect probe asked by another member): ping ``target`` for
        the caller; ``{"ok": true}`` when it answered. Only members we know are probed (never an
        arbitrary URL), at most :data:`MAX_INDIRECT_SERVED` at once; ``HostError`` (400) when malformed."""
        if not isinstance(payload, dict) or not isinstance(payload.get("target"), str):
            raise HostError("POST /hosts/probe needs {'target': <member url>}")
        target = normalize_host_url(payload["target"])
        timeout = payload.get("timeout", self.request_timeout)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not math.isfinite(timeout):
            raise HostError("'timeout' must be a number of seconds")
        self._bind_loop()
        if target not in self._table.urls() or target == self.self_ref().url:
            return {"ok": False, "error": "not a member here"}
        if self._indirect is None:
            self._indirect = asyncio.Semaphore(MAX_INDIRECT_SERVED)
        if self._indirect.locked():
            return {"ok": False, "error": "busy"}
        async with self._indirect:
            ok = await self._gossip.contact(target)
        self._after_change()
        return {"ok": ok}

    # --- waiting (on the loop) ------------------------------------------------------------------------------

    async def wait_for_host_async(
        self, name_or_url: str, *, timeout: float = 10.0, interval: float | None = None
    ) -> HostRef:
        """The member's ref once it is online; ``HostError`` after ``timeout`` seconds.

        Event-driven: wakes on every registry change, never polls (``interval``, the polling period of
        paglets 2.0, is accepted and ignored). Contacts the host at once if it is known but offline.
        """
        if not timeout >= 0:
            raise ValueError(f"timeout must be >= 0, got {timeout!r}")
        explicit_url(name_or_url)  # refuses other schemes; a name is only ever matched against members
        loop = self._bind_loop()
        deadline = loop.time() + timeout
        kicked = False
        while True:
            changed = self._changed
            assert changed is not None
            if self._stopped:
                raise HostError(f"mesh registry stopped while waiting for host {name_or_url!r}")
            ref = self.lookup(name_or_url)
            if ref is not None and ref.online:
                return ref
            if not kicked:
                kicked = True
                if ref is not None:
                    self._table.wake_peer(ref.url, self._clock())
                self._kick()
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise HostError(self._wait_timeout_text(name_or_url, timeout, ref))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await changed.wait()

    def wait_for_host(
        self, name_or_url: str, *, timeout: float = 10.0, interval: float | None = None
    ) -> HostRef:
        """Block until the member is online (paglets 2.0's signature): :meth:`wait_for_host_async` run on
        the registry's loop, from any other thread."""
        loop = self._loop
        if loop is None or loop.is_closed() or not loop.is_running():
            raise HostError("mesh registry is not running")
        if threading.get_ident() == self._loop_thread:
            raise RuntimeError("wait_for_host called on the registry's own loop; await wait_for_host_async")
        if not timeout >= 0:
            raise ValueError(f"timeout must be >= 0, got {timeout!r}")
        future = asyncio.run_coroutine_threadsafe(
            self.wait_for_host_async(name_or_url, timeout=timeout), loop
        )
        try:
            return future.result(timeout + SYNC_WAIT_GRACE)
        except TimeoutError as exc:  # the loop is stuck: give up, never wait for ever
            future.cancel()
            raise HostError(self._wait_timeout_text(name_or_url, timeout, None)) from exc

    def _wait_timeout_text(self, name_or_url: str, timeout: float, ref: HostRef | None) -> str:
        text = f"timed out after {timeout:g} s waiting for host {name_or_url!r}"
        if ref is not None:
            return f"{text} ({ref.url} is offline: {ref.error or 'no answer yet'})"
        if explicit_url(name_or_url) is None:
            return f"{text}: {self.unknown_host_text(name_or_url)}"
        return text

    # --- lifecycle (on the loop) ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the protocol task on the running loop (must be called from it)."""
        if self._task is not None:
            raise RuntimeError("mesh registry already started")
        loop = self._bind_loop()
        self._stopped = False
        wake = self._wake
        assert wake is not None
        self._task = loop.create_task(
            self._gossip.run(wake, self._beacon_unavailable), name="paglets-mesh-membership"
        )

    async def stop(self) -> None:
        """Stop the protocol and the beacon, wake waiters (they raise ``HostError``); idempotent."""
        self._stopped = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._own_client and self._client is not None:
            await self._client.aclose()
            self._client = None
        self._set_changed()

    async def gossip_once(self) -> None:
        """Run one protocol period now, contacting every entry that is not a live member, due or not."""
        self._bind_loop()
        await self._gossip.period(force=True)

    async def join(self, url: str) -> list[HostRef]:
        """Contact ``url`` once now (without making it a seed); the members we know afterwards."""
        self._bind_loop()
        normalized = peer_url(url)
        me = self.self_ref()
        if normalized != me.url:
            await self._gossip.contact(normalized, sync=True, admit=True)
            self._after_change()
        return self.hosts()

    # --- internals ------------------------------------------------------------------------------------------

    def _bind_loop(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is None or self._loop.is_closed():
            self._loop = loop
            self._loop_thread = threading.get_ident()
            self._wake = asyncio.Event()
            self._changed = asyncio.Event()
            self._gossip.rebind()
        elif self._loop is not loop:
            raise RuntimeError("MeshRegistry used from a different event loop than the one it runs on")
        return loop

    def _backoff(self, failures: int) -> float:
        cap = min(MAX_BACKOFF, self.interval * MAX_BACKOFF_INTERVALS)
        delay = min(self.interval * 2.0 ** min(failures - 1, 32), cap)
        return delay * self._rng.uniform(1.0 - JITTER, 1.0 + JITTER)

    def _on_loop(self, callback: Callable[[], None]) -> None:
        loop = self._loop
        if loop is None:
            return
        if threading.get_ident() == self._loop_thread:
            callback()
        else:
            with contextlib.suppress(RuntimeError):  # loop closed: nobody is waiting any more
                loop.call_soon_threadsafe(callback)

    def _kick(self) -> None:
        """Wake the protocol task: due contacts and pending updates go out as soon as the spacing allows."""
        self._on_loop(self._set_wake)

    def _set_wake(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def _set_changed(self) -> None:
        changed = self._changed
        if changed is not None:
            self._changed = asyncio.Event()
            changed.set()

    def _after_change(self) -> None:
        events, news = self._table.drain()
        if self._on_event is not None:
            for kind, data in events:
                try:
                    self._on_event(kind, data)
                except Exception:
                    self._counters.bump("event_failures")
        if news:
            self._kick()
        self._on_loop(self._set_changed)

    async def _http_post(self, url: str, payload: dict[str, Any], timeout: float) -> Any:
        client = self._client
        if client is None:
            client = self._client = AsyncHttpClient(api_key=self._api_key, timeout=timeout)
        response = await client.request(
            "POST", url, body=_ENCODER.encode(payload), content_type="application/json", timeout=timeout
        )
        if response.ok or response.status == 409:
            return response.json()
        response.raise_for_status()
        return None  # pragma: no cover - raise_for_status raised

    def _beacon_unavailable(self, error: str) -> None:
        if self._on_event is not None:
            try:
                self._on_event("mesh-multicast-unavailable", {"error": error})
            except Exception:
                self._counters.bump("event_failures")


def _check_positive(name: str, value: float, minimum: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if value <= 0 or value < minimum:
        raise ValueError(f"{name} must be > 0 and >= {minimum}, got {value!r}")
