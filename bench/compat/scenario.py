"""Compatibility scenarios: observe what the paglets 2.0 authoring API returns, and print it as JSON.

Runs unchanged under paglets 2.0.0 and under ours (``diff.py`` runs it with both interpreters, inside a
network namespace with only loopback up). It only uses names that exist in 2.0. Every observation is one
key of the printed JSON object:

- ``api:<Class>.<method>``: the parameters of a public callable (name, kind, default);
- ``host:...``, ``http:...``, ``inside:...``: the *shape* of a result (``shapes.py``) or
  ``error:<ExceptionClass>``;
- ``order:...``: hook logs and context-event kinds, in order;
- ``kinds:...``: the set of context-event kinds a host emitted over the whole run;
- ``value:...``: values that must be equal (counts, flags).

    python bench/compat/scenario.py            # prints one JSON object on its last line
"""

from __future__ import annotations

import faulthandler
import inspect
import json
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from shapes import error_name, shape

#: Seconds after which a hung scenario dumps its threads and exits (the diff then reports the failure).
SCENARIO_DEADLINE = 600

OUT: dict[str, Any] = {}


def record(key: str, fn: Callable[[], Any]) -> Any:
    """Store the shape of ``fn()`` (or its error class) under ``key``; return the value (None on error)."""
    try:
        value = fn()
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        OUT[key] = f"error:{error_name(exc)}"
        return None
    OUT[key] = shape(value)
    return value


def value(key: str, fn: Callable[[], Any]) -> Any:
    """Store ``fn()`` itself (JSON) under ``key``."""
    try:
        result = fn()
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        OUT[key] = f"error:{error_name(exc)}"
        return None
    OUT[key] = result
    return result


def until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except Exception:
            pass
        time.sleep(0.02)
    return False


# --- the API surface ---------------------------------------------------------------------------------

SURFACE = {
    "paglets.core.agent": ["Paglet", "PagletContext", "state_locked"],
    "paglets.core.messages": ["Message", "FutureReply", "ReplySet"],
    "paglets.core.events": [
        "PagletEvent",
        "CreationEvent",
        "MobilityEvent",
        "CloneEvent",
        "PersistencyEvent",
    ],
    "paglets.core.context_events": ["ContextEvent", "ContextEventLog"],
    "paglets.core.itinerary": ["ItineraryPlan", "TaskItineraryPlan", "ItineraryTask", "ItineraryAgentMixin"],
    "paglets.runtime.host": ["Host"],
    "paglets.runtime.resources": ["ResourceRegistry"],
    "paglets.remote.proxy": ["PagletProxy"],
    "paglets.remote.references": ["PagletProxyRef"],
    "paglets.remote.transfer": ["TransferTicket"],
    "paglets.remote.client": ["HostClient"],
    "paglets.remote.mesh": ["HostRef"],
    "paglets.persistence.persistency": ["DeactivationPolicy", "DeactivationRequest", "QueuedMessage"],
    "paglets.persistence.storage": ["ManagedStorage", "StorageStatus"],
    "paglets.services.contracts": [
        "ServiceContract",
        "ServiceOperation",
        "ServiceHandle",
        "ServiceRecord",
        "ServiceRegistry",
    ],
    "paglets.services.resident": ["ResidentServiceSpec", "ServiceLease"],
    "paglets.artifacts": ["ArtifactRef", "PagletFileRef", "ArtifactStore"],
    "paglets.serialization.codec": [
        "qualified_name",
        "resolve_qualified_name",
        "dataclass_to_wire",
        "dataclass_from_wire",
    ],
    "paglets.patterns.tasks": ["TaskPaglet", "TaskClient", "TaskSnapshot", "TaskState"],
    "paglets.patterns.operations": ["OperationPaglet", "OperationClient"],
    "paglets.patterns.coordination": [
        "MeshFanoutMixin",
        "MeshFanoutState",
        "ChildRoleState",
        "CursorDrainMixin",
    ],
    "paglets.patterns.notifications": ["NotificationMixin"],
    "paglets.patterns.file_mobility": [
        "FileMobilityMixin",
        "SingleFileTransferPaglet",
        "FileTransferRequest",
        "FileTransferResult",
        "FileTransferEndpoint",
        "FileTransferState",
        "format_bytes",
    ],
}


