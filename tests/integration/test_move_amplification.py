"""Decompression amplification against a live host: envelopes of zstd frames of zeros that declare more
state than they will ever send, held open, and a sender that trickles one byte a second.

The attacked host runs in its own process, so its shared memory can be read from outside: the sizes of the
memfds it holds (``/proc/<pid>/fd`` links ``/memfd:...``, each file once) plus the ``/dev/shm`` files it
maps. The attacker connects from 127.0.0.2, the legitimate clients from 127.0.0.1. What must hold is
checked without timing: shared memory stays under the inbound move budget, ``/health`` is answered while
the attack holds its connections, and an honest 16 MiB move arrives meanwhile.
"""

from __future__ import annotations

import json
import os
import secrets
import select
import socket
import struct
import subprocess
import sys
import threading
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import zstandard
from _paglets import Traveller, TravelState
from conftest import HERE, wait_until

from paglets.core.messages import Message
from paglets.remote.client import HostClient
from paglets.remote.transfer import TransferTicket
from paglets.runtime._inbound import INBOUND_MOVE_BUDGET
from paglets.runtime.host import Host
from paglets.wire.envelope import ENVELOPE_MAGIC, ENVELOPE_VERSION, EnvelopeMetadata
from paglets.wire.limits import GiB, MiB

ATTACKER = "127.0.0.2"
WAIT = 60.0
#: Shared memory a host may hold beyond the budget: the rings of the paglets that arrive meanwhile.
SLACK = 4 * MiB


# --- the attacked host and its shared memory -------------------------------------------------------------


class AttackedHost:
    """A host in its own process (``_hostproc.py``), with ``Host`` options given as JSON."""

    def __init__(self, directory: Path, **options: Any) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "_hostproc.py"), "target", str(directory), json.dumps(options)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], WAIT)
        line = self.proc.stdout.readline() if ready else ""
        if not line.startswith("READY "):
            self.close()
            raise AssertionError(f"the host process did not start: {line!r}")
        self.address = line.split()[1]
        self.port = int(self.address.rsplit(":", 1)[1])
        self.pid = self.proc.pid

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
def attacked(tmp_path: Path) -> Iterator[Callable[..., AttackedHost]]:
    started: list[AttackedHost] = []

    def start(**options: Any) -> AttackedHost:
        host = AttackedHost(tmp_path / f"target{len(started)}", **options)
        started.append(host)
        return host

    yield start
    for host in started:
        host.close()


