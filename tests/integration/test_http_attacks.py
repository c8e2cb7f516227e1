"""Attacks on a host's HTTP layer: idle sockets that hold connection slots, oversized and costly JSON bodies.

The attacker connects from 127.0.0.2 (all of 127/8 is loopback on Linux), the legitimate client from
127.0.0.1, so the host sees two peer addresses. What must hold is checked without timing: the legitimate
request is answered while the attacker's sockets are open; the attacker's sockets end up closed.
"""

from __future__ import annotations

import resource
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import msgspec
import pytest
from _paglets import Counter

from paglets.core.messages import Message
from paglets.http import ServerLimits
from paglets.http.limits import MAX_CONNECTIONS_PER_ADDRESS
from paglets.http.testing import parse_responses
from paglets.remote.client import HostClient
from paglets.runtime.host import Host
from paglets.wire.limits import MAX_CONTROL_BODY, MiB

KEY = "attack-test-key"
ATTACKER = "127.0.0.2"
IDLE_SOCKETS = 1100  # more than the host's 1024 connection slots
WAIT = 30.0


def _ensure_descriptors(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"needs {needed} file descriptors, the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def _connect(port: int, source: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT, source_address=(source, 0))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


@contextmanager
def _idle_sockets(port: int, count: int) -> Iterator[list[socket.socket]]:
    # the host runs in this process: our sockets, its accepted ones and its lingering refusals
    _ensure_descriptors(3 * count + 512)
    held: list[socket.socket] = []
    try:
        held.extend(_connect(port, ATTACKER) for _ in range(count))
        yield held
    finally:
        for sock in held:
            sock.close()


def _read_until_closed(sock: socket.socket) -> bytes:
    out = bytearray()
    try:
        while data := sock.recv(65536):
            out += data
    except ConnectionResetError:
        pass
    return bytes(out)


def _stats(host: Host) -> Any:
    stats = host.http_statistics()
    assert stats is not None
    return stats


def _guarded(make_host: Callable[..., Host], **limits: Any) -> Host:
    return make_host("guarded", api_key=KEY, http_limits=ServerLimits(**limits))


def _request(method: str, path: str, body: bytes = b"", extra: str = "") -> bytes:
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    )
    return head.encode() + body


# --- idle sockets (connection slots) ---------------------------------------------------------------------


def test_idle_sockets_from_one_address_leave_the_host_serving_others(make_host: Callable[..., Host]) -> None:
    host = _guarded(make_host, first_request_timeout=600.0)  # the attacker's sockets stay open
    client = HostClient(api_key=KEY)
    try:
        with _idle_sockets(host.port, IDLE_SOCKETS):
            refused = IDLE_SOCKETS - MAX_CONNECTIONS_PER_ADDRESS
            deadline = threading.Event()
            while _stats(host).connections_rejected_per_address < refused and not deadline.wait(0.01):
                pass
            assert _stats(host).connections_rejected_per_address == refused
            # the attacker holds its whole share while the legitimate client is served
            assert client.get_json(host.address + "/health")["name"] == "guarded"
            proxy = host.create(Counter)
            assert client.post_json(
                f"{host.address}/agents/{proxy.agent_id}/messages",
                {"message": {"kind": "add", "args": {"n": 2}}},
            ) == {"result": 2}
            stats = _stats(host)
            assert stats.connections_open >= MAX_CONNECTIONS_PER_ADDRESS
            assert stats.connections_evicted == 0
            assert stats.first_request_timeouts == 0
    finally:
        client.close()


def test_idle_attacker_sockets_are_closed_at_the_first_request_deadline(
    make_host: Callable[..., Host],
) -> None:
    host = _guarded(make_host, first_request_timeout=0.5)
    client = HostClient(api_key=KEY)
    try:
        with _idle_sockets(host.port, IDLE_SOCKETS) as held:
            answers = [_read_until_closed(sock) for sock in held]  # returns once the host closed each
            refused = [a for a in answers if a]
            assert len(refused) == IDLE_SOCKETS - MAX_CONNECTIONS_PER_ADDRESS
            assert all(parse_responses(a)[0].status == 503 for a in refused)
            assert _stats(host).first_request_timeouts == MAX_CONNECTIONS_PER_ADDRESS
            assert client.get_json(host.address + "/health")["name"] == "guarded"
    finally:
        client.close()


