"""When ``create``, ``clone``, ``activate``, ``dispatch`` or ``retract`` returns, the paglet's ``run()`` has
been entered on its host: a state read issued afterwards sees what ``run()`` did first (paglets 2.0
orders them). ``Starter.run()`` logs ``run:<host>`` as its first action.

Each case repeats the operation, because the old race only lost sometimes."""

from __future__ import annotations

from collections.abc import Callable

from _compat_paglets import Starter, StartState

from paglets.runtime.host import Host

ROUNDS = 25


def test_create_returns_after_run_was_entered(host: Host) -> None:
    for _ in range(ROUNDS):
        proxy = host.create(Starter)
        assert host.get_state(proxy.agent_id, StartState).log == ["created:alpha", "run:alpha"]
        host.dispose(proxy.agent_id)


def test_clone_returns_after_the_clones_run_was_entered(make_host: Callable[..., Host]) -> None:
    alpha = make_host("alpha")
    beta = make_host("beta")
    original = alpha.create(Starter)
    for _ in range(ROUNDS):
        clone = alpha.clone(original.agent_id)
        assert alpha.get_state(clone.agent_id, StartState).log[-2:] == ["clone:alpha", "run:alpha"]
        alpha.dispose(clone.agent_id)
    for _ in range(5):
        remote = alpha.clone(original.agent_id, target=beta.address)
        assert beta.get_state(remote.agent_id, StartState).log[-2:] == ["clone:beta", "run:beta"]


def test_activate_returns_after_run_was_entered(host: Host) -> None:
    proxy = host.create(Starter)
    for _ in range(10):
        host.deactivate(proxy.agent_id)
        host.activate(proxy.agent_id)
        assert host.get_state(proxy.agent_id, StartState).log[-2:] == ["activated:activate", "run:alpha"]


def test_dispatch_and_retract_return_after_run_was_entered(make_host: Callable[..., Host]) -> None:
    alpha = make_host("alpha")
    beta = make_host("beta")
    proxy = alpha.create(Starter)
    for _ in range(3):
        alpha.dispatch(proxy.agent_id, beta.address)
        assert beta.get_state(proxy.agent_id, StartState).log[-2:] == ["arrived:beta", "run:beta"]
        alpha.retract(beta.address, proxy.agent_id)
        assert alpha.get_state(proxy.agent_id, StartState).log[-2:] == ["arrived:alpha", "run:alpha"]
