.venv/bin/paglets-host --name alpha --port 8765 --mesh-version demo
.venv/bin/paglets-host --name beta  --port 8766 --mesh-version demo --peer http://127.0.0.1:8765
