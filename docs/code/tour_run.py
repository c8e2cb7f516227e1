"""Two hosts in this process, and a Tour from alpha to beta and back."""

import tempfile

from paglets.core.messages import Message
from paglets.remote.proxy import PagletProxy
from paglets.runtime.host import Host

from tour import Tour

with tempfile.TemporaryDirectory() as tmp, Host("alpha", persistence_dir=f"{tmp}/alpha") as alpha:
    with Host("beta", persistence_dir=f"{tmp}/beta", peers=[alpha.address]) as beta:
        alpha.wait_for_host("beta")  # host names resolve once the mesh knows them

        tour = alpha.create(Tour)
        where = tour.send(Message("start", {"route": ["beta", "alpha"]}))
        final = PagletProxy.from_wire(where)  # the proxy of the tour where it ended
        print("back on alpha:", final.host_url == alpha.address)
        for note in final.send(Message("notes")):
            print(note)
