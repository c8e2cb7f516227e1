"""What a host gives away: tracebacks only when configured, secrets never to paglet processes."""

from __future__ import annotations

import json
import os
from collections.abc import Callable

import pytest
from _paglets import Counter, EnvReporter
from conftest import children_of

from paglets.core.errors import HostError
from paglets.core.messages import Message
from paglets.http.client import HttpClient
from paglets.remote.client import HostClient
from paglets.remote.proxy import PagletProxy
from paglets.runtime.host import Host

SECRET = "s3cret-key-for-the-scrub-test"


def _fail_over_http(host: Host) -> dict[str, object]:
    agent_id = host.create(Counter).agent_id
    client = HttpClient()
    try:
        response = client.request(
            "POST",
            f"{host.address}/agents/{agent_id}/messages",
            body=json.dumps({"message": {"kind": "fail", "arg": "x"}}).encode(),
            content_type="application/json",
        )
    finally:
        client.close()
    assert response.status == 400
    body: dict[str, object] = response.json()
    return body


def test_tracebacks_stay_in_the_host_by_default(host: Host, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO", logger="paglets.http"):
        body = _fail_over_http(host)
    assert body["error_type"] == "HostError"
    assert body["remote_type"] == "RuntimeError"
    assert "remote_traceback" not in body
    assert "Traceback" in caplog.text  # the operator finds it in the host's log
    assert "boom: x" in caplog.text
    client = HostClient()
    try:
        proxy = PagletProxy(host.address, host.create(Counter).agent_id, client)  # over HTTP
        with pytest.raises(HostError, match="boom: y") as caught:
            proxy.send(Message("fail", arg="y"))
    finally:
        client.close()
    assert caught.value.remote_type == "RuntimeError"
    assert caught.value.remote_traceback is None


def test_tracebacks_are_sent_when_the_host_exposes_them(make_host: Callable[..., Host]) -> None:
    host = make_host("alpha", expose_tracebacks=True)
    body = _fail_over_http(host)
    assert "Traceback" in str(body["remote_traceback"])
    assert "RuntimeError: boom: x" in str(body["remote_traceback"])


def test_paglet_processes_never_see_the_hosts_secrets(
    make_host: Callable[..., Host], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAGLETS_API_KEY", SECRET)
    monkeypatch.setenv("MY_HOST_KEY", SECRET)  # as with paglets-host --api-key-env MY_HOST_KEY
    monkeypatch.setenv("PAGLETS_TEST_HARMLESS", "kept")
    host = make_host("alpha", api_key=SECRET)
    agent_id = host.create(EnvReporter).agent_id
    seen = host.deliver_message(agent_id, Message("secret-seen", arg=SECRET))
    assert seen == {"environ": [], "proc": False}
    assert host.deliver_message(agent_id, Message("secret-seen", arg="kept"))["environ"] == [
        "PAGLETS_TEST_HARMLESS"
    ]
    for pid in children_of(os.getpid()):  # the template process too, not only the paglet's
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                assert SECRET.encode() not in fh.read(), pid
        except (FileNotFoundError, ProcessLookupError):
            continue
    # the paglet still reaches its keyed host: it got the key through its configuration
    assert host.deliver_message(agent_id, Message("health")) == "alpha"
