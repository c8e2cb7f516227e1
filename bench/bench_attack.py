"""Does a host keep serving other clients while it is attacked, and what survives each attack?

Question: for each attack below, run against a live host at full size, how long does ``GET /health`` take
for another client meanwhile (median, p99, max; goal: p99 ≤ 50 ms), and what held afterwards: the
attacked paglet still answers, the host still serves, the host's memory and shared memory stayed under
the budget.

Attacks (the attacker connects from 127.0.0.2, the probing client from 127.0.0.1; both hold the host's
API key, so every request passes authentication):

1. ``malformed``: messages with ``"args": [1]``, ``"args": "x"``, ``"sender": 1``, ``"reply_to": [1]``,
   each with and without ``"oneway": true``, each to a fresh paglet, which must answer ``ping`` after it;
2. ``amplify``: two connections at once each send a movement envelope that declares a 1 GiB state and
   then 1,024 zstd frames of 49 bytes (1 MiB of zeros each, 67 KB on the wire), and hold the connection
   open without the trailer;
3. ``idle``: 1,100 sockets that send nothing;
4. ``json-array``: a 57 MiB JSON array of ``{}`` as a message body; ``json-arg``: the same array as a
   message argument inside a well-formed message;
6. ``blocked``: a handler that never returns, then ``dispose`` (and a synchronous send to it);
7. ``ids``: creations with the agent ids ``""``, NUL, ``/tmp/x``, 1,000 characters and ``"x\\n"``.

Every attack runs against a fresh host process (its own session, killed with its paglets at the end),
and is bounded in count and time: each request has a timeout, held connections are closed after
``--hold`` seconds. The probe opens a new connection for every ``/health`` (a client arriving during the
attack, which is what connection exhaustion hurts) every 10 ms; a failed probe (refused, reset, non-200,
10 s timeout) counts in ``failed`` with its time. A probe that waited longer than the interval also
stands for the probes due meanwhile (each with what it would have waited), so a long pause of the host
counts by its length and not as one sample. Memory is sampled every 50 ms from ``/proc/<host>``:
``RSS +MiB`` is the peak growth of the host's resident memory over its start, ``shm MiB`` the peak of the
shared memory it holds (memfd segments it has open, or the growth of ``/dev/shm``, whichever is larger).

Run: ``.venv/bin/python bench/bench_attack.py`` (about two minutes; ``--quick``: shorter holds and fewer
probes; ``--json``: one JSON document instead of the table; ``--only idle,ids`` to pick attacks). The
machine needs ~3 GiB of free memory for ``amplify`` and the JSON attacks when the host does not bound them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import secrets
import select
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = Path(__file__).resolve().parent / "scenarios"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MiB = 1024 * 1024
GiB = 1024 * MiB
KEY = "bench-attack-key"
ATTACKER = "127.0.0.2"
TARGET_CLASS = "_attack_agents:Target"
GOAL_P99_MS = 50.0
PROBE_INTERVAL = 0.010
PROBE_TIMEOUT = 10.0
#: Seconds any single attacker request may take (beyond it the attack records a timeout).
REQUEST_TIMEOUT = 60.0
HOST_START_TIMEOUT = 30.0
HOST_STOP_TIMEOUT = 15.0
IDLE_SOCKETS = 1100
ARRAY_BYTES = 57 * MiB
AMPLIFY_CONNECTIONS = 2
AMPLIFY_FRAMES = 1024
AMPLIFY_DECLARED = 1 * GiB
ODD_IDS = ["", "\x00", "/tmp/x", "a" * 1000, "x\n"]


# --- the host under attack (``bench_attack.py host DIR``; stops when stdin closes) --------------------------


def host_main(directory: str) -> None:
    sys.path.insert(0, str(SCENARIOS))  # the paglet class, for the host and its paglet processes
    from paglets.runtime.host import Host

    host = Host(
        "attacked", persistence_dir=directory, api_key=KEY, mesh_lan_discovery=False, mesh_multicast=False
    )
    host.start_background()
    print(f"READY {host.address}", flush=True)
    sys.stdin.read()
    host.stop()


class HostProcess:
    """A host in its own process session, so that it and its paglets can be killed together."""

    def __init__(self) -> None:
        self.directory = tempfile.mkdtemp(prefix="paglets-attack-")
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "host", self.directory],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], HOST_START_TIMEOUT)
        line = self.proc.stdout.readline() if ready else ""
        if not line.startswith("READY "):
            self.stop()
            raise RuntimeError(f"the host did not start: {line!r}")
        self.address = line.split()[1]
        self.port = int(self.address.rsplit(":", 1)[1])
        self.pid = self.proc.pid

    def stop(self) -> None:
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            self.proc.wait(HOST_STOP_TIMEOUT)
        except (subprocess.TimeoutExpired, OSError):
            pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # whatever is left: the host and its paglets
        except ProcessLookupError:
            pass
        self.proc.wait(HOST_STOP_TIMEOUT)
        shutil.rmtree(self.directory, ignore_errors=True)


# --- raw HTTP (the attacker speaks for itself; every call is bounded) ---------------------------------------


def connect(port: int, source: str = ATTACKER, timeout: float = REQUEST_TIMEOUT) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def request_head(method: str, path: str, length: int | None, content_type: str = "application/json") -> bytes:
    framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    return (
        f"{method} {path} HTTP/1.1\r\nHost: attacked\r\nAuthorization: Bearer {KEY}\r\n"
        f"Content-Type: {content_type}\r\n{framing}\r\nConnection: close\r\n\r\n"
    ).encode()


def read_response(sock: socket.socket) -> tuple[int, Any]:
    """Status and decoded JSON body of the one response on ``sock`` (read until the host closes)."""
    data = bytearray()
    try:
        while chunk := sock.recv(1 << 16):
            data += chunk
    except ConnectionResetError:
        pass
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1."):
        return 0, None
    status = int(head.split(b" ", 2)[1])
    try:
        return status, json.loads(body) if body else None
    except ValueError:
        return status, body[:200].decode("latin-1")


def call(
    port: int,
    method: str,
    path: str,
    payload: Any = None,
    *,
    raw: bytes | None = None,
    timeout: float = REQUEST_TIMEOUT,
) -> tuple[int, Any]:
    """One request from the attacker's address; ``(0, "timeout ...")`` when it takes over ``timeout``."""
    body = raw if raw is not None else (b"" if payload is None else json.dumps(payload).encode())
    try:
        with connect(port, timeout=timeout) as sock:
            sock.sendall(request_head(method, path, len(body)) + body)
            return read_response(sock)
    except TimeoutError:
        return 0, f"timeout after {timeout:g} s"
    except OSError as exc:
        return 0, f"{type(exc).__name__}: {exc}"


