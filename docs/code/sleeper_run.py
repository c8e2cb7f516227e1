"""Deactivate a Sleeper in several ways and watch how it comes back."""

import tempfile
import time

from paglets.core.errors import PagletInactiveError
from paglets.core.messages import Message
from paglets.persistence.persistency import DeactivationPolicy
from paglets.remote.proxy import PagletProxy
from paglets.runtime.host import Host

from sleeper import Sleeper

with tempfile.TemporaryDirectory() as tmp:
    with Host("alpha", persistence_dir=f"{tmp}/alpha") as alpha:
        # --8<-- [start:default]
        sleeper = alpha.create(Sleeper)
        sleeper = sleeper.deactivate()  # saved to disk, its process ends
        print("active:", sleeper.is_active())
        print("entries:", sleeper.send(Message("note", arg=1)))  # a message activates it (default policy)
        # --8<-- [end:default]

        # --8<-- [start:queue]
        sleeper = sleeper.deactivate(policy=DeactivationPolicy(activate_on_message=False))
        reply = sleeper.send(Message("note", arg=2))  # {"queued": True, "message_id": ...}
        print("queued:", reply["queued"])
        try:
            sleeper.send(Message("note", arg=3), no_delay=True)  # "now or never"
        except PagletInactiveError:
            print("no_delay=True: PagletInactiveError")
        sleeper = sleeper.activate()  # the queued message is handled first
        # --8<-- [end:queue]

        # --8<-- [start:timed]
        sleeper = PagletProxy.from_wire(sleeper.send(Message("nap", arg=0.2)))
        deadline = time.monotonic() + 10
        while not sleeper.is_active() and time.monotonic() < deadline:
            time.sleep(0.05)  # the host activates it by itself after 0.2 s
        # --8<-- [end:timed]
        print("active again:", sleeper.is_active())
        # --8<-- [start:shutdown]
        alpha.shutdown()  # saves every active paglet (leaving the with block alone would end them)
        # --8<-- [end:shutdown]

    # --8<-- [start:restart]
    with Host("alpha", persistence_dir=f"{tmp}/alpha") as alpha:  # same directory: the paglets are back
        sleeper = alpha.get_proxy(sleeper.agent_id)
        print("active after the restart:", sleeper.is_active())
        for entry in sleeper.send(Message("log")):
            print(entry)
    # --8<-- [end:restart]