def shared_memory(pid: int) -> int:
    """Bytes of shared memory process ``pid`` holds: its memfds (each file once), the ``/dev/shm``
    files it has open or mapped, and the portable backend's segment and ring files (``paglets-ipc-``)."""
    seen: set[tuple[int, int]] = set()
    total = 0

    def count(path: str) -> None:
        nonlocal total
        try:
            st = os.stat(path)
        except OSError:
            return
        if (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            total += st.st_size

    try:
        entries = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return 0
    for entry in entries:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{entry}")
        except OSError:
            continue
        if link.startswith(("/memfd:", "/dev/shm/")) or "/paglets-ipc-" in link:
            count(f"/proc/{pid}/fd/{entry}")
    try:
        with open(f"/proc/{pid}/maps") as fh:
            for line in fh:
                fields = line.split(maxsplit=5)
                if len(fields) == 6 and (fields[5].startswith("/dev/shm/") or "/paglets-ipc-" in fields[5]):
                    count(fields[5].strip())
    except OSError:
        pass
    return total


class Sampler:
    """The peak of ``shared_memory(pid)`` above its value at the start, sampled every few ms."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.base = shared_memory(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def growth(self) -> int:
        return shared_memory(self.pid) - self.base

    def _run(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, self.growth())

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(10)
        self.peak = max(self.peak, self.growth())
        return self.peak


# --- the attacker ------------------------------------------------------------------------------------------


def _prefix(declared: int) -> bytes:
    """Envelope header and metadata declaring ``declared`` state bytes (a fresh transfer id)."""
    transfer_id = secrets.token_hex(16)
    metadata = msgspec.msgpack.encode(
        EnvelopeMetadata(
            kind="dispatch",
            agent_id="amplified-" + transfer_id[:8],
            agent_class_name="_paglets:Traveller",
            state_class_name="_paglets:TravelState",
            transfer_id=transfer_id,
        )
    )
    fixed = struct.pack("<4sHHIQ", ENVELOPE_MAGIC, ENVELOPE_VERSION, 0, len(metadata), declared)
    return fixed + struct.pack("<I", zlib.crc32(metadata, zlib.crc32(fixed))) + metadata


def _zstd_frame(raw: bytes) -> bytes:
    packed = zstandard.ZstdCompressor(level=19, write_content_size=True).compress(raw)
    return struct.pack("<BBHIII", 0x5A, 0, 0, len(packed), len(raw), zlib.crc32(raw)) + packed


def _zero_frame() -> bytes:
    """One zstd frame of 1 MiB of zeros: 49 bytes on the wire with its 16-byte frame header."""
    return _zstd_frame(bytes(MiB))


def _repeating_frame() -> bytes:
    """One zstd frame of 1 MiB repeating a 24 KiB random block: about 24 KB on the wire."""
    block = os.urandom(24 * 1024)
    return _zstd_frame((block * (MiB // len(block) + 1))[:MiB])


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n" % len(data) + data + b"\r\n"


_HEAD = (
    b"POST /agents HTTP/1.1\r\nHost: target\r\nContent-Type: application/x-paglets-envelope\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)


class Attack:
    """One connection that sends an envelope prefix and ``frames`` zero frames, never the trailer, and
    keeps the connection until ``release()``; ``status``/``answer`` hold the host's response if any."""

    def __init__(self, port: int, declared: int, frames: int, frame: bytes | None = None) -> None:
        self.status: int | None = None
        self.answer: Any = None
        self.retry_after: str | None = None
        self.sent_frames = 0
        self.wire_bytes = 0
        self._released = threading.Event()
        self.answered = threading.Event()
        self._sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT, source_address=(ATTACKER, 0))
        chunk = _chunk(frame if frame is not None else _zero_frame())
        self._thread = threading.Thread(target=self._run, args=(declared, frames, chunk), daemon=True)
        self._thread.start()

    def _run(self, declared: int, frames: int, frame: bytes) -> None:
        sock = self._sock
        try:
            sock.sendall(_HEAD + _chunk(_prefix(declared)))
            for _ in range(frames):
                sock.sendall(frame)
                self.sent_frames += 1
                self.wire_bytes += len(frame)
        except OSError:
            pass  # the host answered and closed while we were sending
        self._read_answer()

    def _read_answer(self) -> None:
        data = bytearray()
        try:
            while b"\r\n\r\n" not in data or not self._body_complete(data):
                readable, _, _ = select.select([self._sock], [], [], 0.05)
                if self._released.is_set() and not readable:
                    return
                if readable:
                    more = self._sock.recv(65536)
                    if not more:
                        break
                    data += more
        except OSError:
            pass
        head, _, body = bytes(data).partition(b"\r\n\r\n")
        if head.startswith(b"HTTP/1.1 "):
            self.status = int(head.split()[1])
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"retry-after":
                    self.retry_after = value.strip().decode()
            try:
                self.answer = json.loads(body) if body else None
            except ValueError:
                self.answer = body.decode("latin-1")
        self.answered.set()

    @staticmethod
    def _body_complete(data: bytearray) -> bool:
        head, _, body = bytes(data).partition(b"\r\n\r\n")
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                return len(body) >= int(value)
        return False

    def release(self) -> None:
        self._released.set()
        self._thread.join(WAIT)
        self._sock.close()


def _honest_move(alpha: Host, target: str, size: int = 16 * MiB) -> str:
    """Dispatch a paglet with ``size`` random bytes from ``alpha`` to ``target``; returns its id."""
    paglet = alpha.create(Traveller, TravelState(payload=os.urandom(size)))
    ticket = TransferTicket(target, timeout=30.0, retries=20, retry_interval=0.2)
    alpha.dispatch(paglet.agent_id, ticket)
    return paglet.agent_id


def _answers(client: HostClient, address: str, agent_id: str) -> Any:
    return client.post_json(f"{address}/agents/{agent_id}/messages", {"message": Message("size").to_wire()})


# --- the attacks -------------------------------------------------------------------------------------------


