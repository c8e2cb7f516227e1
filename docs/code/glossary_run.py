"""A glossary service on alpha, found and called by a paglet on beta."""

import tempfile

from paglets.core.messages import Message
from paglets.core.runtime_values import ServiceScope
from paglets.runtime.host import Host

from glossary import Clock, Glossary, Reader

with tempfile.TemporaryDirectory() as tmp, Host("alpha", persistence_dir=f"{tmp}/alpha") as alpha:
    with Host("beta", persistence_dir=f"{tmp}/beta", peers=[alpha.address]) as beta:
        beta.wait_for_host("alpha")
        alpha.create(Glossary)  # advertises the "glossary" contract, mesh-wide
        alpha.create(Clock)  # advertises the plain service "clock"

        reader = beta.create(Reader)
        print(reader.send(Message("define", arg="paglet")))
        print(reader.send(Message("define", arg="mesh")))
        print(reader.send(Message("clock")))
        print(sorted(record.name for record in beta.lookup_services(scope=ServiceScope.MESH)))