def create_target(port: int, agent_id: str | None = None) -> tuple[int, Any]:
    payload: dict[str, Any] = {"agent_class_name": TARGET_CLASS}
    if agent_id is not None:
        payload["agent_id"] = agent_id
    return call(port, "POST", "/agents", payload)


def new_target(port: int) -> str:
    status, answer = create_target(port)
    if status != 200:
        raise RuntimeError(f"cannot create the target paglet: {status} {answer}")
    return str(answer["proxy"]["agent_id"])


def ping(port: int, agent_id: str, timeout: float = 10.0) -> bool:
    status, answer = call(
        port, "POST", f"/agents/{agent_id}/messages", {"message": {"kind": "ping"}}, timeout=timeout
    )
    return status == 200 and isinstance(answer, dict) and answer.get("result") == "pong"


def host_serves(port: int) -> bool:
    status, _ = call(port, "GET", "/health", timeout=10.0)
    return status == 200


def statuses(codes: list[int]) -> str:
    counts: dict[int, int] = {}
    for code in codes:
        counts[code] = counts.get(code, 0) + 1
    return " ".join(f"{code or 'none'} x{n}" for code, n in sorted(counts.items()))


# --- the probe (``bench_attack.py probe PORT``; its own process, from 127.0.0.1) ----------------------------


