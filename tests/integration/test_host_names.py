"""Host names are looked up in the mesh only: an unknown name fails at once and never reaches DNS."""

from __future__ import annotations

import sys

import pytest
from _netns import can_unshare, run_in_netns
from conftest import HERE

from paglets.core.errors import HostError, TransferError, UnknownHostError
from paglets.remote._mesh_ref import explicit_url, peer_url
from paglets.remote.transfer import TransferTicket


@pytest.mark.skipif(not can_unshare(), reason="cannot create network and mount namespaces")
def test_unknown_host_names_never_reach_dns() -> None:
    done = run_in_netns([sys.executable, str(HERE / "_netns_names.py")], dns_sentinel=True, timeout=110)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().endswith("OK"), done.stdout + done.stderr


def test_only_explicit_schemes_are_urls() -> None:
    assert explicit_url("zeta") is None
    assert explicit_url("127.0.0.1:8765") is None
    assert explicit_url(" http://127.0.0.1:8765/ ") == "http://127.0.0.1:8765"
    assert explicit_url("HTTPS://hub.example/paglets") == "https://hub.example/paglets"
    for bad in ("ftp://zeta", "http://", "http://:80", "zeta://x"):
        with pytest.raises(HostError):
            explicit_url(bad)
    assert issubclass(UnknownHostError, HostError)
    assert issubclass(UnknownHostError, TransferError)
    with pytest.raises(ValueError, match="not an http"):
        TransferTicket("file:///etc/passwd")


def test_peer_urls_take_host_port_but_not_a_bare_name() -> None:
    assert peer_url("127.0.0.1:8765") == "http://127.0.0.1:8765"
    assert peer_url("http://127.0.0.1:8765/") == "http://127.0.0.1:8765"
    with pytest.raises(HostError, match=r"'alpha' is not a URL: write it as http://HOST:PORT"):
        peer_url("alpha")
