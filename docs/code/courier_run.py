"""A Courier carries a file from alpha to beta and publishes a summary as an artifact on beta."""

import tempfile
from pathlib import Path

from paglets.artifacts import ArtifactRef
from paglets.core.messages import Message
from paglets.remote.client import HostClient
from paglets.remote.proxy import PagletProxy
from paglets.runtime.host import Host

from courier import Courier

with tempfile.TemporaryDirectory() as tmp, Host("alpha", persistence_dir=f"{tmp}/alpha") as alpha:
    with Host("beta", persistence_dir=f"{tmp}/beta", peers=[alpha.address]) as beta:
        alpha.wait_for_host("beta")
        parcel = Path(tmp, "parcel.bin")
        parcel.write_bytes(b"paglets" * 1000)

        courier = alpha.create(Courier)
        moved = PagletProxy.from_wire(courier.send(Message("carry", {"path": str(parcel), "to": "beta"})))
        print(moved.send(Message("report")))
        print("the original file is still there:", parcel.exists())  # mode="copy"
        print(moved.send(Message("remember")))

        # --8<-- [start:download]
        ref = ArtifactRef.from_wire(moved.send(Message("publish")))
        print(f"artifact {ref.name}: {ref.size_bytes} bytes, stored on beta: {ref.host_url == beta.address}")
        target = Path(tmp, "downloaded.txt")
        HostClient().download_artifact(ref, target)  # size and SHA-256 are checked
        print(target.read_text())
        # --8<-- [end:download]