def _signature(obj: Any) -> Any:
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return "no-signature"
    params = []
    for p in sig.parameters.values():
        default = None if p.default is inspect.Parameter.empty else repr(p.default)
        params.append([p.name, p.kind.name, default])
    return params


def _members(cls: type) -> dict[str, Any]:
    """Attributes defined by ``cls`` and its bases from paglets (mixins included), subclass first."""
    found: dict[str, Any] = {}
    for base in cls.__mro__:
        if not base.__module__.startswith("paglets"):
            continue
        for attr, member in vars(base).items():
            found.setdefault(attr, member)
    return found


def api_surface() -> None:
    import importlib

    for module_name, names in SURFACE.items():
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            OUT[f"api:{module_name}"] = f"error:{error_name(exc)}"
            continue
        for name in names:
            obj = getattr(module, name, None)
            if obj is None:
                OUT[f"api:{module_name}.{name}"] = "missing"
                continue
            if not inspect.isclass(obj):
                OUT[f"api:{name}()"] = _signature(obj)
                continue
            for attr, member in sorted(_members(obj).items()):
                if attr.startswith("_") and attr != "__init__":
                    continue
                if isinstance(member, (staticmethod, classmethod)):
                    member = member.__func__
                if isinstance(member, property):
                    OUT[f"api:{name}.{attr}"] = "property"
                elif inspect.isfunction(member):
                    OUT[f"api:{name}.{attr}"] = _signature(member)


# --- HTTP ----------------------------------------------------------------------------------------------


def http(method: str, url: str, body: Any = None, content_type: str = "application/json") -> tuple[int, Any]:
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        status = exc.code
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw[:80].decode(errors="replace")


def http_record(key: str, method: str, url: str, body: Any = None, **kw: Any) -> Any:
    try:
        status, payload = http(method, url, body, **kw)
    except Exception as exc:
        OUT[key] = f"error:{error_name(exc)}"
        return None
    entry: dict[str, Any] = {"status": status, "body": shape(payload)}
    if isinstance(payload, dict) and "error_type" in payload:
        entry["error_type"] = payload["error_type"]
    OUT[key] = entry
    return payload


# --- scenarios -------------------------------------------------------------------------------------------


def new_host(name: str, root: Path, **kw: Any) -> Any:
    from paglets.runtime.host import Host

    return Host(
        name,
        persistence_dir=root / name,
        mesh_lan_discovery=False,
        mesh_multicast=False,
        mesh_version="compat",
        **kw,
    )


def log_of(host: Any, agent_id: str) -> list[str]:
    from compat_paglets import LogState

    return list(host.get_state(agent_id, LogState).log)


def events_since(host: Any, mark: int) -> tuple[list[str], int]:
    events = host.list_events(since=mark, limit=1000)
    kinds = [e.kind for e in events]
    return kinds, (events[-1].event_id if events else mark)


def first_event_shapes(host: Any, other: Any) -> None:
    OUT["kinds:context events of alpha"] = sorted({e.kind for e in host.list_events(since=0, limit=1000)})
    OUT["kinds:context events of beta"] = sorted({e.kind for e in other.list_events(since=0, limit=1000)})
    seen: set[str] = set()
    for event in host.list_events(since=0, limit=1000):
        if event.kind in seen:
            continue
        seen.add(event.kind)
        OUT[f"host:event[{event.kind}].to_wire()"] = shape(event.to_wire())