def test_the_amplification_attack_holds_no_shared_memory_beyond_the_budget(
    attacked: Callable[..., AttackedHost], make_host: Callable[..., Host]
) -> None:
    """Two connections each declare a 1 GiB state and send 1,024 zstd frames of 49 bytes (67 KB on the
    wire, 1 GiB of zeros decoded), then hold their connections open."""
    target = attacked()
    alpha = make_host("alpha")
    client = HostClient(api_key="")
    sampler = Sampler(target.pid)
    attacks = [Attack(target.port, 1 * GiB, 1024) for _ in range(2)]
    try:
        for attack in attacks:
            assert attack.answered.wait(WAIT)
            assert attack.status == 413, attack.answer
            assert attack.answer["error_type"] == "LimitExceededError"
            assert "inbound move budget" in attack.answer["error"]
        # while the attacker still holds its connections open:
        assert client.get_json(target.address + "/health")["name"] == "target"
        moved = [_honest_move(alpha, target.address) for _ in range(2)]
        answers = [_answers(client, target.address, agent_id) for agent_id in moved]
        assert answers == [{"result": 16 * MiB}] * 2
    finally:
        for attack in attacks:
            attack.release()
        peak = sampler.stop()
        client.close()
    assert peak <= INBOUND_MOVE_BUDGET, f"shared memory grew by {peak / MiB:.0f} MiB"


def test_envelopes_within_the_budget_share_it_and_the_host_keeps_serving(
    attacked: Callable[..., AttackedHost], make_host: Callable[..., Host]
) -> None:
    """Two connections each declare 56 MiB (together more than the host's 80 MiB budget), send 56 frames of
    1 MiB that take 24 KB each on the wire (enough bytes to be decoded: the host decodes a MiB of wire at a
    time, or the end of a body) and hold their connections: one keeps what it decoded, the other waits for
    budget and is refused with 503; an honest 16 MiB move still arrives while the first holds its bytes."""
    budget = 80 * MiB
    target = attacked(inbound_move_budget=budget, inbound_budget_wait=1.0)
    alpha = make_host("alpha")
    client = HostClient(api_key="")
    sampler = Sampler(target.pid)
    attacks = [Attack(target.port, 56 * MiB, 56, _repeating_frame()) for _ in range(2)]
    try:
        wait_until(lambda: any(a.answered.is_set() for a in attacks), timeout=WAIT)
        refused = [a for a in attacks if a.answered.is_set()]
        holding = [a for a in attacks if not a.answered.is_set()]
        assert len(refused) == 1, [(a.status, a.answer) for a in attacks]
        assert len(holding) == 1
        assert refused[0].status == 503, refused[0].answer
        assert refused[0].retry_after is not None
        assert int(refused[0].retry_after) > 0
        assert refused[0].answer["error_type"] == "HostBusyError"
        wait_until(lambda: sampler.growth() >= 32 * MiB, timeout=WAIT)  # what the holder decoded
        assert client.get_json(target.address + "/health")["name"] == "target"
        agent_id = _honest_move(alpha, target.address)
        assert _answers(client, target.address, agent_id) == {"result": 16 * MiB}
        assert not holding[0].answered.is_set(), (holding[0].status, holding[0].answer)
    finally:
        for attack in attacks:
            attack.release()
    # the held move ended with its connection: its segment is freed and the budget given back
    wait_until(lambda: sampler.growth() <= SLACK, timeout=WAIT)
    peak = sampler.stop()
    assert peak <= budget + SLACK, f"shared memory grew by {peak / MiB:.0f} MiB over {budget / MiB:.0f} MiB"
    agent_id = _honest_move(alpha, target.address, size=72 * MiB)  # the whole budget is free again
    assert _answers(client, target.address, agent_id) == {"result": 72 * MiB}
    client.close()


def test_a_move_trickling_one_byte_a_second_is_cut(attacked: Callable[..., AttackedHost]) -> None:
    """A slow-loris move: the envelope's first bytes, then one byte a second. The body rate rule cuts it
    (408) once the grace period is over; the bytes it held are freed."""
    target = attacked(http_limits={"body_rate_grace": 2.0, "min_body_rate": 256})
    sampler = Sampler(target.pid)
    sock = socket.create_connection(("127.0.0.1", target.port), timeout=WAIT, source_address=(ATTACKER, 0))
    try:
        sock.sendall(_HEAD + _chunk(_prefix(8 * MiB)) + _chunk(_zero_frame()))
        frame = struct.pack("<BBHIII", 0x52, 0, 0, MiB, MiB, 0)  # a raw frame, its bytes to come
        sock.sendall(_chunk(frame))
        answer = b""
        stop = threading.Event()
        while not answer and not stop.wait(1.0):
            try:
                sock.sendall(_chunk(b"\x00"))  # one byte a second
            except OSError:
                pass
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                answer = sock.recv(65536)
            assert sampler.growth() <= 2 * MiB + SLACK  # one zero frame and one raw frame at most
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    wait_until(lambda: sampler.growth() <= SLACK, timeout=WAIT)
    sampler.stop()
