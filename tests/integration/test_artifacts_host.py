"""Artifacts through a host: send_artifact to a paglet, download from inside it, removal on dispose."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from _paglets import Receiver

from paglets.core.messages import Message
from paglets.remote.client import HostClient
from paglets.remote.proxy import PagletProxy
from paglets.runtime.host import Host


def test_send_artifact_and_dispose_removes_it(host: Host, tmp_path: Path) -> None:
    data = os.urandom(3 << 20)
    source = tmp_path / "blob.bin"
    source.write_bytes(data)
    client = HostClient()
    paglet = host.create(Receiver)
    proxy = PagletProxy(host.address, paglet.agent_id, client)
    reply = proxy.send_artifact(Message("take"), source, move=True)
    assert reply == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert not source.exists()
    owned = client.list_artifacts(host.address, owner_agent_id=paglet.agent_id)
    assert len(owned) == 1
    assert "artifacts:upload" in host.health()["capabilities"]
    paglet.dispose()
    assert client.list_artifacts(host.address, owner_agent_id=paglet.agent_id) == []
    client.close()
