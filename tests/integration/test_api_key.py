"""API keys against a real host: clients take ``PAGLETS_API_KEY``, and a 401 says what was wrong."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from paglets.core.errors import AuthenticationError
from paglets.http import HttpClient
from paglets.remote.client import HostClient
from paglets.remote.references import PagletProxyRef
from paglets.runtime.host import Host

KEY = "s3cret-key"


@pytest.fixture
def guarded(make_host: Callable[..., Host]) -> Host:
    return make_host("guarded", api_key=KEY)


def test_host_client_uses_the_environment_key(guarded: Host, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAGLETS_API_KEY", KEY)
    client = HostClient()
    try:
        assert client.get_json(guarded.address + "/health")["name"] == "guarded"
    finally:
        client.close()


def test_a_proxy_reference_resolved_without_a_client_uses_it(
    guarded: Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    from _paglets import Counter

    proxy = guarded.create(Counter)
    monkeypatch.setenv("PAGLETS_API_KEY", KEY)
    resolved = PagletProxyRef(guarded.address, proxy.agent_id).resolve()
    assert resolved.route is None  # a plain HTTP proxy with a fresh client
    assert resolved.info()["agent_id"] == proxy.agent_id


def test_401_says_the_key_was_missing(guarded: Host, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAGLETS_API_KEY", KEY)
    client = HostClient(api_key="")  # explicitly none: the environment is not read
    with pytest.raises(AuthenticationError) as caught:
        client.get_json(guarded.address + "/health")
    message = str(caught.value)
    assert "the request has no API key" in message  # the host's words
    assert "no API key was sent" in message
    assert "PAGLETS_API_KEY" in message
    client.close()


def test_401_says_the_key_was_wrong(guarded: Host, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAGLETS_API_KEY", "not-the-key")
    client = HostClient()
    with pytest.raises(AuthenticationError) as caught:
        client.list_artifacts(guarded.address)
    message = str(caught.value)
    assert "the API key is wrong" in message
    assert "refused the API key this client sent" in message
    client.close()
    raw = HttpClient()
    response = raw.request("GET", guarded.address + "/health", headers={"Authorization": f"Basic {KEY}"})
    assert response.status == 401
    assert "is not 'Bearer <key>'" in response.json()["error"]
    raw.close()
