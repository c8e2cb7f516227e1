"""Paglets that use artifacts from inside their process (imported by name in paglet processes)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paglets.artifacts import ArtifactRef, file_sha256
from paglets.core.agent import Paglet, PagletState
from paglets.core.errors import PagletError
from paglets.core.messages import Message


@dataclass
class ArtifactState(PagletState):
    uploads: int = 0


def _failure(exc: BaseException) -> dict[str, Any]:
    return {"error": type(exc).__name__, "message": str(exc)}


class ArtifactUser(Paglet[ArtifactState]):
    """Writes files and uploads them, downloads and deletes artifacts, sends them to other paglets.

    Every handler answers a plain dict; errors come back as ``{"error": class name, "message"}`` so that
    the tests see the class raised inside the paglet.
    """

    State = ArtifactState

    def handle_message(self, msg: Message) -> Any:
        try:
            return self._handle(msg)
        except PagletError as exc:
            return _failure(exc)

    def _handle(self, msg: Message) -> Any:
        if msg.kind == "write_and_upload":
            size = int(msg.get_arg("size"))
            path = self.work_dir() / str(msg.get_arg("file", "written.bin"))
            with path.open("wb") as out:  # a file this paglet wrote itself
                block = hashlib.sha256(self.agent_id.encode()).digest() * 2048
                left = size
                while left:
                    out.write(block[: min(left, len(block))])
                    left -= min(left, len(block))
            ref = self.upload_artifact(
                path,
                host_url=msg.get_arg("host_url"),
                name=msg.get_arg("name"),
                compression=str(msg.get_arg("compression", "")),
                expires_at=float(msg.get_arg("expires_at", 0.0)),
            )
            self.state.uploads += 1
            return {"type": type(ref).__name__, "ref": ref.to_wire(), "sha256": file_sha256(path)}
        if msg.kind == "upload_path":  # relative paths are the paglet's, not the host's
            os.chdir(self.work_dir())
            Path("relative.bin").write_bytes(b"relative")
            ref = self.upload_artifact("relative.bin", owner_agent_id=msg.get_arg("owner"))
            return {"ref": ref.to_wire()}
        if msg.kind == "download":
            target = self.work_dir() / "downloaded" / "copy.bin"
            got = self.download_artifact(
                ArtifactRef.from_wire(msg.get_arg("ref")), target, move=bool(msg.get_arg("move", False))
            )
            return {
                "type": type(got).__name__,
                "ref": got.to_wire(),
                "sha256": file_sha256(target),
                "size": target.stat().st_size,
                "left_over": sorted(os.listdir(target.parent)),
            }
        if msg.kind == "delete":
            result = self.delete_artifact(ArtifactRef.from_wire(msg.get_arg("ref")))
            return {"result": repr(result)}
        if msg.kind == "send_to":
            source = self.work_dir() / "to-send.bin"
            source.write_bytes(b"sent from a paglet " * 1000)
            proxy = self.context.get_proxy(str(msg.get_arg("agent_id")), msg.get_arg("host_url"))
            if proxy is None:  # a paglet this host does not know: a proxy that will fail to deliver
                proxy = self.context.host.remote_proxy(self.context.address, str(msg.get_arg("agent_id")))
            try:
                reply = proxy.send_artifact(
                    Message(str(msg.get_arg("message_kind", "take"))), source, move=True
                )
            except PagletError as exc:
                return {**_failure(exc), "source_exists": source.exists()}
            return {"reply": reply, "source_exists": source.exists()}
        if msg.kind == "take":  # what send_artifact delivers: the reference as a wire dict
            ref = ArtifactRef.from_wire(msg.get_arg("artifact"))
            target = self.work_dir() / "taken.bin"
            self.download_artifact(ref, target)
            return {"sha256": file_sha256(target), "owner": ref.owner_agent_id, "me": self.agent_id}
        if msg.kind == "refuse":
            raise ValueError("this handler refuses every artifact")
        return self.not_handled()