def lifecycle(alpha: Any, beta: Any) -> None:
    """Create, message, clone, dispatch, retract, deactivate, activate, dispose: results and order."""
    from compat_paglets import LogState, Recorder

    from paglets.core.messages import Message

    mark = alpha.list_events(since=0, limit=1000)[-1].event_id if alpha.list_events(limit=1000) else 0
    proxy = record("host:create()", lambda: alpha.create(Recorder, LogState(), init=7))
    aid = proxy.agent_id
    value("order:log after create", lambda: log_of(alpha, aid))
    kinds, mark = events_since(alpha, mark)
    OUT["order:events of create"] = kinds
    record("host:proxy.send(log)", lambda: proxy.send(Message("log")))
    record(
        "host:proxy.send(echo bytes)",
        lambda: proxy.send(Message("echo", {"b": b"\x00\x01", "ba": bytearray(b"x"), "t": (1, 2)}, arg=b"z")),
    )
    until(lambda: alpha.mailbox_status(aid)["delivered_count"] >= 2)
    kinds, mark = events_since(alpha, mark)
    OUT["kinds:events of two sends"] = sorted(kinds)  # 2.0 may emit -delivered before -queued
    record("host:proxy.send(raise_runtime)", lambda: proxy.send(Message("raise_runtime")))
    record("host:proxy.send(raise_value)", lambda: proxy.send(Message("raise_value")))
    record("host:proxy.send(unknown kind)", lambda: proxy.send(Message("nope")))
    record("host:proxy.send_oneway()", lambda: proxy.send_oneway(Message("log")))
    future = record("host:proxy.send_future()", lambda: proxy.send_future(Message("log")))
    if future is not None:
        record("host:future.get_reply()", lambda: future.get_reply(10))
    replies = record("host:multicast_message()", lambda: alpha.multicast_message("log"))
    if replies is not None:
        record("host:replyset.wait_for_all_replies()", lambda: replies.wait_for_all_replies(10))
    record("host:deliver_message()", lambda: alpha.deliver_message(aid, Message("log")))
    record("host:mailbox_status()", lambda: alpha.mailbox_status(aid))
    record("host:get_proxy()", lambda: alpha.get_proxy(aid))
    record("host:get_proxies()", lambda: alpha.get_proxies())
    record("host:get_state()", lambda: alpha.get_state(aid, LogState))
    record("host:proxy.info() active", proxy.info)
    record("host:proxy.is_active()", proxy.is_active)
    record("host:proxy.is_valid()", proxy.is_valid)
    record("host:proxy.get_agent_class_name()", proxy.get_agent_class_name)
    record("host:proxy.ref()", proxy.ref)
    record("host:list_agents() active", lambda: alpha.list_agents())
    record("host:list_agents(include_state) active", lambda: alpha.list_agents(include_state=True))
    http_record("http:GET /agents", "GET", f"{alpha.address}/agents")
    http_record("http:GET /agents?include_state=1", "GET", f"{alpha.address}/agents?include_state=1")
    http_record("http:GET /agents/{id} active", "GET", f"{alpha.address}/agents/{aid}")
    http_record("http:GET /agents/{id}/state active", "GET", f"{alpha.address}/agents/{aid}/state")
    inside = proxy.send(Message("probe"))
    if isinstance(inside, dict):
        for key, shaped in inside.items():
            OUT[f"inside:{key}"] = shaped
    else:
        OUT["inside:probe"] = shape(inside)

    # clone on the same host, then to beta: the clone's run() has been entered when clone returns
    until(
        lambda: alpha.mailbox_status(aid)["queued_count"] + alpha.mailbox_status(aid)["in_flight_count"] == 0
    )
    kinds, mark = events_since(alpha, mark)
    OUT["order:events of messages, probe and multicast"] = sorted(set(kinds))
    clone = record("host:clone() same host", lambda: alpha.clone(aid))
    if clone is not None:
        value("order:clone log right after clone (same host)", lambda: log_of(alpha, clone.agent_id)[-2:])
    value("order:original log after clone", lambda: log_of(alpha, aid)[-2:])
    kinds, mark = events_since(alpha, mark)
    OUT["order:events of clone (same host)"] = kinds
    clone_b = record("host:clone(beta)", lambda: alpha.clone(aid, target=beta.address))
    if clone_b is not None:
        value("order:clone log right after clone (beta)", lambda: log_of(beta, clone_b.agent_id)[-2:])
    kinds, mark = events_since(alpha, mark)
    OUT["order:events of clone (beta, source)"] = kinds

    moved = record("host:dispatch(beta)", lambda: alpha.dispatch(aid, beta.address))
    value("order:log right after dispatch", lambda: log_of(beta, aid)[-3:])
    value(
        "value:source lists after dispatch", lambda: [a["agent_id"] for a in alpha.list_agents()].count(aid)
    )
    value("value:target lists after dispatch", lambda: [a["agent_id"] for a in beta.list_agents()].count(aid))
    kinds, mark = events_since(alpha, mark)
    OUT["order:events of dispatch (source)"] = kinds
    if moved is not None:
        record("host:moved proxy.info()", moved.info)
    back = record("host:retract()", lambda: alpha.retract(beta.address, aid))
    value("order:log right after retract", lambda: log_of(alpha, aid)[-3:])
    kinds, mark = events_since(alpha, mark)
    OUT["order:events of retract (target)"] = kinds
    if back is None:
        return
    inactive = record("host:deactivate()", lambda: alpha.deactivate(aid))
    kinds, mark = events_since(alpha, mark)
    OUT["order:events of deactivate"] = kinds
    record("host:list_agents(inactive)", lambda: alpha.list_agents(active=False, inactive=True))
    record(
        "host:list_agents(inactive, include_state)",
        lambda: alpha.list_agents(active=False, inactive=True, include_state=True),
    )
    record("host:get_proxy(inactive)", lambda: alpha.get_proxy(aid))
    record("host:get_proxy(inactive, include_inactive)", lambda: alpha.get_proxy(aid, include_inactive=True))
    record("host:get_proxies(INACTIVE)", lambda: alpha.get_proxies(2))
    if inactive is not None:
        record("host:proxy.info() inactive", inactive.info)
        record("host:proxy.is_active() inactive", inactive.is_active)
    http_record("http:GET /agents/{id} inactive", "GET", f"{alpha.address}/agents/{aid}")
    http_record("http:GET /agents/{id}/state inactive", "GET", f"{alpha.address}/agents/{aid}/state")
    http_record("http:GET /agents?state=all", "GET", f"{alpha.address}/agents?state=all")
    record("host:health() with inactive", alpha.health)
    value("value:health inactive_count", lambda: alpha.health()["inactive_count"])
    record("host:get_state(inactive)", lambda: alpha.get_state(aid, LogState))
    record(
        "host:send(no_delay) inactive",
        lambda: alpha.deliver_message(aid, Message("log"), activate_if_inactive=False, no_delay=True),
    )
    record("host:activate()", lambda: alpha.activate(aid))
    value("order:log right after activate", lambda: log_of(alpha, aid)[-3:])
    kinds, mark = events_since(alpha, mark)
    OUT["order:events of activate"] = kinds
    record("host:activate(active)", lambda: alpha.activate(aid))
    record("host:dispose()", lambda: alpha.dispose(aid))
    kinds, mark = events_since(alpha, mark)
    OUT["order:events of dispose"] = kinds
    record("host:proxy.send() after dispose", lambda: proxy.send(Message("log")))
    record("host:proxy.info() after dispose", proxy.info)
    record("host:proxy.is_valid() after dispose", proxy.is_valid)
    record("host:get_state() after dispose", lambda: alpha.get_state(aid, LogState))
    record("host:dispose() twice", lambda: alpha.dispose(aid))


