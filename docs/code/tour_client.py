"""Start a Tour on hosts started by hand (alpha on port 8765, beta on 8766), from any process."""

from paglets.core.messages import Message
from paglets.remote.client import HostClient
from paglets.remote.proxy import PagletProxy

client = HostClient()
reply = client.post_json("http://127.0.0.1:8765/agents", {"agent_class_name": "tour:Tour"})
tour = PagletProxy.from_wire(reply["proxy"], client=client)
where = tour.send(Message("start", {"route": ["beta", "alpha"]}))
final = PagletProxy.from_wire(where, client=client)
print("the tour ended at", final.host_url)
for note in final.send(Message("notes")):
    print(note)