# --- JSON bodies -----------------------------------------------------------------------------------------


def test_health_is_answered_while_a_large_message_arrives_and_is_decoded(
    make_host: Callable[..., Host],
) -> None:
    host = _guarded(make_host, json_offload_threshold=16 * 1024)
    proxy = host.create(Counter)
    pad = list(range(10_000))  # ~60 KiB of JSON: above the threshold, below the paglet's inline frame
    body = msgspec.json.encode({"message": {"kind": "add", "args": {"n": 3, "pad": pad}}})
    client = HostClient(api_key=KEY)
    try:
        with _connect(host.port, "127.0.0.1") as sock:
            sock.sendall(_request("POST", f"/agents/{proxy.agent_id}/messages", body)[: len(body) // 2])
            assert client.get_json(host.address + "/health")["name"] == "guarded"
            sock.sendall(_request("POST", f"/agents/{proxy.agent_id}/messages", body)[len(body) // 2 :])
            answer = parse_responses(sock.recv(65536))[0]
        assert answer.status == 200, answer.body
        assert msgspec.json.decode(answer.body) == {"result": 3}
        assert _stats(host).bodies_decoded_off_loop >= 1
    finally:
        client.close()


def test_a_large_json_array_is_refused_and_the_paglet_still_answers(make_host: Callable[..., Host]) -> None:
    host = _guarded(make_host)
    proxy = host.create(Counter)
    body = b"[" + b"{}," * (57 * MiB // 3 - 1) + b"{}]"  # the 57 MiB array of empty objects
    client = HostClient(api_key=KEY)
    try:
        with _connect(host.port, "127.0.0.1") as sock:
            sock.sendall(_request("POST", f"/agents/{proxy.agent_id}/messages", body))
            answer = parse_responses(sock.recv(65536))[0]
        assert answer.status == 400
        assert "expected object, got array" in msgspec.json.decode(answer.body)["error"]
        assert proxy.send(Message("add")) == 1
        assert client.get_json(host.address + "/health")["name"] == "guarded"
    finally:
        client.close()


def test_a_control_body_over_its_limit_is_413_before_it_is_sent(make_host: Callable[..., Host]) -> None:
    host = _guarded(make_host)
    proxy = host.create(Counter)
    head = _request("POST", f"/agents/{proxy.agent_id}/dispose", b"")
    head = head.replace(b"Content-Length: 0", b"Content-Length: %d" % (57 * MiB))
    with _connect(host.port, "127.0.0.1") as sock:
        sock.sendall(head)  # and not one byte of the body
        answer = parse_responses(_read_until_closed(sock))[0]
    assert answer.status == 413
    error = msgspec.json.decode(answer.body)
    assert error["error_type"] == "BodyTooLargeError"
    assert str(MAX_CONTROL_BODY) in error["error"]
    assert proxy.send(Message("add")) == 1  # not disposed


def test_a_chunked_control_body_over_its_limit_is_cut_unbuffered(make_host: Callable[..., Host]) -> None:
    host = _guarded(make_host)
    proxy = host.create(Counter)
    total = 80 * MiB
    piece = b"%x\r\n" % MiB + b" " * MiB + b"\r\n"
    sent = [0]

    def send(sock: socket.socket) -> None:
        try:
            while sent[0] < total:
                sock.sendall(piece)
                sent[0] += MiB
        except OSError:  # the host cut the connection after its answer
            pass

    with _connect(host.port, "127.0.0.1") as sock:
        sock.sendall(
            _request("POST", f"/agents/{proxy.agent_id}/dispose").replace(
                b"Content-Length: 0\r\n", b"Transfer-Encoding: chunked\r\n"
            )
        )
        sender = threading.Thread(target=send, args=(sock,), daemon=True)
        sender.start()
        answer = parse_responses(_read_until_closed(sock))[0]
        sender.join(WAIT)
    assert not sender.is_alive()
    assert answer.status == 413
    assert sent[0] < total  # cut near the limit, not read to the end
    assert proxy.send(Message("add")) == 1
