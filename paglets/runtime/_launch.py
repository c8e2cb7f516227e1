"""Starting what ``launch.toml`` asks for (docs/operations/launch.md): resident services and startup agents.

Order at host start: the launch-config sync result is reported as an event, every resident service is
declared (its record advertised, with no await in between, so no request can find one missing), then
the eager ones start, records with ``activate_on_startup`` are activated, then startup agents run: a
singleton with an agent id is skipped when active, activated when inactive, created otherwise. A failed
entry is reported (event and log line) and skipped; it never stops the host.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paglets.config.startup import (
    LaunchConfig,
    ResolvedResidentService,
    ResolvedStartupAgent,
    load_launch_config,
    resolve_resident_services,
    resolve_startup_agents,
)
from paglets.core.errors import HostError, PagletError
from paglets.core.runtime_values import LaunchConfigSyncAction
from paglets.runtime._resident import ResidentDeclaration

if TYPE_CHECKING:
    from paglets.runtime.host import Host

__all__ = ["LaunchRunner"]

_log = logging.getLogger("paglets.runtime")


class LaunchRunner:
    """See the module docstring."""

    def __init__(self, host: Host, launch_config: LaunchConfig | str | Path | None, sync_result: Any) -> None:
        self._host = host
        self._sync_result = sync_result
        self.config: LaunchConfig | None
        if launch_config is None or isinstance(launch_config, LaunchConfig):
            self.config = launch_config
        else:
            self.config = load_launch_config(launch_config)

    def report_sync(self) -> None:
        result = self._sync_result
        action = getattr(result, "action", result)
        kinds = {
            LaunchConfigSyncAction.COPIED: "launch-config-copy",
            LaunchConfigSyncAction.UPDATED: "launch-config-update",
        }
        if action in kinds:
            self._host.events.emit(kinds[action], data={"path": str(getattr(result, "path", ""))})

    async def declare_resident_services(self) -> None:
        if self.config is None:
            return
        host = self._host

        def failed(entry: Any, exc: HostError) -> None:
            self._failed("resident-service-failed", getattr(entry, "class_name", "?"), exc)

        declared: list[str] = []
        # every record first, so that a message to any of them finds it while eager ones start
        for service in resolve_resident_services(self.config, on_error=failed):
            try:
                await host.resident.declare(_declaration(service), start=False)
            except PagletError as exc:
                self._failed("resident-service-failed", service.class_name, exc)
            else:
                declared.append(service.agent_id)
        for agent_id in declared:
            await host.resident.start_eager(agent_id)

    async def start_startup_agents(self) -> None:
        if self.config is None:
            return

        def failed(entry: Any, exc: HostError) -> None:
            self._failed("startup-agent-failed", getattr(entry, "class_name", "?"), exc)

        for agent in resolve_startup_agents(self.config, on_error=failed):
            try:
                await self._start_agent(agent)
            except PagletError as exc:
                self._failed("startup-agent-failed", agent.class_name, exc)

    async def _start_agent(self, agent: ResolvedStartupAgent) -> None:
        host = self._host
        agent_id = agent.agent_id
        if agent_id is not None and agent.singleton:
            ctrl = host.manager.controllers.get(agent_id)
            if ctrl is not None and ctrl.status in ("ready", "moving", "starting"):
                host.events.emit("startup-agent-skip", agent_id=agent_id, class_name=agent.class_name)
                return
            if host.persistence.summary(agent_id) is not None:
                await host.persistence.activate(agent_id)
                host.events.emit("startup-agent-activate", agent_id=agent_id, class_name=agent.class_name)
                return
        from paglets.runtime.host import decode_creation_state

        new_id = await host.create_async(
            agent_class=agent.class_name,
            state_class=agent.state_class_name,
            state=decode_creation_state(agent.state_class_name, agent.state or None),
            init=agent.init,
            agent_id=agent_id,
        )
        host.events.emit("startup-agent-create", agent_id=new_id, class_name=agent.class_name)

    def _failed(self, kind: str, class_name: str, exc: BaseException) -> None:
        _log.error("host %s: %s for %s: %s", self._host.name, kind, class_name, exc)
        self._host.events.emit(kind, class_name=class_name, error=str(exc))


def _declaration(service: ResolvedResidentService) -> ResidentDeclaration:
    return ResidentDeclaration(
        agent_id=service.agent_id,
        agent_class=service.class_name,
        state_class=service.state_class_name,
        contract=service.contract,
        scope=service.scope,
        lifecycle=service.lifecycle,
        idle_timeout=service.idle_timeout,
        state=dict(service.state),
        init=service.init,
    )
