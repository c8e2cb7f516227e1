"""Every route a host serves is documented in ``proto/PROTOCOL.md`` §6, and every documented route
exists: the table and the router are compared entry by entry."""

from __future__ import annotations

import re
from pathlib import Path

from paglets.runtime._routes import build_router
from paglets.runtime.host import Host

ROOT = Path(__file__).resolve().parents[2]
ROW = re.compile(r"^\| (?P<method>GET|POST|DELETE|PUT) `(?P<path>[^`]+)`", re.M)


def _normal(path: str) -> str:
    """``/agents/{id}/state?x=1`` → ``/agents/{}/state`` (parameter names may differ)."""
    return re.sub(r"\{[^}]*\}", "{}", path.split("?", 1)[0])


def _documented() -> set[tuple[str, str]]:
    text = (ROOT / "proto" / "PROTOCOL.md").read_text()
    section = text[text.index("\n## 6. HTTP endpoints") : text.index("\n## 7.")]
    return {(m["method"], _normal(m["path"])) for m in ROW.finditer(section)}


def test_the_router_and_protocol_md_list_the_same_routes(tmp_path: Path) -> None:
    host = Host("doc", persistence_dir=tmp_path, mesh_lan_discovery=False, mesh_multicast=False)
    served = {(route.method, _normal(route.pattern)) for route in build_router(host).routes}
    documented = _documented()
    assert served - documented == set(), "routes missing from PROTOCOL.md §6"
    assert documented - served == set(), "PROTOCOL.md §6 documents routes the host does not serve"
    assert ("POST", "/services/leases") in served
