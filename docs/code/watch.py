"""Watch what happens on a host: context events, from a listener and from the log over HTTP."""

import tempfile

from paglets.core.context_events import ContextEvent
from paglets.core.messages import Message
from paglets.remote.client import HostClient
from paglets.runtime.host import Host

from counter import Counter

with tempfile.TemporaryDirectory() as tmp, Host("alpha", persistence_dir=f"{tmp}/alpha") as alpha:
    # --8<-- [start:listener]
    def on_event(event: ContextEvent) -> None:  # called on the thread that emitted the event: be quick
        if event.agent_id is not None:  # events about one paglet (others: mesh, services, ...)
            print(f"listener: {event.kind} {event.class_name}")

    alpha.add_listener(on_event)
    # --8<-- [end:listener]
    counter = alpha.create(Counter)
    counter.send(Message("add", {"n": 1}))
    counter = counter.deactivate()
    counter = counter.activate()
    counter.dispose()
    alpha.remove_listener(on_event)

    # --8<-- [start:poll]
    seen = 0  # the id of the last event read; ids start at 1 and increase by one
    reply = HostClient().get_json(f"{alpha.address}/events?since={seen}&limit=100")
    kinds = [event["kind"] for event in reply["events"] if event["agent_id"] == counter.agent_id]
    print("from GET /events:", kinds)
    seen = reply["events"][-1]["event_id"]  # ask for events after this one next time
    # --8<-- [end:poll]
