"""Run inside ``unshare -n -m`` with the DNS sentinel (``_netns.py``): host names that no member of the
mesh has fail at once with "no host named ..." through every API that takes a name or URL, embedded and
inside paglets, and no DNS query is ever sent. Prints ``OK`` on success."""

from __future__ import annotations

import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _netns import DnsSentinel
from _paglets import NameUser, Traveller

from paglets.core.errors import HostError, TransferError, UnknownHostError
from paglets.core.messages import Message
from paglets.remote.client import HostClient
from paglets.remote.proxy import PagletProxy
from paglets.remote.transfer import TransferTicket
from paglets.runtime.host import Host

KNOWN = "(known: alpha, beta)"
#: An unknown name must fail at once: well under one DNS timeout (1 s in the sentinel's resolv.conf).
FAST = 0.9


def wait(predicate: Callable[[], object], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met")
        time.sleep(0.02)


def fails_fast(call: Callable[[], Any], *expected: str, cls: type[BaseException] = UnknownHostError) -> str:
    start = time.monotonic()
    try:
        call()
    except cls as exc:
        took = time.monotonic() - start
        text = str(exc)
        for part in expected:
            assert part in text, (part, text)
        assert took < FAST, (took, text)
        return text
    raise AssertionError(f"{call} did not raise {cls.__name__}")


def main() -> None:
    sentinel = DnsSentinel()
    canary = threading.Thread(target=lambda: _lookup("paglets-sentinel-canary"))
    canary.start()
    canary.join(10)
    wait(lambda: "paglets-sentinel-canary" in sentinel.seen(), 10)  # the sentinel sees lookups

    with tempfile.TemporaryDirectory() as tmp:
        opts: dict[str, Any] = {
            "mesh_lan_discovery": False,
            "mesh_multicast": False,
            "mesh_gossip_interval": 0.1,
            "mesh_version": "names",
        }
        alpha = Host("alpha", persistence_dir=tmp + "/a", **opts).start_background()
        beta = Host("beta", persistence_dir=tmp + "/b", peers=[alpha.address], **opts).start_background()
        client = HostClient(timeout=10)
        try:
            wait(lambda: {"alpha", "beta"} <= {h.name for h in alpha.list_hosts(online_only=True)})
            proxy = alpha.create(Traveller)
            aid = proxy.agent_id
            nope = "no host named 'zeta' in this mesh " + KNOWN

            # embedded host API
            fails_fast(lambda: proxy.dispatch("zeta"), nope)
            fails_fast(lambda: alpha.dispatch(aid, "zeta"), nope)
            fails_fast(lambda: alpha.dispatch(aid, TransferTicket("zeta", retries=3)), nope)
            fails_fast(lambda: alpha.clone(aid, target="zeta"), nope)
            fails_fast(lambda: alpha.resolve_host_url("zeta"), nope)
            fails_fast(lambda: alpha.create_remote("zeta", Traveller), nope)
            fails_fast(lambda: alpha.retract("zeta", aid), nope)
            hint = fails_fast(lambda: alpha.dispatch(aid, "zeta:8766"), "no host named 'zeta:8766'")
            assert "a URL needs its scheme: http://zeta:8766" in hint, hint
            fails_fast(lambda: alpha.dispatch(aid, "ftp://zeta"), "not an http:// or https://", cls=HostError)
            fails_fast(lambda: alpha.wait_for_host("zeta", timeout=0.2), nope, cls=HostError)
            # the same error is both a HostError and a TransferError (what a failed dispatch raised)
            assert issubclass(UnknownHostError, HostError)
            assert issubclass(UnknownHostError, TransferError)

            # over HTTP: a 400 naming the problem, and the same class for our clients
            remote = PagletProxy(alpha.address, aid, client)
            fails_fast(lambda: remote.dispatch("zeta"), nope)
            answer = client.http.request(
                "POST",
                f"{alpha.address}/agents/{aid}/dispatch",
                body=b'{"target": "zeta"}',
                content_type="application/json",
            )
            assert answer.status == 400, answer.status
            body = answer.json()
            assert body["error_type"] == "UnknownHostError", body
            assert nope in body["error"], body

            # inside a paglet (self-dispatch, dispatch_to, resolve, wait_for_host, create_remote)
            fails_fast(lambda: proxy.send(Message("go", arg="zeta")), nope)
            user = alpha.create(NameUser)
            for kind in ("dispatch_to", "resolve", "create_remote"):
                fails_fast(lambda kind=kind: user.send(Message(kind, arg="zeta")), nope)
            fails_fast(lambda: user.send(Message("wait_for", arg="zeta")), nope, cls=HostError)

            # names the mesh knows still work, and so do explicit URLs
            assert user.send(Message("resolve", arg="beta")) == beta.address
            assert user.send(Message("resolve", arg=beta.address + "/")) == beta.address
            moved = proxy.dispatch("beta")
            assert moved.host_url == beta.address, moved.host_url
            back = beta.dispatch(aid, alpha.address)
            assert back.host_url == alpha.address
            assert alpha.wait_for_host("beta", timeout=5).name == "beta"
        finally:
            client.close()
            beta.stop()
            alpha.stop()

    queried = [name for name in sentinel.seen() if name != "paglets-sentinel-canary"]
    sentinel.close()
    assert not queried, f"DNS queries were sent for {queried}"
    print("OK")


def _lookup(name: str) -> None:
    try:
        socket.getaddrinfo(name, 80)
    except OSError:
        pass


if __name__ == "__main__":
    main()
