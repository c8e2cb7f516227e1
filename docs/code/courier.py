"""Files that travel with a paglet, scratch space, class storage and artifacts."""

import hashlib
from dataclasses import dataclass
from typing import Any

from paglets.core.agent import Paglet, PagletState
from paglets.core.events import MobilityEvent
from paglets.core.messages import Message


@dataclass
class CourierState(PagletState):
    report: str = ""


class Courier(Paglet[CourierState]):
    State = CourierState

    def handle_message(self, msg: Message) -> Any:
        # --8<-- [start:carry]
        if msg.kind == "carry":  # take a file along to another host
            self.register_file(msg.get_arg("path"), name="parcel", mode="copy")
            return self.dispatch(msg.get_arg("to")).to_wire()
        # --8<-- [end:carry]
        # --8<-- [start:storage]
        if msg.kind == "remember":  # class storage: shared by every Courier of this host, kept
            storage = self.persistent_storage()  # a ManagedStorage with a quota (10 MiB by default)
            storage.write_text("last-visitor.txt", self.agent_id)
            status = storage.status()
            return f"{status.used_bytes} of {status.quota_bytes} bytes used"
        # --8<-- [end:storage]
        # --8<-- [start:artifact]
        if msg.kind == "publish":  # store a file on a host for anyone to download
            scratch = self.work_dir() / "summary.txt"
            scratch.write_text(self.state.report)
            ref = self.upload_artifact(scratch, name="summary.txt")
            return ref.to_wire()
        # --8<-- [end:artifact]
        if msg.kind == "report":
            return self.state.report
        return self.not_handled()

    # --8<-- [start:arrival]
    def on_arrival(self, event: MobilityEvent) -> None:
        # the file is already here, in this paglet's work directory
        path = self.file_path("parcel")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        where = "in its work dir" if path.parent == self.work_dir() else str(path.parent)
        self.state.report = f"{path.name} on {event.host_name}, {where}: sha256 {digest}..."

    # --8<-- [end:arrival]
