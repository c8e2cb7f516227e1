"""Artifacts from inside paglets: real hosts, real paglet processes, real files.

A paglet uploads a file it wrote, another downloads it, a third deletes it; uploads are owned by the
uploader and go when it is disposed; artifacts of another host go over HTTP; ``send_artifact`` leaves no
artifact behind when the delivery fails, from outside and from inside a paglet.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _artifact_paglets import ArtifactUser
from conftest import wait_until

from paglets.artifacts import ArtifactRef, file_sha256
from paglets.core.agent import PagletContext
from paglets.core.errors import InvalidAgentError, PagletError, TransferError
from paglets.core.messages import Message
from paglets.remote.client import HostClient
from paglets.remote.proxy import PagletProxy
from paglets.runtime.host import Host

MiB = 1024 * 1024


def ask(proxy: PagletProxy, kind: str, **args: Any) -> Any:
    return proxy.send(Message(kind, args), timeout=60.0)


def owned(host: Host, agent_id: str) -> list[str]:
    return [ref.artifact_id for ref in host.artifacts.list(agent_id)]


def test_upload_download_delete_between_paglets(host: Host, tmp_path: Path) -> None:
    writer, reader, cleaner = (host.create(ArtifactUser) for _ in range(3))
    size = 5 * MiB + 123
    up = ask(writer, "write_and_upload", size=size, name="data.bin", compression="none", expires_at=0.0)
    assert up["type"] == "ArtifactRef"
    ref = ArtifactRef.from_wire(up["ref"])
    assert (ref.host_url, ref.name, ref.size_bytes, ref.compression) == (
        host.address,
        "data.bin",
        size,
        "none",
    )
    assert ref.sha256 == up["sha256"]
    assert ref.owner_agent_id == writer.agent_id  # owned by the paglet that uploaded it
    assert owned(host, writer.agent_id) == [ref.artifact_id]
    assert host.artifacts.metadata(ref.artifact_id) == ref

    got = ask(reader, "download", ref=ref.to_wire())
    assert got["type"] == "ArtifactRef"
    assert ArtifactRef.from_wire(got["ref"]) == ref  # 2.0 answers the reference it was given
    assert (got["sha256"], got["size"], got["left_over"]) == (ref.sha256, size, ["copy.bin"])

    assert ask(cleaner, "delete", ref=ref.to_wire()) == {"result": "None"}
    assert ref.artifact_id not in host.artifacts
    assert ask(cleaner, "delete", ref=ref.to_wire()) == {"result": "None"}  # already gone: fine
    gone = ask(reader, "download", ref=ref.to_wire())
    assert gone["error"] == "TransferError"
    assert "unknown artifact" in gone["message"]


def test_download_with_move_and_a_forged_reference(host: Host) -> None:
    writer, reader = host.create(ArtifactUser), host.create(ArtifactUser)
    ref = ArtifactRef.from_wire(ask(writer, "write_and_upload", size=1000)["ref"])
    forged = ArtifactRef(ref.host_url, ref.artifact_id, size_bytes=ref.size_bytes, sha256="0" * 64)
    refused = ask(reader, "download", ref=forged.to_wire())
    assert (refused["error"], "not the one" in refused["message"]) == ("TransferError", True)
    moved = ask(reader, "download", ref=ref.to_wire(), move=True)
    assert moved["sha256"] == ref.sha256
    assert host.artifacts.list() == []


def test_uploads_go_with_their_owner_and_relative_paths_are_the_paglets(host: Host) -> None:
    writer, other = host.create(ArtifactUser), host.create(ArtifactUser)
    mine = ArtifactRef.from_wire(ask(writer, "write_and_upload", size=2000)["ref"])
    relative = ArtifactRef.from_wire(ask(writer, "upload_path")["ref"])
    assert (relative.name, relative.size_bytes) == ("relative.bin", 8)
    given = ArtifactRef.from_wire(ask(writer, "upload_path", owner=other.agent_id)["ref"])
    assert given.owner_agent_id == other.agent_id  # an explicit owner, as in 2.0
    assert sorted(owned(host, writer.agent_id)) == sorted([mine.artifact_id, relative.artifact_id])
    writer.dispose()
    assert owned(host, writer.agent_id) == []
    assert owned(host, other.agent_id) == [given.artifact_id]


def test_artifacts_of_another_host(make_host: Callable[..., Host]) -> None:
    alpha = make_host("alpha")
    beta = make_host("beta", peers=[alpha.address])
    alpha.wait_for_host("beta", timeout=20.0)
    here, there = alpha.create(ArtifactUser), beta.create(ArtifactUser)

    by_url = ArtifactRef.from_wire(ask(here, "write_and_upload", size=3 * MiB, host_url=beta.address)["ref"])
    by_name = ArtifactRef.from_wire(ask(here, "write_and_upload", size=10, host_url="beta")["ref"])
    assert {by_url.host_url, by_name.host_url} == {beta.address}
    assert sorted(owned(beta, here.agent_id)) == sorted([by_url.artifact_id, by_name.artifact_id])
    assert alpha.artifacts.list() == []
    own_name = ArtifactRef.from_wire(ask(here, "write_and_upload", size=10, host_url="alpha")["ref"])
    assert own_name.host_url == alpha.address  # its own host by name: no HTTP

    local_read = ask(there, "download", ref=by_url.to_wire())  # beta's paglet: a local copy
    remote_read = ask(here, "download", ref=by_url.to_wire())  # alpha's paglet: over HTTP
    assert local_read["sha256"] == remote_read["sha256"] == by_url.sha256
    ask(here, "delete", ref=by_url.to_wire())
    assert owned(beta, here.agent_id) == [by_name.artifact_id]
    ask(here, "download", ref=by_name.to_wire(), move=True)
    assert beta.artifacts.list() == []


def test_send_artifact_to_a_missing_paglet_leaves_nothing(host: Host, tmp_path: Path) -> None:
    source = tmp_path / "payload.bin"
    source.write_bytes(os.urandom(MiB))
    missing = "f" * 32
    client = HostClient()
    try:
        for proxy in (
            PagletProxy(host.address, missing, client),  # over HTTP
            host.remote_proxy(host.address, missing),  # in-process route: no HTTP
        ):
            with pytest.raises(InvalidAgentError):
                proxy.send_artifact(Message("take"), source, move=True)
            assert host.artifacts.list() == []
            assert client.list_artifacts(host.address) == []
            assert source.exists()  # move only after a delivery
    finally:
        client.close()
    sender = host.create(ArtifactUser)
    failed = ask(sender, "send_to", agent_id=missing)  # from inside a paglet
    assert failed["error"] == "InvalidAgentError"
    assert failed["source_exists"]
    assert host.artifacts.list() == []


def test_send_artifact_from_inside_a_paglet(host: Host) -> None:
    sender, receiver = host.create(ArtifactUser), host.create(ArtifactUser)
    sent = ask(sender, "send_to", agent_id=receiver.agent_id)
    assert not sent["source_exists"]  # move=True removed the file after the delivery
    assert sent["reply"]["owner"] == sent["reply"]["me"] == receiver.agent_id
    assert len(owned(host, receiver.agent_id)) == 1
    refused = ask(sender, "send_to", agent_id=receiver.agent_id, message_kind="refuse")  # the handler raises
    assert refused["source_exists"]
    assert "refuses every artifact" in refused["message"]
    assert len(owned(host, receiver.agent_id)) == 1  # the refused one was deleted again
    receiver.dispose()
    assert host.artifacts.list() == []


def test_send_artifact_does_not_change_the_callers_message(host: Host, tmp_path: Path) -> None:
    receiver = host.create(ArtifactUser)
    source = tmp_path / "f.bin"
    source.write_bytes(b"x" * 100)
    message = Message("take", {"keep": 1})
    reply = host.get_proxy(receiver.agent_id).send_artifact(message, source, arg_name="artifact")
    assert reply["sha256"] == hashlib.sha256(b"x" * 100).hexdigest()
    assert message.args == {"keep": 1}  # 2.0 sends a copy


def test_host_context_without_a_paglet(host: Host, tmp_path: Path) -> None:
    context = PagletContext(host)  # the in-process host implements the same calls
    source = tmp_path / "embedded.bin"
    source.write_bytes(b"embedded" * 1000)
    ref = context.upload_artifact(source, name="e")
    assert (ref.owner_agent_id, ref.name, ref.host_url) == ("", "e", host.address)
    target = tmp_path / "back" / "e.bin"
    assert context.download_artifact(ref, target) == ref
    assert file_sha256(target) == ref.sha256
    with pytest.raises(TransferError, match="directory"):
        context.download_artifact(ref, tmp_path)
    context.delete_artifact(ref)
    assert host.artifacts.list() == []
    with pytest.raises(PagletError):
        context.upload_artifact(tmp_path / "missing.bin")
    wait_until(lambda: host.artifacts.statistics().active_uploads == 0)
