"""Scale within one host: 200 paglet processes and 10,000 messages, nothing lost or duplicated."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

import pytest
from _paglets import Counter
from conftest import children_of, paglet_processes, wait_until

from paglets.core.messages import Message
from paglets.runtime.host import Host


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_200_paglets_and_10000_messages(make_host: Callable[..., Host]) -> None:
    host = make_host("many", preload_modules=["_paglets"])
    proxies = [host.create(Counter) for _ in range(200)]
    assert len({p.agent_id for p in proxies}) == 200
    assert len(paglet_processes(os.getpid())) == 200

    def sender(offset: int) -> None:
        for i in range(offset, 10_000, 4):
            proxy = proxies[i % 200]
            if i % 2:
                proxy.send_oneway(Message("add"))
            else:
                proxy.send(Message("add"))

    threads = [threading.Thread(target=sender, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(240)
    wait_until(
        lambda: sum(host.mailbox_status(p.agent_id)["delivered_count"] for p in proxies) == 10_000, 120
    )
    counts = [p.send(Message("add", {"n": 0})) for p in proxies]
    assert counts == [50] * 200
    assert all(a["active"] and not a["crashed"] for a in host.list_agents())
    host.stop()
    wait_until(lambda: not children_of(os.getpid()), 30)
