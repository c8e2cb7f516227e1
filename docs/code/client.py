from paglets.core.messages import Message
from paglets.remote.client import HostClient
from paglets.remote.proxy import PagletProxy

client = HostClient()
reply = client.post_json("http://127.0.0.1:8765/agents", {"agent_class_name": "counter:Counter"})
proxy = PagletProxy.from_wire(reply["proxy"], client=client)
print(proxy.send(Message("add", {"n": 2})))  # 2, answered by the paglet on alpha
moved = proxy.dispatch("beta")  # move it by host name
print(moved.host_url, moved.send(Message("add")))  # http://127.0.0.1:8766 3