def self_moves(alpha: Any, beta: Any) -> None:
    """A paglet moving itself from a handler: what the handler's caller receives."""
    from compat_paglets import LogState, Recorder

    from paglets.core.messages import Message

    proxy = alpha.create(Recorder, LogState())
    record("host:send(self_clone)", lambda: proxy.send(Message("self_clone", {"target": alpha.address})))
    record("host:send(self_dispatch)", lambda: proxy.send(Message("self_dispatch", {"target": beta.address})))
    value("order:log after self_dispatch", lambda: log_of(beta, proxy.agent_id)[-3:])
    moved = beta.get_proxy(proxy.agent_id)
    if moved is not None:
        record("host:send(self_deactivate)", lambda: moved.send(Message("self_deactivate")))
        value(
            "value:inactive after self_deactivate",
            lambda: [a["agent_id"] for a in beta.list_agents(active=False, inactive=True)].count(
                proxy.agent_id
            ),
        )


def crashes(alpha: Any, beta: Any) -> None:
    from compat_paglets import Broken, LogState, Recorder

    from paglets.core.messages import Message

    proxy = alpha.create(Recorder, LogState())
    record("host:send(exit)", lambda: proxy.send(Message("exit")))
    until(lambda: any(a.get("crashed") for a in alpha.list_agents() if a["agent_id"] == proxy.agent_id))
    record("host:list_agents() crashed", lambda: [a for a in alpha.list_agents() if a["crashed"]])
    record("host:proxy.info() crashed", proxy.info)
    value("value:crashed exitcode", lambda: proxy.info()["exitcode"])
    record("host:send() to crashed", lambda: proxy.send(Message("log")))
    record("host:get_proxy(crashed)", lambda: alpha.get_proxy(proxy.agent_id))
    http_record("http:GET /agents/{id} crashed", "GET", f"{alpha.address}/agents/{proxy.agent_id}")
    record("host:dispose(crashed)", lambda: alpha.dispose(proxy.agent_id))
    broken = record("host:create(run raises)", lambda: alpha.create(Broken, LogState()))
    if broken is not None:
        until(lambda: bool(broken.info().get("crashed")))
        record("host:proxy.info() run raised", broken.info)
        value(
            "value:paglet-crashed event for run()",
            lambda: any(
                e.kind == "paglet-crashed" and e.agent_id == broken.agent_id
                for e in alpha.list_events(limit=1000)
            ),
        )


