"""An asyncio program embeds two hosts, creates a paglet, moves it, and keeps using its first proxy."""

import asyncio
import tempfile

from paglets.runtime.aio import AsyncHost

from counter import Counter


async def main(tmp: str) -> None:
    # --8<-- [start:host]
    alpha = AsyncHost("alpha", persistence_dir=f"{tmp}/alpha")
    beta = AsyncHost("beta", persistence_dir=f"{tmp}/beta")
    async with alpha, beta:
        counter = await alpha.create(Counter)
        print("count:", await counter.send("add", {"n": 2}))
        # --8<-- [end:host]
        # --8<-- [start:concurrent]
        replies = await asyncio.gather(*(counter.send("add") for _ in range(3)))
        print("concurrent:", sorted(replies))
        # --8<-- [end:concurrent]
        # --8<-- [start:follow]
        await alpha.dispatch(counter.agent_id, beta.address)
        print("after the move:", await counter.send("add"))  # the old proxy follows the paglet
        print("now on beta:", counter.where()[0] == beta.address)
        # --8<-- [end:follow]
        # --8<-- [start:timeout]
        try:
            async with asyncio.timeout(5):
                await counter.send("add")
        except TimeoutError:
            print("gave up waiting (the handler still runs)")
        # --8<-- [end:timeout]
        # --8<-- [start:events]
        async with alpha.events(since=0) as events:
            async for event in events:
                if event.kind == "dispatch":
                    print("event:", event.kind, event.agent_id == counter.agent_id)
                    break
        # --8<-- [end:events]


with tempfile.TemporaryDirectory() as tmp:
    asyncio.run(main(tmp))
