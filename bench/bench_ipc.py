"""How fast is the host <-> child IPC (zygote fork, mmap rings, eventfd doorbells, handoff segments)?

Measures, each case in its own subprocess (``--case NAME`` runs one in this process):

- ``startup``:    zygote fork -> the child's first frame received by the host's asyncio loop (median of
                  N), against ``multiprocessing`` spawn and fork of a fresh process that sends its first
                  message over a ``multiprocessing.Pipe``;
- ``roundtrip``:  a tiny frame host (uvloop) -> child -> host, median and p90, against a plain pipe
                  round trip to a forked child (blocking host, and asyncio host with ``add_reader``);
- ``throughput``: one-way small frames per second, host -> child and child -> host;
- ``handoff``:    64 MiB through a handoff segment both ways (until the peer has it mapped and said so),
                  against 64 MiB through a unix socket into a preallocated buffer;
- ``memory``:     PSS of an idle child (``/proc/<pid>/smaps_rollup``): zygote fork vs a freshly
                  spawned interpreter (zygote spawn mode) vs ``multiprocessing`` spawn.

Usage::

    .venv/bin/python bench/bench_ipc.py            # table
    .venv/bin/python bench/bench_ipc.py --json     # one JSON document on stdout
    .venv/bin/python bench/bench_ipc.py --quick    # fewer repetitions

Every comparison is measured in the same run on this machine. paglets 2.0.0 has no IPC layer of the same
shape to time on its own; its end-to-end numbers (create, send, oneway, memory) are compared in the same
run by ``bench_local.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import msgspec  # noqa: E402

from paglets.runtime._channel import Channel, HostChannel  # noqa: E402
from paglets.runtime._handoff import HandoffRef  # noqa: E402
from paglets.runtime._zygote import ChildProcess, Zygote  # noqa: E402
from paglets.runtime.child._channel import ChildChannel  # noqa: E402

# The zygote preloads this module for its children: host-only modules (asyncio, uvloop,
# multiprocessing) are imported lazily so the measured children stay as lean as real ones.
if TYPE_CHECKING:
    import asyncio
    from multiprocessing.connection import Connection

MiB = 1024 * 1024
HANDOFF_BYTES = 64 * MiB
CASE_TIMEOUT = 300.0
WAIT = 30.0
_ENC = msgspec.msgpack.Encoder()
_REF = msgspec.msgpack.Decoder(HandoffRef)

# --- child side (runs in zygote children) ----------------------------------------------------------------


def child_main(fds: list[int], config: bytes) -> int:
    """Bench child: says hello, then serves commands (first byte) until told to quit."""
    channel = ChildChannel.from_fds(fds[:5])
    extra = fds[5:]
    prepared: bytes = b""
    counting = 0  # one-way frames still expected after an "n" command
    channel.send(b"hello")
    while True:
        frames = channel.receive(WAIT)
        if not frames:
            return 3
        for frame in frames:
            if counting:
                counting -= 1
                if not counting:
                    channel.send(b"done")
                continue
            op = frame[:1]
            if op == b"e":
                channel.send(frame)
            elif op == b"n":  # count N one-way frames, then report
                counting = int(frame[1:])
            elif op == b"g":  # generate N frames towards the host
                count = int(frame[1:])
                payload = b"g" * 64
                for _ in range(count):
                    channel.send(payload)
                channel.send(b"done")
            elif op == b"h":  # map a segment, touch its ends, acknowledge
                ref = _REF.decode(frame[1:])
                with channel.open_handoff(ref) as segment:
                    _ = segment.view[0] + segment.view[-1]
                channel.send(b"ok")
            elif op == b"p":
                prepared = os.urandom(int(frame[1:]))
                channel.send(b"ok")
            elif op == b"s":
                ref = channel.send_large(prepared)
                channel.send(b"h" + _ENC.encode(ref))
            elif op == b"k":  # read N bytes from the extra socket into a preallocated buffer
                size = int(frame[1:])
                buffer = bytearray(size)
                view = memoryview(buffer)
                data = socket.socket(fileno=os.dup(extra[0]))
                got = 0
                while got < size:
                    got += data.recv_into(view[got:])
                data.close()
                channel.send(b"ok")
            elif op == b"q":
                channel.close()
                return 0


def pipe_echo(fds: list[int], config: bytes) -> int:
    """Plain pipe echo: read up to 64 bytes from fds[0], write them to fds[1], until EOF."""
    read_fd, write_fd = fds
    while data := os.read(read_fd, 64):
        os.write(write_fd, data)
    return 0


def _mp_child(conn: Connection) -> None:
    conn.send(b"hello")
    conn.recv()  # wait until told to leave (idle for the memory measurement)


# --- helpers --------------------------------------------------------------------------------------------


def _env() -> dict[str, str]:
    paths = [str(BENCH), str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def _zygote(mode: str = "fork") -> Zygote:
    return Zygote.start(env=_env(), preload=["bench_ipc"], mode=mode)  # type: ignore[arg-type]


class Link:
    """A host channel on the running loop with a queue of received frames."""

    def __init__(self, host: HostChannel) -> None:
        import asyncio

        self.host = host
        self.frames: asyncio.Queue[bytes] = asyncio.Queue()
        self.count = 0
        host.attach(asyncio.get_running_loop(), self._on_frames, lambda: None)

    def _on_frames(self, frames: list[bytes]) -> None:
        self.count += len(frames)
        for frame in frames:
            self.frames.put_nowait(frame)

    async def recv(self) -> bytes:
        import asyncio

        return await asyncio.wait_for(self.frames.get(), WAIT)


async def _start_child(zygote: Zygote, extra_fds: tuple[int, ...] = ()) -> tuple[Link, ChildProcess]:
    host, child_fds = Channel.create()
    link = Link(host)
    child = zygote.spawn("bench_ipc:child_main", b"", [*child_fds.fds, *extra_fds], title="bench-child")
    child_fds.close()
    assert await link.recv() == b"hello"
    return link, child


async def _stop_child(link: Link, child: ChildProcess) -> None:
    link.host.send(b"q")
    child.wait_exit(WAIT)
    link.host.close()


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1e3


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- cases ------------------------------------------------------------------------------------------------


def case_startup(quick: bool) -> dict[str, Any]:
    import multiprocessing

    import uvloop

    runs = 10 if quick else 40
    zygote = _zygote()

    async def zygote_runs() -> list[float]:
        times = []
        for _ in range(runs):
            host, child_fds = Channel.create()
            link = Link(host)
            start = time.perf_counter()
            child = zygote.spawn("bench_ipc:child_main", b"", child_fds.fds, title="bench-child")
            await link.recv()
            times.append(time.perf_counter() - start)
            child_fds.close()
            await _stop_child(link, child)
        return times

    try:
        ours = uvloop.run(zygote_runs())
    finally:
        zygote.close()
    result = {"zygote_fork_first_frame_ms": _median_ms(ours), "zygote_fork_p90_ms": _pct(ours, 0.9) * 1e3}
    for method in ("spawn", "fork"):
        ctx = multiprocessing.get_context(method)
        times = []
        for _ in range(max(3, runs // 4) if method == "spawn" else runs):
            parent, child_end = ctx.Pipe()
            start = time.perf_counter()
            process = ctx.Process(target=_mp_child, args=(child_end,))
            process.start()
            parent.recv()
            times.append(time.perf_counter() - start)
            parent.send(b"bye")
            process.join(WAIT)
            parent.close()
            child_end.close()
        result[f"mp_{method}_first_message_ms"] = _median_ms(times)
    return result


def case_roundtrip(quick: bool) -> dict[str, Any]:
    import asyncio

    import uvloop

    count = 2000 if quick else 10000
    zygote = _zygote()
    try:

        async def ring() -> list[float]:
            loop = asyncio.get_running_loop()
            host, child_fds = Channel.create()
            waiter: asyncio.Future[None] | None = None

            def on_frames(frames: list[bytes]) -> None:
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)

            host.attach(loop, on_frames, lambda: None)
            waiter = loop.create_future()
            child = zygote.spawn("bench_ipc:child_main", b"", child_fds.fds, title="bench-child")
            child_fds.close()
            await asyncio.wait_for(waiter, WAIT)  # hello
            samples = []
            send = host.send
            for i in range(count + 200):
                waiter = loop.create_future()
                start = time.perf_counter()
                send(b"e%d" % i)
                await waiter
                if i >= 200:
                    samples.append(time.perf_counter() - start)
            send(b"q")
            child.wait_exit(WAIT)
            host.close()
            return samples

        ours = uvloop.run(ring())
        ours_asyncio = asyncio.run(ring())

        to_child_r, to_child_w = os.pipe()
        to_host_r, to_host_w = os.pipe()
        child = zygote.spawn("bench_ipc:pipe_echo", b"", [to_child_r, to_host_w], title="bench-pipe")
        os.close(to_child_r)
        os.close(to_host_w)
        blocking = []
        for i in range(count + 200):
            start = time.perf_counter()
            os.write(to_child_w, b"x%d" % i)
            os.read(to_host_r, 64)
            if i >= 200:
                blocking.append(time.perf_counter() - start)

        async def pipe_async() -> list[float]:
            loop = asyncio.get_running_loop()
            samples: list[float] = []
            waiter: asyncio.Future[None] | None = None

            def readable() -> None:
                os.read(to_host_r, 64)
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)

            loop.add_reader(to_host_r, readable)
            for i in range(count + 200):
                waiter = loop.create_future()
                start = time.perf_counter()
                os.write(to_child_w, b"x%d" % i)
                await waiter
                if i >= 200:
                    samples.append(time.perf_counter() - start)
            loop.remove_reader(to_host_r)
            return samples

        piped = uvloop.run(pipe_async())
        os.close(to_child_w)
        child.wait_exit(WAIT)
        os.close(to_host_r)
    finally:
        zygote.close()
    return {
        "ring_uvloop_median_us": statistics.median(ours) * 1e6,
        "ring_uvloop_p90_us": _pct(ours, 0.9) * 1e6,
        "ring_asyncio_median_us": statistics.median(ours_asyncio) * 1e6,
        "pipe_blocking_median_us": statistics.median(blocking) * 1e6,
        "pipe_uvloop_median_us": statistics.median(piped) * 1e6,
        "pipe_uvloop_p90_us": _pct(piped, 0.9) * 1e6,
    }


def case_throughput(quick: bool) -> dict[str, Any]:
    import asyncio

    import uvloop

    count = 50_000 if quick else 200_000
    zygote = _zygote()

    async def run() -> dict[str, Any]:
        link, child = await _start_child(zygote)
        frame = b"m" * 64
        link.host.send(b"n%d" % count)
        start = time.perf_counter()
        send = link.host.send
        for i in range(count):
            send(frame)
            if i % 4096 == 0:
                await asyncio.sleep(0)  # let the loop flush queued frames, as a real host would
        assert await link.recv() == b"done"
        to_child = count / (time.perf_counter() - start)
        full = link.host.statistics().ring_full_events
        start = time.perf_counter()
        before = link.count
        link.host.send(b"g%d" % count)
        while link.count - before < count + 1:
            await link.frames.get()
        to_host = count / (time.perf_counter() - start)
        while not link.frames.empty():
            link.frames.get_nowait()
        await _stop_child(link, child)
        return {
            "host_to_child_frames_per_s": to_child,
            "child_to_host_frames_per_s": to_host,
            "ring_full": full,
        }

    try:
        return uvloop.run(run())
    finally:
        zygote.close()


def case_handoff(quick: bool) -> dict[str, Any]:
    import asyncio

    runs = 3 if quick else 7
    payload = os.urandom(HANDOFF_BYTES)
    zygote = _zygote()

    async def run() -> dict[str, Any]:
        link, child = await _start_child(zygote)
        to_child, to_host = [], []
        link.host.send(b"p%d" % HANDOFF_BYTES)
        assert await link.recv() == b"ok"
        for _ in range(runs):
            start = time.perf_counter()
            ref = link.host.send_large(payload)
            link.host.send(b"h" + _ENC.encode(ref))
            assert await link.recv() == b"ok"
            to_child.append(time.perf_counter() - start)
            start = time.perf_counter()
            link.host.send(b"s")
            reply = await link.recv()
            with link.host.open_handoff(_REF.decode(reply[1:])) as segment:
                _ = segment.view[0] + segment.view[-1]
            to_host.append(time.perf_counter() - start)
        await _stop_child(link, child)
        # Baseline: the same bytes through a unix stream socket into a preallocated child buffer.
        ours_end, child_end = socket.socketpair()
        link, child = await _start_child(zygote, (child_end.fileno(),))
        child_end.close()
        socket_times = []
        for _ in range(runs):
            start = time.perf_counter()
            link.host.send(b"k%d" % HANDOFF_BYTES)
            await asyncio.get_running_loop().sock_sendall(ours_end, payload)
            assert await link.recv() == b"ok"
            socket_times.append(time.perf_counter() - start)
        ours_end.close()
        await _stop_child(link, child)
        mb = HANDOFF_BYTES / 1e6
        return {
            "handoff_to_child_ms": _median_ms(to_child),
            "handoff_to_host_ms": _median_ms(to_host),
            "handoff_to_child_mb_s": mb / statistics.median(to_child),
            "handoff_to_host_mb_s": mb / statistics.median(to_host),
            "unix_socket_ms": _median_ms(socket_times),
        }

    try:
        return asyncio.run(run())
    finally:
        zygote.close()


def _pss_kib(pid: int) -> tuple[int, int]:
    values = {}
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        for line in rollup:
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                values[parts[0].rstrip(":")] = int(parts[1])
    return values["Pss"], values.get("Private_Clean", 0) + values.get("Private_Dirty", 0)


def case_memory(quick: bool) -> dict[str, Any]:
    import multiprocessing

    import uvloop

    children = 4 if quick else 16
    result: dict[str, Any] = {"children": children}
    for mode in ("fork", "spawn"):
        zygote = _zygote(mode)

        async def run(zygote: Zygote = zygote) -> list[tuple[int, int]]:
            started = [await _start_child(zygote) for _ in range(children)]
            for link, _child in started:  # every child has served a few frames, then idles
                for i in range(10):
                    link.host.send(b"e%d" % i)
                    await link.recv()
            samples = [_pss_kib(child.pid) for _link, child in started]
            for link, child in started:
                await _stop_child(link, child)
            return samples

        try:
            samples = uvloop.run(run())
        finally:
            zygote.close()
        result[f"zygote_{mode}_pss_mib"] = statistics.median(s[0] for s in samples) / 1024
        result[f"zygote_{mode}_private_mib"] = statistics.median(s[1] for s in samples) / 1024
    ctx = multiprocessing.get_context("spawn")
    parent, child_end = ctx.Pipe()
    process = ctx.Process(target=_mp_child, args=(child_end,))
    process.start()
    parent.recv()
    assert process.pid is not None
    pss, private = _pss_kib(process.pid)
    parent.send(b"bye")
    process.join(WAIT)
    parent.close()
    child_end.close()
    result["mp_spawn_pss_mib"] = pss / 1024
    result["mp_spawn_private_mib"] = private / 1024
    return result


CASES: dict[str, Callable[[bool], dict[str, Any]]] = {
    "startup": case_startup,
    "roundtrip": case_roundtrip,
    "throughput": case_throughput,
    "handoff": case_handoff,
    "memory": case_memory,
}


# --- driver -----------------------------------------------------------------------------------------------


def _run_case(name: str, quick: bool) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__)), "--case", name, *(["--quick"] if quick else [])]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=CASE_TIMEOUT, env=_env())
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise RuntimeError(f"case {name} failed with exit code {done.returncode}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _table(results: dict[str, dict[str, Any]]) -> str:
    s, r, t, h, m = (results.get(k, {}) for k in ("startup", "roundtrip", "throughput", "handoff", "memory"))

    def num(values: dict[str, Any], key: str, fmt: str) -> str:
        value = values.get(key)
        return "?" if value is None else format(value, fmt)

    rows: list[tuple[str, str, str]] = []

    def row(label: str, ours: float | None, fmt: str, compare: str) -> None:
        if ours is None:
            return
        rows.append((label, format(ours, fmt), compare))

    row(
        "create -> first frame (ms, median)",
        s.get("zygote_fork_first_frame_ms"),
        ".2f",
        f"mp spawn {num(s, 'mp_spawn_first_message_ms', '.1f')}, "
        f"mp fork {num(s, 'mp_fork_first_message_ms', '.2f')}",
    )
    row(
        "round trip uvloop (us, median)",
        r.get("ring_uvloop_median_us"),
        ".1f",
        f"pipe blocking {num(r, 'pipe_blocking_median_us', '.1f')}, "
        f"pipe uvloop {num(r, 'pipe_uvloop_median_us', '.1f')}",
    )
    row(
        "round trip uvloop (us, p90)",
        r.get("ring_uvloop_p90_us"),
        ".1f",
        f"pipe uvloop p90 {num(r, 'pipe_uvloop_p90_us', '.1f')}",
    )
    row("round trip asyncio (us, median)", r.get("ring_asyncio_median_us"), ".1f", "-")
    row(
        "one-way host->child (frames/s)",
        t.get("host_to_child_frames_per_s"),
        ",.0f",
        f"target >= 20,000; ring-full events {num(t, 'ring_full', 'd')}",
    )
    row("one-way child->host (frames/s)", t.get("child_to_host_frames_per_s"), ",.0f", "-")
    row(
        "64 MiB handoff host->child (ms)",
        h.get("handoff_to_child_ms"),
        ".1f",
        f"{num(h, 'handoff_to_child_mb_s', ',.0f')} MB/s; unix socket {num(h, 'unix_socket_ms', '.1f')} ms",
    )
    row(
        "64 MiB handoff child->host (ms)",
        h.get("handoff_to_host_ms"),
        ".1f",
        f"{num(h, 'handoff_to_host_mb_s', ',.0f')} MB/s",
    )
    for kind in ("pss", "private"):
        row(
            f"idle child {kind.upper() if kind == 'pss' else kind}, zygote fork (MiB)",
            m.get(f"zygote_fork_{kind}_mib"),
            ".2f",
            f"spawned interpreter {num(m, f'zygote_spawn_{kind}_mib', '.2f')}, "
            f"mp spawn {num(m, f'mp_spawn_{kind}_mib', '.2f')} ({num(m, 'children', 'd')} children)",
        )
    headers = ("measure", "ours", "same-run comparison")
    widths = [max(len(str(x[i])) for x in [headers, *rows]) for i in range(len(headers))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(x, widths, strict=True)) for x in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--case", choices=sorted(CASES))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.case:
        print(json.dumps(CASES[args.case](args.quick)))
        return
    results = {name: _run_case(name, args.quick) for name in CASES}
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(_table(results))


if __name__ == "__main__":
    main()
