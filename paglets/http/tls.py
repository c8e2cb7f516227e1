"""TLS for the clients and the server, with the standard library's :mod:`ssl` only.

**Clients** (``https://`` URLs, blocking and async) verify the server's certificate and name against the
system trust store (``ssl.create_default_context``), plus the CA certificates of one file when
``PAGLETS_CA_FILE`` names one (a private CA in front of a relay hub). The variable is read when the first
context is made; :func:`reset_client_context` forgets the cached one. ``paglets-host --ca-file PATH``
sets the variable for the host and every paglet process it starts.

**Server**: :func:`server_context` loads a certificate chain and its key (``paglets-host --tls-cert
--tls-key``); TLS 1.2 is the oldest version either side accepts.

The async client does not use asyncio's SSL transports: it drives an ``ssl.SSLObject`` over memory
buffers (:class:`TlsSession`) on the same non-blocking sockets as plain HTTP, so keep-alive pooling,
timeouts and streaming work the same way for both schemes.
"""

from __future__ import annotations

import os
import ssl
import threading
from pathlib import Path
from typing import Final

from paglets._errors import HostError

__all__ = [
    "CA_FILE_ENV",
    "TlsSession",
    "client_context",
    "reset_client_context",
    "server_context",
]

#: The environment variable naming a PEM file of extra CA certificates that clients trust.
CA_FILE_ENV: Final = "PAGLETS_CA_FILE"

#: Largest piece of application data encrypted at once (bounds the ciphertext buffered per send).
TLS_WRITE_PIECE: Final = 256 * 1024

_lock = threading.Lock()
_client_context: ssl.SSLContext | None = None


def client_context() -> ssl.SSLContext:
    """The shared client context: system trust store, plus ``PAGLETS_CA_FILE`` when it is set."""
    global _client_context
    context = _client_context
    if context is not None:
        return context
    with _lock:
        if _client_context is None:
            _client_context = _new_client_context(os.environ.get(CA_FILE_ENV) or None)
        return _client_context


def reset_client_context() -> None:
    """Forget the shared client context (the next ``https://`` request reads ``PAGLETS_CA_FILE`` again)."""
    global _client_context
    with _lock:
        _client_context = None


def _new_client_context(ca_file: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_file:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise HostError(f"cannot load the CA file {ca_file!r} ({CA_FILE_ENV}): {exc}") from exc
    return context


def server_context(cert_file: str | Path, key_file: str | Path | None = None) -> ssl.SSLContext:
    """A server context for ``cert_file`` (PEM chain) and ``key_file`` (PEM key; in the chain file when
    ``None``); ``HostError`` when they cannot be loaded."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(cert_file), None if key_file is None else str(key_file))
    except (OSError, ssl.SSLError) as exc:
        raise HostError(f"cannot load the TLS certificate {cert_file!s} / key {key_file!s}: {exc}") from exc
    return context


class TlsSession:
    """One client TLS session over memory buffers: the socket driver feeds what it receives with
    :meth:`feed` and sends what :meth:`outgoing` returns. Socket-free, so both the blocking and the
    async client could drive it; the async client does."""

    __slots__ = ("_in", "_out", "tls")

    def __init__(self, context: ssl.SSLContext, server_hostname: str) -> None:
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self.tls = context.wrap_bio(self._in, self._out, server_side=False, server_hostname=server_hostname)

    def feed(self, data: bytes) -> None:
        """Ciphertext received from the peer (``b""``: the peer closed the connection)."""
        if data:
            self._in.write(data)
        else:
            self._in.write_eof()

    def outgoing(self) -> bytes:
        """Ciphertext to send now (may be empty)."""
        return self._out.read()

    def handshake(self) -> bool:
        """One handshake step: ``True`` when complete, ``False`` when it needs more bytes from the peer."""
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            return False
        return True

    def read(self, size: int) -> bytes | None:
        """Plaintext received (``b""`` at the end of the stream), or ``None`` when more ciphertext is
        needed first."""
        try:
            return self.tls.read(size)
        except ssl.SSLWantReadError:
            return None
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            return b""

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Encrypt ``data`` (then send :meth:`outgoing`)."""
        self.tls.write(data)

    def pending(self) -> int:
        """Plaintext bytes decrypted but not read yet."""
        return self.tls.pending()