def services(alpha: Any, beta: Any) -> None:
    """Services advertised from the starting hooks, and what is left when a start fails."""
    from compat_paglets import LogState, Recorder

    from paglets.core.runtime_values import ServiceScope

    created = record(
        "host:create(advertise in on_creation)", lambda: alpha.create(Recorder, LogState(advertise="svc-c"))
    )
    record("host:lookup_service(created)", lambda: alpha.lookup_service("svc-c"))
    record("host:lookup_services(created)", lambda: alpha.lookup_services("svc-c"))
    record(
        "host:create(advertise, creation fails)",
        lambda: alpha.create(Recorder, LogState(advertise="svc-f", fail_in="creation")),
    )
    record("host:lookup_service(after failed creation)", lambda: alpha.lookup_service("svc-f"))
    value("value:paglets after failed creation", lambda: len(alpha.list_agents()))
    if created is not None:
        record(
            "host:clone(beta, advertise in on_clone)",
            lambda: alpha.clone(created.agent_id, target=beta.address),
        )
        record("host:beta lookup_service(clone)", lambda: beta.lookup_service("svc-c"))
        record(
            "host:dispatch(beta, advertise in on_arrival)",
            lambda: alpha.dispatch(created.agent_id, beta.address),
        )
        value("value:beta records after arrival", lambda: len(beta.lookup_services("svc-c")))
        value("value:alpha records after departure", lambda: len(alpha.lookup_services("svc-c")))
        record(
            "host:mesh lookup from alpha",
            lambda: alpha.lookup_services("svc-c", scope=ServiceScope.MESH),
        )
        record("host:beta deactivate(advertiser)", lambda: beta.deactivate(created.agent_id))
        value("value:beta records after deactivate", lambda: len(beta.lookup_services("svc-c")))
        record("host:beta activate(advertise in on_activation)", lambda: beta.activate(created.agent_id))
        value("value:beta records after activate", lambda: len(beta.lookup_services("svc-c")))
    failing = alpha.create(Recorder, LogState(advertise="svc-a", fail_in="arrival"))
    record("host:dispatch(beta, arrival fails)", lambda: alpha.dispatch(failing.agent_id, beta.address))
    value("value:beta records after failed arrival", lambda: len(beta.lookup_services("svc-a")))
    value("value:alpha records after failed arrival", lambda: len(alpha.lookup_services("svc-a")))
    record("host:advertise_service(unknown id)", lambda: alpha.advertise_service("0" * 32, "svc-x"))
    record("host:unadvertise_service(unknown)", lambda: alpha.unadvertise_service("svc-x"))


