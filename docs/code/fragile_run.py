"""What callers see when a paglet fails."""

import tempfile
import time

from paglets.core.errors import (
    HostError,
    PagletCrashedError,
    SendTimeoutError,
    ServiceNotFoundError,
    TransferError,
)
from paglets.core.messages import Message
from paglets.runtime.host import Host

from fragile import Fragile, FragileState

with tempfile.TemporaryDirectory() as tmp, Host("alpha", persistence_dir=f"{tmp}/alpha") as alpha:
    fragile = alpha.create(Fragile)

    # --8<-- [start:handler]
    try:
        fragile.send(Message("bug"))
    except HostError as exc:  # not a paglets error: it arrives as HostError, its type in remote_type
        print(f"HostError: {exc} (remote_type={exc.remote_type})")
    print(fragile.send(Message("ok")))  # the same process goes on
    # --8<-- [end:handler]

    # --8<-- [start:typed]
    try:
        fragile.send(Message("lookup"))
    except ServiceNotFoundError as exc:
        print(f"ServiceNotFoundError: {exc}")
    # --8<-- [end:typed]

    # --8<-- [start:timeout]
    try:
        fragile.send(Message("slow", arg=1.0), timeout=0.2)
    except SendTimeoutError:  # also a TimeoutError; the handler is not interrupted
        print("SendTimeoutError after 0.2 s")
    # --8<-- [end:timeout]

    # --8<-- [start:transfer]
    try:
        fragile.dispatch("nowhere")  # no host of that name in the mesh (names never go to DNS)
    except TransferError as exc:
        print(f"{type(exc).__name__}: {exc}")
    # --8<-- [end:transfer]

    # --8<-- [start:crash]
    try:
        fragile.send(Message("exit"))
    except PagletCrashedError:
        info = fragile.info()
        print(f"PagletCrashedError; crashed={info['crashed']}, exit code {info['exitcode']}")
    fragile.dispose()  # a crashed paglet stays listed until it is disposed
    # --8<-- [end:crash]

    # --8<-- [start:run]
    doomed = alpha.create(Fragile, FragileState(fail_in_run=True))
    crashes, deadline = [], time.monotonic() + 10
    while not crashes and time.monotonic() < deadline:  # run() fails a moment after create returned
        events = alpha.list_events(limit=1000)
        crashes = [e for e in events if e.kind == "paglet-crashed" and e.agent_id == doomed.agent_id]
        time.sleep(0.05)
    print(f"paglet-crashed: {crashes[0].error}")
    # --8<-- [end:run]
