from paglets.core.messages import Message
from paglets.runtime.host import Host

from counter import Counter

with Host("alpha", mesh_lan_discovery=False, mesh_multicast=False) as host:
    proxy = host.create(Counter)
    print(proxy.send(Message("add", {"n": 2})))  # 2, from the paglet's own process
    print(host.list_agents()[0]["pid"], host.address)  # its pid, and the host's HTTP address