def probe_main(port: int) -> None:
    request = (
        f"GET /health HTTP/1.1\r\nHost: attacked\r\nAuthorization: Bearer {KEY}\r\nConnection: close\r\n\r\n"
    ).encode()
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    samples: list[tuple[float, bool]] = []
    print("READY", flush=True)
    while not stop.is_set():
        started = time.perf_counter()
        ok = False
        try:
            with connect(port, "127.0.0.1", PROBE_TIMEOUT) as sock:
                sock.sendall(request)
                ok = read_response(sock)[0] == 200
        except OSError:
            pass
        elapsed = time.perf_counter() - started
        samples.append((elapsed, ok))
        stop.wait(max(0.0, PROBE_INTERVAL - elapsed))
    print(json.dumps(samples), flush=True)


class Probe:
    def __init__(self, port: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "probe", str(port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "READY":
            raise RuntimeError("the probe did not start")

    def finish(self) -> list[tuple[float, bool]]:
        try:
            out, _ = self.proc.communicate("", timeout=PROBE_TIMEOUT + 10)
            samples: list[tuple[float, bool]] = json.loads(out.strip().splitlines()[-1])
            return samples
        except (subprocess.TimeoutExpired, ValueError, IndexError):
            self.proc.kill()
            self.proc.wait()
            return []


# --- memory of the host -------------------------------------------------------------------------------------


def _status_kib(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _memfd_bytes(pid: int) -> int:
    total = 0
    try:
        entries = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return 0
    seen: set[tuple[int, int]] = set()
    for entry in entries:
        try:
            if os.readlink(f"/proc/{pid}/fd/{entry}").startswith("/memfd:"):
                st = os.stat(f"/proc/{pid}/fd/{entry}")
                if (st.st_dev, st.st_ino) not in seen:  # one segment may be open more than once
                    seen.add((st.st_dev, st.st_ino))
                    total += st.st_size
        except OSError:
            continue
    return total


def _dev_shm_used() -> int:
    try:
        st = os.statvfs("/dev/shm")
    except OSError:
        return 0
    return (st.f_blocks - st.f_bfree) * st.f_frsize


class MemorySampler:
    """Peak resident growth and shared memory of the host process while an attack runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.base_rss = _status_kib(pid, "VmRSS") * 1024
        self.base_shm = _dev_shm_used()
        self.peak_rss = 0
        self.peak_shm = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        rss = _status_kib(self.pid, "VmRSS") * 1024 - self.base_rss
        shm = max(_memfd_bytes(self.pid), _dev_shm_used() - self.base_shm)
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_shm = max(self.peak_shm, shm)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self._sample()

    def finish(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sample()


# --- the attacks (each returns what it saw; the runner adds latencies and the checks) -----------------------


def repeat(hold: float, rounds: int, attack: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``attack`` until ``hold`` seconds passed (at least once, at most ``rounds`` times): the first
    round's outcome, and whether every round's paglet check held."""
    deadline = time.monotonic() + hold
    first = attack()
    count, held = 1, first.get("paglet_ok")
    while count < rounds and time.monotonic() < deadline:
        again = attack()
        count += 1
        if held is not None:
            held = held and bool(again.get("paglet_ok"))
    first["paglet_ok"] = held
    first["outcome"] += f" ({count} round{'s' if count > 1 else ''})"
    return first


def attack_malformed(host: HostProcess, hold: float) -> dict[str, Any]:
    variants = [{"args": [1]}, {"args": "x"}, {"sender": 1}, {"reply_to": [1]}]

    def round_() -> dict[str, Any]:
        codes: list[int] = []
        alive = 0
        for oneway in (False, True):
            for extra in variants:
                agent_id = new_target(host.port)
                body = {"message": {"kind": "ping", **extra}, "oneway": oneway}
                codes.append(call(host.port, "POST", f"/agents/{agent_id}/messages", body)[0])
                alive += ping(host.port, agent_id)
                call(host.port, "POST", f"/agents/{agent_id}/dispose", {}, timeout=10.0)
        total = 2 * len(variants)
        return {
            "paglet_ok": alive == total,
            "outcome": f"answers {statuses(codes)}; alive after {alive}/{total}",
        }

    return repeat(hold, 30, round_)


def _envelope_prefix(transfer_id: str) -> bytes:
    import msgspec

    from paglets.wire.envelope import ENVELOPE_MAGIC, ENVELOPE_VERSION, EnvelopeMetadata

    metadata = msgspec.msgpack.encode(
        EnvelopeMetadata(
            kind="dispatch",
            agent_id="amplified-" + transfer_id[:8],
            agent_class_name=TARGET_CLASS,
            state_class_name="_attack_agents:TargetState",
            transfer_id=transfer_id,
        )
    )
    fixed = struct.pack("<4sHHIQ", ENVELOPE_MAGIC, ENVELOPE_VERSION, 0, len(metadata), AMPLIFY_DECLARED)
    return fixed + struct.pack("<I", zlib.crc32(metadata, zlib.crc32(fixed))) + metadata


def _zero_frame() -> bytes:
    import zstandard

    raw = bytes(MiB)
    packed = zstandard.ZstdCompressor(level=19, write_content_size=True).compress(raw)
    return struct.pack("<BBHIII", 0x5A, 0, 0, len(packed), len(raw), zlib.crc32(raw)) + packed


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n" % len(data) + data + b"\r\n"


def attack_amplify(host: HostProcess, hold: float) -> dict[str, Any]:
    frame = _zero_frame()
    answers: list[str] = []
    sent = [0] * AMPLIFY_CONNECTIONS
    release = threading.Event()

    def one(index: int) -> None:
        try:
            with connect(host.port) as sock:
                sock.sendall(request_head("POST", "/agents", None, "application/x-paglets-envelope"))
                sock.sendall(_chunk(_envelope_prefix(secrets.token_hex(16))))
                for _ in range(AMPLIFY_FRAMES):
                    sock.sendall(_chunk(frame))
                    sent[index] += len(frame)
                release.wait(hold)  # hold the connection without the trailer
                sock.settimeout(0.5)
                try:
                    status, _ = read_response(sock)
                    answers.append(f"{status}" if status else "no answer")
                except TimeoutError:
                    answers.append("no answer while held")
        except OSError as exc:
            answers.append(f"{type(exc).__name__}")

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(AMPLIFY_CONNECTIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(hold + REQUEST_TIMEOUT)
    release.set()
    wire = sum(sent) // AMPLIFY_CONNECTIONS
    return {"outcome": f"{AMPLIFY_CONNECTIONS} x {wire // 1000} KB sent; host: {', '.join(answers)}"}


def _raise_descriptors(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))


def attack_idle(host: HostProcess, hold: float) -> dict[str, Any]:
    held: list[socket.socket] = []
    failed = 0
    try:
        for _ in range(IDLE_SOCKETS):
            try:
                held.append(connect(host.port, timeout=5.0))
            except OSError:
                failed += 1
        deadline = time.monotonic() + hold
        answered = closed = 0
        poller = select.poll()  # select() cannot take descriptors above 1023
        by_fd = {sock.fileno(): sock for sock in held}
        for fd in by_fd:
            poller.register(fd, select.POLLIN)
        while by_fd and time.monotonic() < deadline:
            for fd, _ in poller.poll(max(0.0, min(0.2, deadline - time.monotonic())) * 1e3):
                try:
                    data = by_fd[fd].recv(1 << 16)
                except OSError:
                    data = b""
                if data.startswith(b"HTTP/1.1 503"):
                    answered += 1
                elif not data:
                    closed += 1
                    poller.unregister(fd)
                    del by_fd[fd]
        return {
            "outcome": f"{len(held)} connected ({failed} failed); {answered} answered 503; "
            f"{closed} closed by the host, {len(held) - closed} open after {hold:g} s"
        }
    finally:
        for sock in held:
            sock.close()


def _array_body(wrapped: bool) -> bytes:
    if not wrapped:
        return b"[" + b"{}," * (ARRAY_BYTES // 3 - 1) + b"{}]"
    head, tail = b'{"message": {"kind": "ping", "args": {"pad": [', b"{}]}}}"
    count = (ARRAY_BYTES - len(head) - len(tail)) // 3
    return head + b"{}," * count + tail


def attack_json(host: HostProcess, hold: float, *, wrapped: bool) -> dict[str, Any]:
    agent_id = new_target(host.port)
    body = _array_body(wrapped)

    def round_() -> dict[str, Any]:
        started = time.perf_counter()
        status, answer = call(host.port, "POST", f"/agents/{agent_id}/messages", raw=body)
        took = time.perf_counter() - started
        error = answer.get("error", "") if isinstance(answer, dict) else str(answer or "")
        return {
            "paglet_ok": ping(host.port, agent_id),
            "outcome": f"{len(body) / MiB:.0f} MiB: {status or 'no answer'} in {took:.1f} s, {error[:50]!r}",
        }

    return repeat(hold, 5, round_)


def attack_blocked(host: HostProcess, hold: float) -> dict[str, Any]:
    agent_id = new_target(host.port)
    call(host.port, "POST", f"/agents/{agent_id}/messages", {"message": {"kind": "block"}, "oneway": True})
    dispose_timeout = max(5.0, 3 * hold)
    started = time.perf_counter()
    status, answer = call(host.port, "POST", f"/agents/{agent_id}/dispose", {}, timeout=dispose_timeout)
    took = time.perf_counter() - started
    send_status, send_answer = call(
        host.port, "POST", f"/agents/{agent_id}/messages", {"message": {"kind": "ping"}}, timeout=5.0
    )
    gone = call(host.port, "GET", f"/agents/{agent_id}", timeout=10.0)[0] == 404
    dispose = f"dispose {status} in {took:.1f} s" if status else f"dispose {answer}"
    send = f"send {send_status}" if send_status else f"send {send_answer}"
    return {"paglet_ok": gone, "outcome": f"{dispose}; {send}; paglet {'gone' if gone else 'still there'}"}


def attack_ids(host: HostProcess, hold: float) -> dict[str, Any]:
    def round_() -> dict[str, Any]:
        codes = [create_target(host.port, agent_id)[0] for agent_id in ODD_IDS]
        status, listing = call(host.port, "GET", "/agents?state=all")
        live = (
            {a.get("agent_id") for a in listing.get("agents", [])}
            if status == 200 and isinstance(listing, dict)
            else set()
        )
        for agent_id in live:  # clean up what got through, for the next round
            call(host.port, "POST", f"/agents/{agent_id}/dispose", {}, timeout=10.0)
        became = [repr(i if len(i) < 12 else i[:8] + "...") for i in ODD_IDS if i in live]
        return {
            "paglet_ok": not became and all(code == 400 for code in codes),
            "outcome": f"answers {statuses(codes)}; live: {', '.join(became) or 'none'}",
        }

    return repeat(hold, 500, round_)


ATTACKS: dict[str, Callable[[HostProcess, float], dict[str, Any]]] = {
    "malformed": attack_malformed,
    "amplify": attack_amplify,
    "idle": attack_idle,
    "json-array": lambda host, hold: attack_json(host, hold, wrapped=False),
    "json-arg": lambda host, hold: attack_json(host, hold, wrapped=True),
    "blocked": attack_blocked,
    "ids": attack_ids,
}


# --- running and reporting ----------------------------------------------------------------------------------


@contextmanager
def attacked_host() -> Iterator[HostProcess]:
    host = HostProcess()
    try:
        yield host
    finally:
        host.stop()


def corrected(samples: list[tuple[float, bool]]) -> list[float]:
    """Latencies with the probes a stall kept from starting: a probe that took ``d`` also stands for the
    ones due every ``PROBE_INTERVAL`` while it waited (they would have waited ``d - k * interval``), so
    a long pause weighs by its length, not as one sample ("coordinated omission")."""
    out: list[float] = []
    for took, _ in samples:
        out.append(took)
        missed = took - PROBE_INTERVAL
        while missed > 0:
            out.append(missed)
            missed -= PROBE_INTERVAL
    return out


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def run_attack(name: str, hold: float, budget: int) -> dict[str, Any]:
    row: dict[str, Any] = {"attack": name}
    with attacked_host() as host:
        host_serves(host.port)  # warm the host once, so the first probe of the attack is not its first
        probe = Probe(host.port)
        memory = MemorySampler(host.pid)
        try:
            row.update(ATTACKS[name](host, hold))
        except Exception as exc:  # the bench reports an attack it could not run instead of stopping
            row["outcome"] = f"attack failed: {type(exc).__name__}: {exc}"
        finally:
            samples = probe.finish()
            memory.finish()
        row["host_ok"] = host_serves(host.port)
    times = [t * 1e3 for t in corrected(samples)] or [math.nan]
    row.update(
        probes=len(samples),
        failed=sum(1 for _, ok in samples if not ok),
        p50_ms=statistics.median(times),
        p99_ms=percentile(times, 0.99),
        max_ms=max(times),
        rss_mib=memory.peak_rss / MiB,
        shm_mib=memory.peak_shm / MiB,
    )
    row["memory_ok"] = memory.peak_rss <= budget and memory.peak_shm <= budget
    row["goal_ok"] = row["p99_ms"] <= GOAL_P99_MS and row["failed"] == 0
    row.setdefault("paglet_ok", None)
    return row


def _mark(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "NO")


def print_table(rows: list[dict[str, Any]], budget_mib: int) -> None:
    print(
        f"\n{'attack':11} {'p50 ms':>7} {'p99 ms':>8} {'max ms':>8} {'failed':>8} {'goal':>4} {'paglet':>6}"
        f" {'host':>4} {'RSS +MiB':>8} {'shm MiB':>7} {'mem':>4}  outcome"
    )
    for r in rows:
        print(
            f"{r['attack']:11} {r['p50_ms']:7.1f} {r['p99_ms']:8.1f} {r['max_ms']:8.1f}"
            f" {r['failed']:>4}/{r['probes']:<3} {_mark(r['goal_ok']):>4} {_mark(r['paglet_ok']):>6}"
            f" {_mark(r['host_ok']):>4} {r['rss_mib']:8.0f} {r['shm_mib']:7.0f} {_mark(r['memory_ok']):>4}"
            f"  {r['outcome']}"
        )
    print(
        f"\n/health from 127.0.0.1 on a new connection every {PROBE_INTERVAL * 1e3:.0f} ms during each "
        f"attack; goal: p99 ≤ {GOAL_P99_MS:.0f} ms and no failed probe. paglet: the attacked paglet still "
        "answers (ids: every odd id refused, none live; blocked: disposed). mem: peak RSS growth and shared "
        f"memory ≤ {budget_mib} MiB."
    )


def machine() -> dict[str, Any]:
    return {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short holds (smoke run)")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
    parser.add_argument("--only", help="comma-separated attacks to run: " + ",".join(ATTACKS))
    parser.add_argument(
        "--hold", type=float, help="seconds each attack lasts at least (default 5; --quick 2)"
    )
    parser.add_argument("--budget-mib", type=int, default=512, help="memory budget for the 'mem' check")
    options = parser.parse_args()
    names = options.only.split(",") if options.only else list(ATTACKS)
    unknown = set(names) - set(ATTACKS)
    if unknown:
        parser.error(f"unknown attacks: {', '.join(sorted(unknown))}")
    hold = options.hold if options.hold is not None else (2.0 if options.quick else 5.0)
    _raise_descriptors(4 * IDLE_SOCKETS)  # inherited by the host: it must hold its slots plus ours
    rows = []
    for name in names:
        if not options.json:
            print(f"running {name} ...", file=sys.stderr, flush=True)
        rows.append(run_attack(name, hold, options.budget_mib * MiB))
    if options.json:
        print(json.dumps({"machine": machine(), "hold": hold, "results": rows}, indent=2))
    else:
        print_table(rows, options.budget_mib)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "host":
        host_main(sys.argv[2])
    elif len(sys.argv) > 2 and sys.argv[1] == "probe":
        probe_main(int(sys.argv[2]))
    else:
        main()