def mistakes(alpha: Any, beta: Any) -> None:
    """Error classes for common mistakes."""
    from compat_paglets import LogState, Recorder

    from paglets.core.messages import Message
    from paglets.remote.proxy import PagletProxy
    from paglets.remote.transfer import TransferTicket

    unknown = "f" * 32
    record("error:get_state(unknown)", lambda: alpha.get_state(unknown, LogState))
    record("error:dispose(unknown)", lambda: alpha.dispose(unknown))
    record("error:activate(unknown)", lambda: alpha.activate(unknown))
    record("error:deactivate(unknown)", lambda: alpha.deactivate(unknown))
    record("error:dispatch(unknown)", lambda: alpha.dispatch(unknown, beta.address))
    record("error:clone(unknown)", lambda: alpha.clone(unknown))
    record("error:deliver_message(unknown)", lambda: alpha.deliver_message(unknown, Message("x")))
    record("error:get_proxy(unknown)", lambda: alpha.get_proxy(unknown))
    record("error:mailbox_status(unknown)", lambda: alpha.mailbox_status(unknown))
    stray = PagletProxy(alpha.address, unknown, alpha.client)
    record("error:proxy(unknown).send()", lambda: stray.send(Message("x")))
    record("error:proxy(unknown).info()", stray.info)
    record("error:proxy(unknown).is_valid()", stray.is_valid)
    record("error:create(state of another class)", lambda: alpha.create(Recorder, Message("x")))
    first = alpha.create(Recorder, LogState(), agent_id="compat-dup")
    record(
        "error:create(duplicate agent_id)", lambda: alpha.create(Recorder, LogState(), agent_id="compat-dup")
    )
    record("error:dispatch(unreachable)", lambda: alpha.dispatch(first.agent_id, "http://127.0.0.1:9"))
    record(
        "error:dispatch(missing capability)",
        lambda: alpha.dispatch(
            first.agent_id, TransferTicket(beta.address, required_capabilities=("no:such",))
        ),
    )
    value("value:still active after failed dispatches", lambda: first.is_active())
    record("error:create_remote(unknown class over HTTP)", lambda: _create_unknown_class(alpha))
    http_record(
        "http:POST /agents unknown class",
        "POST",
        f"{alpha.address}/agents",
        {"agent_class_name": "no_such_module:Nope", "state_class_name": "no_such_module:State"},
    )
    http_record("http:GET unknown route", "GET", f"{alpha.address}/no/such/route")
    http_record("http:GET /agents/{unknown}", "GET", f"{alpha.address}/agents/{unknown}")
    http_record(
        "http:POST /agents/{unknown}/messages",
        "POST",
        f"{alpha.address}/agents/{unknown}/messages",
        {"message": {"kind": "x"}},
    )
    http_record(
        "http:POST /agents/{id}/messages without message",
        "POST",
        f"{alpha.address}/agents/{first.agent_id}/messages",
        {},
    )
    http_record("http:POST /agents malformed JSON", "POST", f"{alpha.address}/agents", b"{nope")
    http_record(
        "http:POST /agents/{unknown}/dispose", "POST", f"{alpha.address}/agents/{unknown}/dispose", {}
    )


