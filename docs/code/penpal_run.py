"""Proxies, references and HTTP clients."""

import tempfile

from paglets.core.messages import Message
from paglets.remote.client import HostClient
from paglets.remote.proxy import PagletProxy
from paglets.runtime.host import Host

from penpal import Penpal

with tempfile.TemporaryDirectory() as tmp, Host("alpha", persistence_dir=f"{tmp}/alpha") as alpha:
    with Host("beta", persistence_dir=f"{tmp}/beta", peers=[alpha.address]) as beta:
        alpha.wait_for_host("beta")
        # --8<-- [start:proxies]
        ann = alpha.create(Penpal)  # a proxy from a host in this process: calls skip HTTP
        bob = alpha.create(Penpal)
        ann.send(Message("befriend", arg=bob.to_wire()))  # {"host_url": ..., "agent_id": ...}
        print(ann.send(Message("write")))

        moved = ann.dispatch("beta")  # the proxy of Ann on beta
        ann.send(Message("write"))  # the old proxy names alpha, which says where Ann went: it follows
        print("the old proxy followed the move:", ann.where()[0] == moved.host_url)
        print(moved.send(Message("write")))  # Ann's reference to Bob travelled in her state
        # --8<-- [end:proxies]

        # --8<-- [start:http]
        client = HostClient(timeout=10.0)  # any process: HTTP, keep-alive; PAGLETS_API_KEY if set
        remote = PagletProxy(alpha.address, bob.agent_id, client)
        print(remote.send(Message("letters")))
        print(remote.info()["class_name"], remote.is_active())
        # --8<-- [end:http]
