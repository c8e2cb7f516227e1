"""What a paglet process may ask its host: the host-call table.

A paglet process sends ``HostCall(op, args)`` frames (``paglets.runtime.child._facade`` builds them);
the controller passes each to :class:`HostCalls`, which looks the operation up in a table (routing is
data) and runs it on the host's event loop. Each operation gets the calling paglet's controller and
the decoded argument dict, and returns a plain value (encoded back with ``paglets.wire.values``).

Operations that move or persist a paglet, files, artifacts and services are answered by the modules
that own those features; until a host has them, the call fails with a ``HostError`` saying so.

Artifacts travel by path, never inline: ``upload_artifact`` names a file the host copies into its store
(the paglet process and its host share the filesystem), ``locate_artifact`` answers where a blob is so that
the paglet process copies it itself (``paglets.runtime._artifact_access``).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from paglets.artifacts import require_artifact_id
from paglets.core.errors import HostError
from paglets.runtime._controller import PagletController, Snapshot
from paglets.runtime._paglets import message_wire
from paglets.wire.limits import MAX_SEND_TIMEOUT

if TYPE_CHECKING:
    from paglets.runtime.host import Host

__all__ = ["HostCalls"]

Operation = Callable[["PagletController", dict[str, Any]], Awaitable[Any]]


class HostCalls:
    """The host calls a paglet process may make (``proto/PROTOCOL.md`` §1.4), bound to one host."""

    def __init__(self, host: Host) -> None:
        self._host = host
        self._table: dict[str, Operation] = {
            "deliver": self._deliver,
            "agent_call": self._agent_call,
            "get_proxy": self._get_proxy,
            "get_proxies": self._get_proxies,
            "list_agents": self._list_agents,
            "health": self._health,
            "get_property": self._get_property,
            "set_property": self._set_property,
            "create": self._create,
            "create_remote": self._create_remote,
            "storage": self._storage,
            "available_hosts": self._available_hosts,
            "mesh_code_version": self._mesh_code_version,
            "host_status": self._host_status,
            "is_host_online": self._is_host_online,
            "wait_for_host": self._wait_for_host,
            "resolve_host_url": self._resolve_host_url,
            "move": self._move,
            "deactivate_self": self._deactivate_self,
            "register_file": self._register_file,
            "registered_files": self._registered_files,
            "unregister_file": self._unregister_file,
            "registered_file_path": self._registered_file_path,
            "advertise_service": self._advertise_service,
            "unadvertise_service": self._unadvertise_service,
            "lookup_service": self._lookup_service,
            "lookup_services": self._lookup_services,
            "upload_artifact": self._upload_artifact,
            "locate_artifact": self._locate_artifact,
            "delete_artifact": self._delete_artifact,
        }

    async def __call__(self, ctrl: PagletController, op: str, args: Any) -> Any:
        operation = self._table.get(op)
        if operation is None:
            raise HostError(f"host {self._host.name} does not offer {op!r} to paglets")
        if not isinstance(args, dict):
            raise HostError(f"host call {op!r} needs a dict of arguments")
        return await operation(ctrl, args)

    # --- messages and paglets --------------------------------------------------------------------

    async def _deliver(self, ctrl: PagletController, args: dict[str, Any]) -> Any:
        message = message_wire(args.get("message"))  # checked: SerializationError names a wrong field
        if not message.sender:
            message = msgspec.structs.replace(message, sender=self._host.address)
        return await self._host.deliver_async(
            str(args["agent_id"]),
            message,
            oneway=bool(args.get("oneway")),
            activate_if_inactive=bool(args.get("activate_if_inactive", True)),
            no_delay=bool(args.get("no_delay")),
            timeout=_deadline(args.get("deadline")),
        )

    async def _agent_call(self, ctrl: PagletController, args: dict[str, Any]) -> Any:
        return await self._host.agent_call_async(
            str(args["agent_id"]), str(args["op"]), args.get("args") or {}
        )

    async def _get_proxy(self, ctrl: PagletController, args: dict[str, Any]) -> Any:
        proxy = self._host.get_proxy(
            str(args["agent_id"]), include_inactive=bool(args.get("include_inactive"))
        )
        return None if proxy is None else proxy.to_wire()

    async def _get_proxies(self, ctrl: PagletController, args: dict[str, Any]) -> Any:
        return [p.to_wire() for p in self._host.get_proxies(int(args.get("state", 1)))]

    async def _list_agents(self, ctrl: PagletController, args: dict[str, Any]) -> Any:
        return await self._host.list_agents_async(
            active=bool(args.get("active", True)),
            inactive=bool(args.get("inactive")),
            include_state=bool(args.get("include_state")),
        )

    async def _health(self, ctrl: PagletController, args: dict[str, Any]) -> Any:
        return self._host.health()

    async def _get_property(self, ctrl: PagletController, args: dict[str, Any]) -> Any:
        return self._host.get_property(str(args["key"]), args.get("default"))

    async def _set_property(self, ctrl: PagletController, args: dict[str, Any]) -> Any:
        self._host.set_property(str(args["key"]), args.get("value"))
        return None

    async def _create(self, ctrl: PagletController, args: dict[str, Any]) -> Any:
        agent_id = await self._host.create_async(
            agent_class=str(args["agent_class"]),
            state_class=str(args["state_class"]),
            state=args.get("state"),
            init=args.get("init"),
            agent_id=args.get("agent_id"),
        )
        return {"host_url": self._host.address, "agent_id": agent_id}

    async def _create_remote(self, ctrl: PagletController, args: dict[str, Any]) -> Any:
        return await self._host.create_remote_async(
            str(args["target_url"]),
            agent_class=str(args["agent_class"]),
            state_class=str(args["state_class"]),
            state=args.get("state"),
            init=args.get("init"),
            agent_id=args.get("agent_id"),
        )

    async def _move(self, ctrl: PagletController, args: dict[str, Any]) -> Any:
        """Self-initiated dispatch or clone: ``preflight`` first, then the paglet runs its
        leaving hook in the calling thread, then ``complete`` moves it."""
        from paglets.remote.transfer import TransferTicket

        kind = str(args["kind"])
        if kind not in ("dispatch", "clone"):
            raise HostError(f"a paglet cannot {kind} itself")
        raw = args.get("ticket")
        ticket = (
            TransferTicket.from_wire(raw)
            if isinstance(raw, dict)
            else TransferTicket.from_target(self._host.address)
        )
        movement = self._host.movement
        if args.get("phase") == "preflight":
            target = await movement._resolve(ticket)
            return await movement.preflight(ticket, target, agent_id=ctrl.agent_id)
        clone_id = args.get("clone_id")
        return await movement.move(
            ctrl.agent_id,
            ticket,
            kind="dispatch" if kind == "dispatch" else "clone",
            hooks_in_child=False,
            clone_id=str(clone_id) if isinstance(clone_id, str) else None,
            snapshot=_sent_state(ctrl, args),
        )

    def _held(self, ctrl: PagletController, agent_id: str) -> list[Any] | None:
        """The held-services list of a paglet prepared by an uncommitted move (see ``_services``)."""
        if agent_id == ctrl.agent_id and self._host.manager.is_prepared(ctrl):
            return ctrl.held_services
        return None

    async def _advertise_service(self, ctrl: PagletController, args: dict[str, Any]) -> Any:
        agent_id = str(args.get("agent_id") or ctrl.agent_id)
        record = self._host.services.advertise(
            agent_id,
            str(args["name"]),
            capabilities=args.get("capabilities") or (),
            metadata=args.get("metadata") or {},
            scope=str(args.get("scope") or "local"),
            ttl=args.get("ttl"),
            held=self._held(ctrl, agent_id),
        )
        return record.to_wire()

    async def _unadvertise_service(self, ctrl: PagletController, args: dict[str, Any]) -> Any:
        agent_id = args.get("agent_id") or None
        removed = self._host.services.unadvertise(
            str(args["name"]), agent_id=agent_id, held=self._held(ctrl, str(agent_id or ctrl.agent_id))
        )
        return [r.to_wire() for r in removed]

    async def _lookup_services(self, ctrl: PagletController, args: dict[str, Any]) -> Any:
        found = await self._host.services.lookup(
            args.get("name"), capability=args.get("capability"), scope=str(args.get("scope") or "local")
        )
        return [r.to_wire() for r in found]

    async def _lookup_service(self, ctrl: PagletController, args: dict[str, Any]) -> Any:
        found = await self._lookup_services(ctrl, args)
        return found[0] if found else None

    async def _deactivate_self(self, ctrl: PagletController, args: dict[str, Any]) -> Any:
        """Self-deactivation: the paglet ran ``deactivation_policy``, ``on_deactivating`` and its cleanup."""
        from paglets.persistence.persistency import DeactivationPolicy, DeactivationRequest

        request = DeactivationRequest.from_wire(args["request"])
        policy = DeactivationPolicy.from_wire(args["policy"])
        return await self._host.persistence.deactivate(
            ctrl.agent_id, request, decided_policy=policy, snapshot=_sent_state(ctrl, args)
        )

    async def _register_file(self, ctrl: PagletController, args: dict[str, Any]) -> Any:
        loop = asyncio.get_running_loop()
        ref = await loop.run_in_executor(
            None,
            lambda: self._host.files.register(
                ctrl.agent_id, str(args["path"]), name=args.get("name"), mode=str(args.get("mode") or "copy")
            ),
        )
        return ref.to_wire()

    async def _registered_files(self, ctrl: PagletController, args: dict[str, Any]) -> Any:
        return [ref.to_wire() for ref in self._host.files.refs(ctrl.agent_id)]

    async def _unregister_file(self, ctrl: PagletController, args: dict[str, Any]) -> Any:
        self._host.files.unregister(ctrl.agent_id, str(args["name"]))
        return None

    async def _registered_file_path(self, ctrl: PagletController, args: dict[str, Any]) -> Any:
        return str(self._host.files.path(ctrl.agent_id, str(args["name"])))

    # --- artifacts (by path; see the module docstring) -----------------------------------------------

    async def _upload_artifact(self, ctrl: PagletController, args: dict[str, Any]) -> Any:
        path = args.get("path")
        if not isinstance(path, str) or not os.path.isabs(path):
            raise HostError("upload_artifact needs the absolute path of a file")
        owner = args.get("owner_agent_id")
        ref = await self._host.artifacts.create_from_file_async(
            Path(path),
            owner_agent_id=ctrl.agent_id if owner is None else owner,
            name=args.get("name"),
            compression=args.get("compression", ""),
            expires_at=args.get("expires_at", 0.0),
        )
        return ref.to_wire()

    async def _locate_artifact(self, ctrl: PagletController, args: dict[str, Any]) -> Any:
        store = self._host.artifacts
        ref = store.metadata(require_artifact_id(args.get("artifact_id")))  # TransferError when unknown
        return {"artifact": ref.to_wire(), "path": str(store.blob_path(ref.artifact_id))}

    async def _delete_artifact(self, ctrl: PagletController, args: dict[str, Any]) -> Any:
        await self._host.artifacts.delete_async(require_artifact_id(args.get("artifact_id")))
        return None

    async def _storage(self, ctrl: PagletController, args: dict[str, Any]) -> Any:
        return await self._host.storage_call_async(ctrl.agent_class, args)

    # --- the mesh ---------------------------------------------------------------------------------

    async def _available_hosts(self, ctrl: PagletController, args: dict[str, Any]) -> Any:
        refs = self._host.mesh.hosts(
            online_only=bool(args.get("online_only", True)), include_self=bool(args.get("include_self", True))
        )
        return [ref.to_wire() for ref in refs]

    async def _mesh_code_version(self, ctrl: PagletController, args: dict[str, Any]) -> Any:
        return self._host.code_version

    async def _wait_for_host(self, ctrl: PagletController, args: dict[str, Any]) -> Any:
        ref = await self._host.mesh.wait_for_host_async(
            str(args["name_or_url"]), timeout=float(args.get("timeout", 10.0))
        )
        return ref.to_wire()

    async def _host_status(self, ctrl: PagletController, args: dict[str, Any]) -> Any:
        ref = self._host.mesh.lookup(str(args["name_or_url"]))
        return None if ref is None else ref.to_wire()

    async def _is_host_online(self, ctrl: PagletController, args: dict[str, Any]) -> Any:
        return self._host.is_host_online(str(args["name_or_url"]))

    async def _resolve_host_url(self, ctrl: PagletController, args: dict[str, Any]) -> Any:
        return self._host.resolve_host_url(str(args["name_or_url"]))


def _sent_state(ctrl: PagletController, args: dict[str, Any]) -> Snapshot | None:
    """The state a paglet sent ahead of a self-initiated move or deactivation (a handoff segment)."""
    ref = args.get("state_segment")
    if not (isinstance(ref, list) and len(ref) == 2 and all(isinstance(x, int) for x in ref)):
        return None
    segment = ctrl.channel.open_handoff(ref[0], ref[1])  # closed by its user, or with the channel
    return Snapshot(segment.view, segment.close)


def _deadline(value: Any) -> float | None:
    """A paglet's deadline for a synchronous send (``None``: the host's ``send_timeout``)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value <= MAX_SEND_TIMEOUT:
        return float(value)
    return None
