"""HTTPS: both clients against a server that serves TLS itself, verified with a throwaway CA."""

from __future__ import annotations

import ssl
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from paglets.core.errors import RemoteHostError
from paglets.http import AsyncHttpClient, HttpClient
from paglets.http.tls import CA_FILE_ENV, client_context, reset_client_context, server_context

from ._certs import Certs, have_openssl, make_ca
from .conftest import ServerThread, run_async

pytestmark = pytest.mark.skipif(not have_openssl(), reason="needs the openssl command")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_ca(tmp_path_factory.mktemp("ca"), ["localhost"])


@pytest.fixture
def tls_server(make_server: Callable[..., ServerThread], certs: Certs) -> ServerThread:
    return make_server(ssl_context=server_context(certs.cert, certs.key))


def _trusting(certs: Certs) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certs.ca))
    return context


def _https(server: ServerThread, path: str, host: str = "localhost") -> str:
    return f"https://{host}:{server.port}{path}"


def test_async_client_round_trips_keep_alive_and_streams(tls_server: ServerThread, certs: Certs) -> None:
    pieces = [bytes([i]) * 100_000 for i in range(30)]
    expected = {"size": sum(map(len, pieces)), "crc": zlib.crc32(b"".join(pieces))}

    async def main() -> None:
        async with AsyncHttpClient(ssl_context=_trusting(certs)) as client:
            for i in range(10):
                result = await client.request_json("POST", _https(tls_server, "/echo"), {"i": i})
                assert result["payload"] == {"i": i}
            assert await client.request_json("POST", _https(tls_server, "/upload"), None) == {
                "size": 0,
                "crc": 0,
            }
            response = await client.request("POST", _https(tls_server, "/upload"), body=iter(pieces))
            assert response.json() == expected
            size = 5 * 1024 * 1024 + 17
            async with client.stream("GET", _https(tls_server, f"/download?size={size}&chunked=1")) as stream:
                got = 0
                async for piece in stream.iter_chunks():
                    got += len(piece)
            assert got == size

    run_async(main)
    assert tls_server.stats().connections_accepted == 1


def test_blocking_client_round_trips_keep_alive_and_streams(tls_server: ServerThread, certs: Certs) -> None:
    pieces = [bytes([i]) * 100_000 for i in range(30)]
    with HttpClient(ssl_context=_trusting(certs)) as client:
        for i in range(10):
            assert client.request_json("POST", _https(tls_server, "/echo"), {"i": i})["payload"] == {"i": i}
        response = client.request("POST", _https(tls_server, "/upload"), body=iter(pieces))
        assert response.json()["size"] == 3_000_000
        with client.stream("GET", _https(tls_server, "/download?size=3000000")) as stream:
            assert sum(len(p) for p in stream.iter_chunks()) == 3_000_000
        assert client.request_json("GET", _https(tls_server, "/health"))["ok"]
    assert tls_server.stats().connections_accepted == 1


def test_unknown_ca_and_wrong_name_are_refused(
    tls_server: ServerThread, certs: Certs, tmp_path: Path
) -> None:
    reset_client_context()
    with HttpClient() as client, pytest.raises(RemoteHostError, match="certificate verify failed"):
        client.request_json("GET", _https(tls_server, "/health"))

    async def main() -> None:
        async with AsyncHttpClient() as client:
            with pytest.raises(RemoteHostError, match="certificate verify failed"):
                await client.request_json("GET", _https(tls_server, "/health"))
        other = make_ca(tmp_path / "other", ["localhost"])
        async with AsyncHttpClient(ssl_context=_trusting(other)) as client:
            with pytest.raises(RemoteHostError, match="TLS handshake"):
                await client.request_json("GET", _https(tls_server, "/health"))

    run_async(main)
    # a name the certificate does not carry
    with HttpClient(ssl_context=_trusting(certs)) as client, pytest.raises(RemoteHostError, match="mismatch"):
        client.request_json("GET", f"https://127.0.0.1:{tls_server.port}/health")


def test_ca_file_variable(tls_server: ServerThread, certs: Certs, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CA_FILE_ENV, str(certs.ca))
    reset_client_context()
    try:
        with HttpClient() as client:
            assert client.request_json("GET", _https(tls_server, "/health"))["ok"]

        async def main() -> None:
            async with AsyncHttpClient() as client:
                assert (await client.request_json("GET", _https(tls_server, "/health")))["ok"]

        run_async(main)
        monkeypatch.setenv(CA_FILE_ENV, str(certs.ca.with_name("missing.pem")))
        reset_client_context()
        with pytest.raises(Exception, match="cannot load the CA file"):
            client_context()
    finally:
        monkeypatch.delenv(CA_FILE_ENV)
        reset_client_context()


def test_plain_http_to_a_tls_server_fails_cleanly(tls_server: ServerThread) -> None:
    with HttpClient(timeout=3) as client, pytest.raises(RemoteHostError):
        client.request_json("GET", f"http://127.0.0.1:{tls_server.port}/health")
