"""Smaller points of paglets 2.0's host API found by the differential harness (``bench/compat``): error
classes for common mistakes, the errors a paglet's host calls raise, and 2.0's parameter names."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from _compat_paglets import Starter

from paglets.core.errors import InvalidAgentError
from paglets.core.messages import Message
from paglets.runtime.host import Host


def test_activate_of_an_active_paglet_is_refused(host: Host) -> None:
    proxy = host.create(Starter)
    with pytest.raises(InvalidAgentError, match="already active"):
        host.activate(proxy.agent_id)
    with pytest.raises(InvalidAgentError):
        host.activate("f" * 32)
    host.deactivate(proxy.agent_id)
    assert host.activate(proxy.agent_id).agent_id == proxy.agent_id


def test_work_dir_of_an_unknown_paglet_is_refused(host: Host) -> None:
    with pytest.raises(InvalidAgentError):
        host.work_dir_for("f" * 32)
    proxy = host.create(Starter)
    assert host.work_dir_for(proxy.agent_id).is_dir()


def test_host_call_errors_inside_a_paglet_keep_2_0_classes(host: Host) -> None:
    proxy = host.create(Starter)
    assert proxy.send(Message("storage_read", arg="../outside.bin")) == "ValueError"
    assert proxy.send(Message("storage_read", arg="missing.bin")) == "HostError"


def test_host_methods_take_2_0_parameter_names(make_host: Callable[..., Host]) -> None:
    alpha = make_host("alpha")
    beta = make_host("beta")
    remote = alpha.create_remote(target=beta.address, agent_cls=Starter)
    assert [a["agent_id"] for a in beta.list_agents()] == [remote.agent_id]
    replies = beta.multicast_message(kind="log")
    assert replies.wait_for_all_replies(10)
    assert [reply.get_reply() for reply in replies] == [["created:beta", "run:beta"]]


def test_resources_for_operates_the_paglets_registry(host: Host) -> None:
    proxy = host.create(Starter)
    proxy.send(Message("hold", arg="a"))
    proxy.send(Message("hold", {"suppress": True}, arg="b"))
    view = host.resources_for(proxy.agent_id)
    assert view.status() == {"a": False, "b": True}
    view.remove("a")
    assert view.status() == {"b": True}
    view.cleanup(reason="test")
    assert view.status() == {}
    with pytest.raises(InvalidAgentError):
        host.resources_for("f" * 32)
