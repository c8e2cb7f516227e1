"""A paglet that uses the built-in services: server-info for its host's disks, user-info to report."""

from dataclasses import dataclass
from typing import Any

from paglets.core.agent import Paglet, PagletState
from paglets.core.messages import Message
from paglets.core.runtime_values import ServiceScope
from paglets.services.builtin.server_info import GET_DISK, SERVER_INFO, DiskRequest
from paglets.services.builtin.user_info import NOTIFY_USER, USER_INFO_AGENT_ID, UserInfoRequest


@dataclass
class InspectorState(PagletState):
    pass


class Inspector(Paglet[InspectorState]):
    State = InspectorState

    def handle_message(self, msg: Message) -> Any:
        if msg.kind == "disk":
            # --8<-- [start:server-info]
            handle = self.require_contract(SERVER_INFO, operation=GET_DISK, scope=ServiceScope.LOCAL)
            reply = handle.call(GET_DISK, DiskRequest(paths=["/"]))
            free = {volume.path: volume.free_bytes for volume in reply.volumes}
            # --8<-- [end:server-info]
            return sorted(free)
        if msg.kind == "tell":
            home_url, job_id = msg.get_arg("home"), msg.get_arg("job")
            # --8<-- [start:user-info]
            proxy = self.context.get_proxy(USER_INFO_AGENT_ID, home_url)
            proxy.send(NOTIFY_USER.to_message(UserInfoRequest(title="pi", message="done", job_id=job_id)))
            # --8<-- [end:user-info]
            return True
        return self.not_handled()
