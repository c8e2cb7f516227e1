"""The live dashboard in a real headless Chromium (DevTools protocol over a pipe) against a live mesh
with an API key: redirect from ``/``, the key form (a wrong key refused), agents listed, a move shown,
the error state once the host goes away. Also ``GET /metrics`` and the files in the package."""

from __future__ import annotations

import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _paglets import Counter

from paglets.core.messages import Message
from paglets.runtime.host import Host

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "docs"))
from _cdp import Browser, chromium

KEY = "dashboard-key"


def _poll(browser: Browser, expression: str, check: Callable[[Any], bool], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = browser.evaluate(expression)
        if check(value):
            return value
        time.sleep(0.1)
    raise AssertionError(f"{expression} stayed {value!r}")


AGENT_IDS = "[...document.querySelectorAll('#agents tbody tr')].map(r => r.dataset.agentId)"
STATUS = "document.getElementById('status').textContent"


def _login(browser: Browser, key: str) -> None:
    browser.evaluate(
        f"document.getElementById('key').value = {key!r};"
        "document.getElementById('login').requestSubmit(); true"
    )


@pytest.mark.skipif(chromium() is None, reason="chromium is not installed")
def test_dashboard_in_a_browser(make_host: Callable[..., Host]) -> None:
    alpha = make_host("alpha", api_key=KEY)
    beta = make_host("beta", api_key=KEY, peers=[alpha.address])
    alpha.wait_for_host("beta", timeout=20)
    proxy = alpha.create(Counter)
    proxy.send(Message("add", {"n": 7}))
    browser = Browser(chromium() or "")
    try:
        browser.open(f"{alpha.address}/")  # a browser asks for HTML: redirected to the dashboard
        _poll(browser, "location.pathname", lambda v: v == "/dashboard")
        _poll(browser, "document.getElementById('login').hidden", lambda v: v is False)
        _login(browser, "wrong")
        _poll(browser, "document.getElementById('login-error').textContent", lambda v: "refused" in (v or ""))
        assert browser.evaluate(AGENT_IDS) == []
        _login(browser, KEY)
        _poll(browser, STATUS, lambda v: v == "connected")
        _poll(browser, AGENT_IDS, lambda v: proxy.agent_id in (v or []))
        rows = browser.evaluate("document.querySelector('#agents tbody tr td.data').textContent")
        assert '"count":7' in rows.replace(" ", "")
        hosts = _poll(
            browser,
            "[...document.querySelectorAll('#hosts tbody tr td:first-child')].map(c => c.textContent)",
            lambda v: {"alpha", "beta"} <= set(v or []),
        )
        assert "beta" in hosts
        assert browser.evaluate("sessionStorage.getItem('paglets-api-key')") == KEY
        alpha.dispatch(proxy.agent_id, beta.address)  # the page follows: the paglet leaves the list
        _poll(browser, AGENT_IDS, lambda v: proxy.agent_id not in (v or []))
        _poll(browser, "document.getElementById('moving').textContent", lambda v: "dispatch" in (v or ""))
        alpha.stop()
        _poll(browser, STATUS, lambda v: (v or "").startswith("host unreachable"))
        assert "error" in browser.evaluate("document.getElementById('status').className")
    finally:
        browser.close()


def test_metrics_and_dashboard_files_need_the_key_where_they_hold_data(
    make_host: Callable[..., Host],
) -> None:
    alpha = make_host("alpha", api_key=KEY)
    alpha.create(Counter).send(Message("add"))
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{alpha.address}/metrics", timeout=10)
    assert refused.value.code == 401
    refused.value.close()
    request = urllib.request.Request(f"{alpha.address}/metrics", headers={"Authorization": f"Bearer {KEY}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    assert "paglets_active 1" in text
    assert 'paglets_messages_total{outcome="ok"} 1' in text
    assert "paglets_message_seconds_count 1" in text
    for name in ("dashboard", "dashboard/app.js", "dashboard/style.css"):
        with urllib.request.urlopen(f"{alpha.address}/{name}", timeout=10) as response:
            assert response.status == 200
    with pytest.raises(urllib.error.HTTPError) as unknown:  # only the dashboard's own files are open
        urllib.request.urlopen(f"{alpha.address}/dashboard/secret.txt", timeout=10)
    assert unknown.value.code == 401
    unknown.value.close()
    json_index = urllib.request.Request(f"{alpha.address}/", headers={"Accept": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as index:
        urllib.request.urlopen(json_index, timeout=10)
    assert index.value.code == 401
    index.value.close()
