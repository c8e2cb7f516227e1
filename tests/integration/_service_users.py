"""Paglets that use the built-in services the way docs/services.md shows (imported by name in children)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from paglets.core.agent import Paglet, PagletState
from paglets.core.messages import Message
from paglets.core.runtime_values import ServiceScope
from paglets.services.builtin.server_info import GET_DISK, SERVER_INFO, DiskRequest
from paglets.services.builtin.user_info import NOTIFY_USER, USER_INFO_AGENT_ID, UserInfoRequest


@dataclass
class AskerState(PagletState):
    pass


class DiskAsker(Paglet[AskerState]):
    """``go {home, job}``: reads its host's disks through server-info, tells the user on ``home``."""

    State = AskerState

    def handle_message(self, message: Message) -> Any:
        if message.kind != "go":
            return self.not_handled()
        handle = self.require_contract(SERVER_INFO, operation=GET_DISK, scope=ServiceScope.LOCAL)
        reply = handle.call(GET_DISK, DiskRequest(paths=["/"]))
        home = self.context.get_proxy(USER_INFO_AGENT_ID, message.get_arg("home"))
        assert home is not None
        text = f"{reply.host_name} has {len(reply.volumes)} volume(s)"
        home.send(
            NOTIFY_USER.to_message(
                UserInfoRequest(title="asker", message=text, job_id=message.get_arg("job"))
            )
        )
        return [volume.path for volume in reply.volumes]
