"""Say hello to the greeter of each host of the auto-update walkthrough (docs/auto-update.md), creating
one greeter per host the first time (their ids are kept in greeters.txt)."""

import json
from pathlib import Path

from paglets.core.messages import Message
from paglets.remote.client import HostClient
from paglets.remote.proxy import PagletProxy

HOSTS = {"alpha": "http://127.0.0.1:8765", "beta": "http://127.0.0.1:8766"}
client = HostClient()  # the API key comes from PAGLETS_API_KEY
saved = Path("greeters.txt")
proxies = json.loads(saved.read_text()) if saved.exists() else {}
for name, url in HOSTS.items():
    if name not in proxies:
        reply = client.post_json(f"{url}/agents", {"agent_class_name": "labpaglets.greeter:Greeter"})
        proxies[name] = reply["proxy"]
    greeter = PagletProxy.from_wire(proxies[name], client=client)
    print(f"{name}: {greeter.send(Message('hello'))}")
saved.write_text(json.dumps(proxies))
