"""``HostClient`` without a server: the API key from the environment, and 2.0's argument errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from paglets.remote.client import HostClient, error_from_response

#: A port nothing listens on; the calls below must fail before any connection is tried.
NOWHERE = "http://127.0.0.1:9"


def test_no_key_given_reads_paglets_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAGLETS_API_KEY", "from-env")
    assert HostClient().api_key == "from-env"
    assert HostClient(api_key=None).api_key == "from-env"
    assert HostClient(api_key="given").api_key == "given"  # an explicit key wins
    assert HostClient(api_key="").api_key == ""  # "" means no key, and no environment lookup
    assert HostClient(api_key="").http.api_key is None
    monkeypatch.setenv("PAGLETS_API_KEY", "")
    assert HostClient().api_key is None
    monkeypatch.delenv("PAGLETS_API_KEY")
    assert HostClient().api_key is None


def test_key_is_read_when_the_client_is_made(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAGLETS_API_KEY", "first")
    client = HostClient()
    monkeypatch.setenv("PAGLETS_API_KEY", "second")
    assert client.api_key == "first"
    assert client.http.api_key == "first"


@pytest.mark.parametrize("missing", [None, "", "  "])
def test_host_url_without_artifact_id_is_a_value_error(tmp_path: Path, missing: str | None) -> None:
    client = HostClient()
    with pytest.raises(ValueError, match=r"HostClient\.download_artifact\(\) requires artifact_id"):
        client.download_artifact(NOWHERE, tmp_path / "out.bin", missing)
    with pytest.raises(ValueError, match=r"HostClient\.delete_artifact\(\) requires artifact_id"):
        client.delete_artifact(NOWHERE, missing)
    with pytest.raises(ValueError, match=r"HostClient\.artifact_metadata\(\) requires artifact_id"):
        client.artifact_metadata(NOWHERE, missing)
    assert not (tmp_path / "out.bin").exists()


def test_401_message_says_whether_a_key_was_sent() -> None:
    body = {"error_type": "AuthenticationError", "error": "Authentication required"}
    missing = str(error_from_response("http://h:1/health", 401, body, key_sent=False))
    wrong = str(error_from_response("http://h:1/health", 401, body, key_sent=True))
    unknown = str(error_from_response("http://h:1/health", 401, None))
    assert "no API key was sent" in missing
    assert "refused the API key this client sent" in wrong
    for message in (missing, wrong, unknown):
        assert message.startswith("Authentication required")
        assert "PAGLETS_API_KEY" in message
        assert "http://h:1/health" in message
