"""A mesh of one host on each process backend: paglets move both ways and keep their state.

The whole movement suite also runs on such a mesh (``PAGLETS_MIXED_MESH=1``: ``make_host`` alternates
the backends, see ``conftest.py``; ``.ci/run`` does it).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from _paglets import Traveller, TravelState

from paglets.core.messages import Message
from paglets.runtime.host import Host


def _log(host: Host, agent_id: str) -> list[str]:
    return host.get_state(agent_id, TravelState).log


@pytest.mark.linux_only(reason="one of its hosts runs the Linux backend (the zygote forks)")
def test_paglets_move_between_a_linux_and_a_portable_host(make_host: Callable[..., Host]) -> None:
    linux = make_host("alpha", process_backend="linux")
    portable = make_host("beta", process_backend="portable")
    assert linux.manager.backend.name == "linux"
    assert portable.manager.backend.name == "portable"
    payload = os.urandom(300_000)  # larger than a ring frame: crosses as a handoff segment both ways
    proxy = linux.create(Traveller, TravelState(payload=payload))
    there = linux.dispatch(proxy.agent_id, portable.address)
    assert there.send(Message("size")) == len(payload)
    back = portable.dispatch(proxy.agent_id, linux.address)
    assert back.send(Message("size")) == len(payload)
    assert _log(linux, proxy.agent_id)[-2:] == ["arrived:alpha:from:beta:dispatch", "run:alpha"]
    clone = linux.clone(proxy.agent_id, target=portable.address)
    assert clone.send(Message("size")) == len(payload)
    retracted = linux.retract(portable.address, clone.agent_id)
    assert retracted.host_url == linux.address
    assert portable.list_agents() == []
    assert {a["agent_id"] for a in linux.list_agents()} == {proxy.agent_id, clone.agent_id}
