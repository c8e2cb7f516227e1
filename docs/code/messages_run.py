"""Every way to send a message, and what comes back."""

import tempfile

from paglets.core.errors import NotHandledError
from paglets.core.messages import Message, ReplySet
from paglets.runtime.host import Host

from messages import Asker, Calculator

with tempfile.TemporaryDirectory() as tmp, Host("alpha", persistence_dir=f"{tmp}/alpha") as alpha:
    with Host("beta", persistence_dir=f"{tmp}/beta", peers=[alpha.address]) as beta:
        calc = alpha.create(Calculator)

        # --8<-- [start:send]
        print(calc.send(Message("add", {"n": 2})))  # 2: synchronous, the handler's return value
        print(calc.send(Message("sum", arg=[1, 2, 3])))  # 6
        print(calc.send(Message("echo", arg={"raw": b"\x00\x01", "list": (1, 2)})))
        # --8<-- [end:send]

        # --8<-- [start:oneway]
        for _ in range(3):
            calc.send_oneway(Message("add"))  # returns once the message is queued
        print(calc.send(Message("add", {"n": 0})))  # 5: handled after the three oneway messages
        # --8<-- [end:oneway]

        # --8<-- [start:future]
        future = calc.send_future(Message("add", {"n": 5}))  # a FutureReply, at once
        print(future.get_reply(timeout=10))  # 10
        # --8<-- [end:future]

        # --8<-- [start:replyset]
        others = [alpha.create(Calculator) for _ in range(3)]
        replies = ReplySet(p.send_future(Message("add", {"n": 7})) for p in others)
        print(sorted(reply.get_reply() for reply in replies))  # in completion order; sorted here
        # --8<-- [end:replyset]

        # --8<-- [start:multicast]
        everyone = alpha.multicast_message("ping")  # every ready paglet of alpha
        everyone.wait_for_all_replies(timeout=10)
        print(everyone.count_available(), "replies:", {reply.get_reply() for reply in everyone})
        # --8<-- [end:multicast]

        # --8<-- [start:not-handled]
        try:
            calc.send(Message("divide"))
        except NotHandledError as exc:
            print("NotHandledError:", exc)
        # --8<-- [end:not-handled]

        # --8<-- [start:paglet-to-paglet]
        asker = beta.create(Asker)
        print(asker.send(Message("ask", {"agent_id": calc.agent_id, "host_url": alpha.address})))
        # --8<-- [end:paglet-to-paglet]
        print(calc.send(Message("seen")))
