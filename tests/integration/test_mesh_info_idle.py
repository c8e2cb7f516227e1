"""The ``mesh-info`` service on real hosts: idle, it samples nothing and exchanges nothing; asked, it pulls
every host's snapshot once and reuses it for half the pull interval."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from conftest import wait_until

from paglets.core.errors import PagletError
from paglets.runtime.host import Host
from paglets.services.builtin.mesh_info import (
    GET_LANDSCAPE,
    GET_SNAPSHOT,
    MESH_INFO_AGENT_ID,
    SYNC_MESH_INFO,
    LandscapeReply,
    LandscapeRequest,
    MeshInfoSyncReply,
    MeshInfoSyncRequest,
    SnapshotRequest,
)

LAUNCH = """
[launch]
sync_demo_config = false

[[resident_services]]
class = "paglets.services.builtin.mesh_info:MeshInfoAgent"
state = {{ sample_interval = {sample}, gossip_interval = {pull} }}
"""
#: Seconds of idleness watched: many sample and pull intervals of the fast settings below.
WINDOW = 2.0


def launch(directory: Path, sample: float, pull: float) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "launch.toml"
    path.write_text(LAUNCH.format(sample=sample, pull=pull))
    return path


def call(host: Host, operation: object, request: object) -> object:
    proxy = host.get_proxy(MESH_INFO_AGENT_ID)
    assert proxy is not None
    return operation.decode_reply(proxy.send(operation.to_message(request), timeout=10))  # type: ignore[attr-defined]


def sequence(host: Host) -> int:
    reply = call(host, GET_SNAPSHOT, SnapshotRequest())
    snapshot = reply.snapshot  # type: ignore[attr-defined]
    assert snapshot is not None
    assert snapshot.host_name == host.name
    return int(snapshot.sequence)


def known(host: Host) -> set[str]:
    """Host names in ``host``'s snapshot table (a sync without news in, all it knows out)."""
    reply = call(host, SYNC_MESH_INFO, MeshInfoSyncRequest([], 3600.0, 512, time.time()))
    assert isinstance(reply, MeshInfoSyncReply)
    return {s.host_name for s in reply.snapshots}


def serving(host: Host) -> bool:
    try:
        sequence(host)
    except PagletError:
        return False
    return True


def pair(make_host: Callable[..., Host], tmp_path: Path, sample: float, pull: float) -> tuple[Host, Host]:
    alpha = make_host("alpha", launch_config=launch(tmp_path / "alpha-config", sample, pull))
    beta = make_host(
        "beta", peers=[alpha.address], launch_config=launch(tmp_path / "beta-config", sample, pull)
    )
    alpha.wait_for_host("beta", timeout=20.0)
    beta.wait_for_host("alpha", timeout=20.0)
    wait_until(lambda: serving(alpha) and serving(beta), timeout=30.0)
    return alpha, beta


def test_an_idle_mesh_info_samples_and_exchanges_nothing(
    make_host: Callable[..., Host], tmp_path: Path
) -> None:
    alpha, beta = pair(make_host, tmp_path, sample=0.2, pull=0.2)
    before = sequence(alpha)
    assert known(beta) == {"beta"}
    time.sleep(WINDOW)  # the measured window: ten sample and pull intervals with nobody asking
    # one sample for this call (the last one is stale), none in between
    assert sequence(alpha) == before + 1
    # alpha sent nothing to beta in the window (it would have pushed its snapshot along)
    assert known(beta) == {"beta"}
    assert known(alpha) == {"alpha"}


def test_a_landscape_pulls_every_host_once_and_reuses_it(
    make_host: Callable[..., Host], tmp_path: Path
) -> None:
    alpha, beta = pair(make_host, tmp_path, sample=60.0, pull=60.0)
    first = call(alpha, GET_LANDSCAPE, LandscapeRequest())
    assert isinstance(first, LandscapeReply)
    assert {s.host_name for s in first.hosts} == {"alpha", "beta"}, first.errors
    assert all(first.generated_at - s.observed_at < 5.0 for s in first.hosts)
    beta_sequence = sequence(beta)
    again = call(alpha, GET_LANDSCAPE, LandscapeRequest())
    assert isinstance(again, LandscapeReply)
    assert [s.sequence for s in again.hosts] == [s.sequence for s in first.hosts]  # nothing pulled again
    assert sequence(beta) == beta_sequence  # beta was not asked again
    assert "alpha" in known(beta)  # the pull carried alpha's snapshot to beta
