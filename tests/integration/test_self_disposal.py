"""Edges of the runtime the patterns and example agents rely on.

- A paglet that disposes itself in ``run()`` right after arriving: the move that brought it must not wait
  for a ``run()`` that will never report back (the commit waits for ``run()`` to return, the paglet to
  move on, or the paglet to be gone).
- A clone made on the same host messages its parent from ``run()`` while the parent's clone call has not
  returned yet (the parent is paused for the snapshot): the message must reach the parent.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from _pattern_paglets import CallsParentFromRun, DisposesOnArrival, GonerState
from conftest import wait_until

from paglets.core.messages import Message
from paglets.runtime.host import Host


def test_a_move_into_a_paglet_that_disposes_itself_returns_at_once(make_host: Callable[..., Host]) -> None:
    alpha = make_host("alpha")
    beta = make_host("beta", peers=[alpha.address])
    alpha.wait_for_host("beta", timeout=20)
    proxy = alpha.create(DisposesOnArrival, GonerState())
    began = time.monotonic()
    reply = proxy.send(Message("go", arg=beta.address), timeout=60)
    assert time.monotonic() - began < 5.0  # was 30 s: the commit waited RUN_SETTLE_WAIT for run()
    assert reply["host_url"] == beta.address
    wait_until(lambda: beta.list_agents() == [] and alpha.list_agents() == [])


def test_a_same_host_clone_can_message_its_parent_from_run(make_host: Callable[..., Host]) -> None:
    alpha = make_host("alpha")
    parent = alpha.create(CallsParentFromRun)
    clones = parent.send(Message("clone", {"count": 6}))
    wait_until(lambda: sorted(parent.send(Message("heard"))) == sorted(clones), timeout=10)
    crashed = [a for a in alpha.list_agents() if a.get("crashed")]
    assert crashed == [], crashed
