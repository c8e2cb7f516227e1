"""``HostClient``: the JSON control-plane client for paglets hosts (docs/implementing/proxies.md).

Calls go through one keep-alive connection pool (``paglets.http.client.HttpClient``), so repeated calls
to a host reuse a TCP connection. Binary values travel in the JSON tag form of ``proto/PROTOCOL.md``.
Error responses are rebuilt into the class their ``error_type`` (or ``code``) names; an unknown class
becomes ``RemoteHostError``; connection failures are ``RemoteHostError`` naming the URL. A 401 says
whether this client sent a key and how to pass the right one (``PAGLETS_API_KEY``).

API key: ``HostClient()`` without ``api_key`` (or with ``api_key=None``) reads ``PAGLETS_API_KEY`` once,
when it is constructed (unset or empty: no key); ``api_key=""`` means "no key" and does not look at the
environment. paglets 2.0's client never read the environment; its commands did.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from paglets.artifacts import ArtifactRef
from paglets.core.errors import AuthenticationError, PagletError, RemoteHostError
from paglets.http.client import HttpClient
from paglets.http.errormap import auth_hint
from paglets.remote import _artifact_client as _artifacts
from paglets.wire.jsonbin import decode_json, encode_json
from paglets.wire.messages import exception_from_error_body

__all__ = ["API_KEY_ENV", "HostClient", "default_api_key"]

#: The environment variable clients and CLIs read the API key from by default.
API_KEY_ENV: Final = "PAGLETS_API_KEY"

_JSON_HEADERS: Final = {"Content-Type": "application/json"}


def default_api_key() -> str | None:
    """The key in ``PAGLETS_API_KEY``, or ``None`` when unset or empty."""
    return os.environ.get(API_KEY_ENV) or None


class HostClient:
    """Blocking, thread-safe client for a host's JSON API.

    ``timeout`` (seconds) bounds every call unless a call passes its own. ``api_key`` is sent as
    ``Authorization: Bearer <key>`` when set; ``None`` (the default) takes it from ``PAGLETS_API_KEY``,
    ``""`` sends none (see the module docstring).
    """

    def __init__(self, timeout: float = 10.0, *, api_key: str | None = None) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.timeout = float(timeout)
        self.api_key = default_api_key() if api_key is None else api_key
        self._http: HttpClient | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"HostClient(timeout={self.timeout}, api_key={'set' if self.api_key else None})"

    @property
    def http(self) -> HttpClient:
        """The underlying connection pool (created on first use)."""
        http = self._http
        if http is None:
            with self._lock:
                if self._http is None:
                    self._http = HttpClient(api_key=self.api_key or None, timeout=self.timeout)
                http = self._http
        return http

    def get_json(self, url: str, *, timeout: float | None = None) -> Any:
        return self._call("GET", url, None, timeout)

    def post_json(self, url: str, payload: Any = None, *, timeout: float | None = None) -> Any:
        return self._call("POST", url, {} if payload is None else payload, timeout)

    def delete_json(self, url: str, *, timeout: float | None = None) -> Any:
        return self._call("DELETE", url, None, timeout)

    def _call(self, method: str, url: str, payload: Any, timeout: float | None) -> Any:
        body = None if payload is None else encode_json(payload)
        try:
            response = self.http.request(
                method,
                url,
                body=body,
                headers=_JSON_HEADERS if body is not None else None,
                timeout=self.timeout if timeout is None else timeout,
            )
        except PagletError:
            raise
        except OSError as exc:
            raise RemoteHostError(f"cannot reach {url}: {exc}") from exc
        if 200 <= response.status < 300:
            data: Any = decode_json(response.body) if response.body else None
            return {} if data is None else data
        try:
            data = decode_json(response.body) if response.body else None
        except PagletError:  # not ours: a reverse proxy's HTML page (413, 502, ...)
            data = None
        raise error_from_response(url, response.status, data, key_sent=bool(self.api_key))

    # --- artifacts ------------------------------------------------------------------------------------------

    def upload_artifact(
        self,
        host_url: str,
        path: str | Path,
        *,
        owner_agent_id: str = "",
        name: str | None = None,
        compression: str = "",
        expires_at: float = 0.0,
        expected_sha256: str | None = None,
        timeout: float | None = None,
    ) -> ArtifactRef:
        """Stream a file into the artifact store of ``host_url`` (SHA-256 checked)."""
        return _artifacts.upload_artifact(
            self.http,
            host_url,
            path,
            owner_agent_id=owner_agent_id,
            name=name,
            compression=compression,
            expires_at=expires_at,
            expected_sha256=expected_sha256,
            timeout=timeout,
        )

    def download_artifact(
        self,
        artifact: ArtifactRef | Mapping[str, Any] | str,
        target: str | Path,
        artifact_id: str | None = None,
        *,
        move: bool = False,
        timeout: float | None = None,
    ) -> ArtifactRef:
        """Stream an artifact to ``target`` (size and SHA-256 verified, atomic rename); returns its
        reference. ``artifact`` is a reference (or its wire dict), or a host URL with ``artifact_id``."""
        return _artifacts.download_artifact(
            self.http, artifact, target, artifact_id, move=move, timeout=timeout
        )

    def artifact_metadata(
        self,
        host_url: ArtifactRef | Mapping[str, Any] | str,
        artifact_id: str | None = None,
        *,
        timeout: float | None = None,
    ) -> ArtifactRef:
        """The host's reference for an artifact (``host_url`` may also be a reference)."""
        return _artifacts.artifact_metadata(self.http, host_url, artifact_id, timeout=timeout)

    def list_artifacts(
        self, host_url: str, *, owner_agent_id: str | None = None, timeout: float | None = None
    ) -> list[ArtifactRef]:
        return _artifacts.list_artifacts(self.http, host_url, owner_agent_id=owner_agent_id, timeout=timeout)

    def delete_artifact(
        self,
        artifact: ArtifactRef | Mapping[str, Any] | str,
        artifact_id: str | None = None,
        *,
        timeout: float | None = None,
    ) -> None:
        """Delete an artifact (a reference or its wire dict, or a host URL with ``artifact_id``)."""
        _artifacts.delete_artifact(self.http, artifact, artifact_id, timeout=timeout)

    def close(self) -> None:
        with self._lock:
            http, self._http = self._http, None
        if http is not None:
            http.close()


#: What a status without a paglets error body usually means (it came from a reverse proxy in front).
_PROXY_HINTS: Final = {
    413: " (request body too large for a proxy in front of the host, e.g. nginx's client_max_body_size)",
    502: " (a proxy in front of the host could not reach it: is the host running?)",
    503: " (a proxy in front of the host could not reach it: is the host running?)",
    504: " (a proxy in front of the host timed out waiting for it)",
}


def error_from_response(url: str, status: int, data: Any, *, key_sent: bool | None = None) -> PagletError:
    """The exception an error response stands for; a 401 is an ``AuthenticationError`` whose message
    says whether a key was sent (``key_sent``, when the caller knows) and how to fix it."""
    if isinstance(data, dict) and isinstance(data.get("error_type"), str):
        exc = exception_from_error_body(data)
    else:
        exc = RemoteHostError(f"{url} answered HTTP {status}{_PROXY_HINTS.get(status, '')}")
    if status == 401:
        message = str(exc) if isinstance(exc, AuthenticationError) else "Authentication required"
        return AuthenticationError(f"{message} ({auth_hint(url, key_sent)})", remote_type=exc.remote_type)
    return exc