def _create_unknown_class(host: Any) -> Any:
    return host.client.post_json(
        f"{host.address}/agents",
        {"agent_class_name": "no_such_module:Nope", "state_class_name": "no_such_module:State", "state": {}},
    )


def host_queries(alpha: Any, beta: Any) -> None:
    record("host:list_hosts()", alpha.list_hosts)
    record("host:list_hosts(online_only)", lambda: alpha.list_hosts(online_only=True))
    record("host:health()", alpha.health)
    record("host:list_events()", alpha.list_events)
    record("host:get_property(missing)", lambda: alpha.get_property("nope"))
    record("host:work_dir_for(unknown)", lambda: alpha.work_dir_for("f" * 32))
    record("host:mesh.hosts()", lambda: alpha.mesh.hosts())
    record("host:mesh.lookup(self)", lambda: alpha.mesh.lookup(alpha.name))
    record("host:mesh.is_online(self)", lambda: alpha.mesh.is_online(alpha.name))
    record("host:mesh.resolve_url(self)", lambda: alpha.mesh.resolve_url(alpha.name))
    record("host:mesh.code_version", lambda: alpha.mesh.code_version)
    waited = record(
        "host:mesh.wait_for_host(self)", lambda: alpha.mesh.wait_for_host(alpha.name, timeout=2.0)
    )
    if hasattr(waited, "close"):
        waited.close()  # a coroutine nobody awaits
    http_record("http:GET /health", "GET", f"{alpha.address}/health")
    http_record("http:GET /hosts", "GET", f"{alpha.address}/hosts")
    http_record("http:GET /events", "GET", f"{alpha.address}/events?since=0&limit=5")
    http_record("http:GET /services", "GET", f"{alpha.address}/services")


def unstarted(root: Path) -> None:
    """A host constructed on an existing persistence directory but not started answers from its records."""
    from compat_paglets import LogState, Recorder

    first = new_host("delta", root)
    first.start_background()
    try:
        proxy = first.create(Recorder, LogState())
        first.deactivate(proxy.agent_id)
    finally:
        first.stop()
    second = new_host("delta", root)
    record("unstarted:health()", second.health)
    value("value:unstarted inactive_count", lambda: second.health()["inactive_count"])
    record("unstarted:list_agents(inactive)", lambda: second.list_agents(active=False, inactive=True))
    record("unstarted:list_agents()", lambda: second.list_agents())
    record(
        "unstarted:get_proxy(include_inactive)",
        lambda: second.get_proxy(proxy.agent_id, include_inactive=True),
    )
    record("unstarted:get_proxies(INACTIVE)", lambda: second.get_proxies(2))
    record("unstarted:list_hosts()", second.list_hosts)
    second.start_background()
    try:
        value(
            "value:started after unstarted inspection lists inactive",
            lambda: len(second.list_agents(active=False, inactive=True)),
        )
    finally:
        second.stop()
    record("unstarted:stop() never started", lambda: new_host("epsilon", root).stop())


def section(step: Callable[..., None], *args: Any) -> None:
    """Run one group of observations; an unexpected error ends that group only (and is observed)."""
    try:
        step(*args)
    except Exception as exc:
        OUT[f"section:{step.__name__}"] = f"error:{error_name(exc)}: {exc}"[:300]
    else:
        OUT[f"section:{step.__name__}"] = "completed"


def main() -> None:
    faulthandler.dump_traceback_later(SCENARIO_DEADLINE, exit=True)
    api_surface()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        alpha = new_host("alpha", root)
        alpha.start_background()
        beta = new_host("beta", root, peers=[alpha.address])
        beta.start_background()
        try:
            until(lambda: len(alpha.list_hosts(online_only=True)) == 2, timeout=15)
            for step in (
                host_queries,
                lifecycle,
                self_moves,
                crashes,
                services,
                mistakes,
                first_event_shapes,
            ):
                section(step, alpha, beta)
        finally:
            beta.stop()
            alpha.stop()
        section(unstarted, root)
    print(json.dumps(OUT, sort_keys=True))


if __name__ == "__main__":
    main()
