"""How fast is our HTTP layer next to the standard library's, and how close to raw loopback TCP?

Question: small JSON round trip latency, requests/s with keep-alive (1 and 16 concurrent client
processes) and 64 MiB streamed upload throughput of ``paglets.http`` (uvloop + h11 server, keep-alive
``HttpClient``), side by side with the standard library twice: ``http.server.ThreadingHTTPServer``
speaking HTTP/1.0 (one thread and one connection per request, as paglets 2.0 serves) driven by
``urllib`` ("stdlib 1.0"), and the same server speaking HTTP/1.1 keep-alive (Nagle off) driven by one
persistent ``http.client.HTTPConnection`` per client ("stdlib keep-alive"); raw loopback TCP is the
physical floor — all in the same run. Every server and every client runs in its own process (the GIL
would otherwise make the comparison about scheduling). All servers run at once and the rounds alternate
the order, so a burst of load from elsewhere on the machine hits every stack alike; the table shows
medians of the rounds.

Run: ``.venv/bin/python bench/bench_http.py`` (about a minute; ``--quick`` for a smoke run,
``--json out.json`` to keep the numbers). Targets: round trip ≥ 2x faster than stdlib 1.0 (what
paglets 2.0 pays), ≥ 3x its requests/s with 16 clients, upload ≥ 50% of raw TCP; the keep-alive column
shows how much of that comes from keep-alive alone.

Caveats: the raw TCP floors reuse one connection like our keep-alive client (a fresh connection pays
TCP receive-buffer autotuning again); the stdlib server gets a listen backlog of 128 (its default of 5
resets connections under 16 clients).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MiB = 1024 * 1024
UPLOAD_BYTES = 64 * MiB
UPLOAD_PIECE = 1 * MiB
PAYLOAD = {"message": {"kind": "ping", "args": {"n": 1, "text": "hello"}}, "oneway": False}
KINDS = ("ours", "stdlib", "stdlib_ka", "raw")
#: Seconds any client process may take.
CLIENT_TIMEOUT = 120.0


# --- servers (each in its own process: ``bench_http.py serve KIND``; they stop when stdin closes) ----------


def serve_ours() -> None:
    import asyncio

    from paglets.http import HttpServer, Request, Response, Router, json_response, new_event_loop

    router = Router()

    async def echo(request: Request) -> Response:
        return json_response({"result": await request.json()})

    async def upload(request: Request) -> Response:
        size = 0
        async for piece in request.stream():
            size += len(piece)
        return json_response({"size": size})

    router.post("/echo", echo)
    router.post("/upload", upload)

    async def run_server() -> None:
        server = HttpServer(router)
        port = await server.start(["127.0.0.1"], 0)
        print(port, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await server.close(deadline=1.0)

    loop = new_event_loop()
    try:
        loop.run_until_complete(run_server())
    finally:
        loop.close()


def serve_stdlib(keep_alive: bool = False) -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"
        disable_nagle_algorithm = keep_alive  # without it every keep-alive answer waits ~40 ms

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if self.path == "/upload":
                left = length
                while left:
                    left -= len(self.rfile.read(min(left, UPLOAD_PIECE)))
                body = json.dumps({"size": length}).encode()
            else:
                body = json.dumps({"result": json.loads(self.rfile.read(length) or b"{}")}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 128  # the default backlog of 5 resets connections with 16 clients

    server = Server(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sys.stdin.read()
    server.shutdown()
    server.server_close()


def serve_raw() -> None:
    """Ping-pong (first byte b"p": echo what arrives) or sink (b"u": 8 bytes back per 64 MiB received)."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    print(listener.getsockname()[1], flush=True)

    def handle(conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with conn:
            kind = conn.recv(1)
            if kind == b"p":
                while data := conn.recv(65536):
                    conn.sendall(data)
                return
            view = memoryview(bytearray(UPLOAD_PIECE))
            while True:
                left = UPLOAD_BYTES
                while left:
                    received = conn.recv_into(view[: min(left, UPLOAD_PIECE)])
                    if not received:
                        return
                    left -= received
                conn.sendall(UPLOAD_BYTES.to_bytes(8, "big"))

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    sys.stdin.read()
    listener.close()


# --- clients (each in its own process: ``bench_http.py client KIND MODE PORT ...``) -----------------------


def _caller(kind: str, port: int) -> Any:
    """A function doing one small JSON round trip with the client of ``kind``."""
    url = f"http://127.0.0.1:{port}/echo"
    body = json.dumps(PAYLOAD).encode()
    if kind == "ours":
        from paglets.http import HttpClient

        client = HttpClient()
        return lambda: client.request_json("POST", url, PAYLOAD)
    if kind == "stdlib_ka":
        import http.client

        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        headers = {"Content-Type": "application/json"}

        def call_ka() -> Any:
            connection.request("POST", "/echo", body=body, headers=headers)
            response = connection.getresponse()
            return json.loads(response.read())

        return call_ka
    if kind == "stdlib":
        import urllib.request

        def call() -> Any:
            request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.loads(response.read())

        return call
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(b"p")
    message = body[:64].ljust(64)

    def ping() -> None:
        sock.sendall(message)
        got = 0
        while got < len(message):
            got += len(sock.recv(65536))

    return ping


def client_round_trips(kind: str, port: int, count: int) -> list[float]:
    """Latency of ``count`` sequential small JSON round trips (seconds each), after a warm-up."""
    call = _caller(kind, port)
    for _ in range(min(200, count)):
        call()
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return samples


def client_throughput(kind: str, port: int, start_at: float, seconds: float) -> int:
    """Round trips completed in [start_at, start_at + seconds) (wall clock, shared by the processes)."""
    call = _caller(kind, port)
    call()
    pause = threading.Event()  # never set: ``wait`` is the polling interval until the common start
    while time.time() < start_at:
        pause.wait(0.001)
    done = 0
    end = start_at + seconds
    while time.time() < end:
        call()
        done += 1
    return done


def client_upload(kind: str, port: int, runs: int) -> list[float]:
    """Seconds per 64 MiB upload, ``runs`` times after one warm-up (pieces of one reused 1 MiB buffer)."""
    block = os.urandom(UPLOAD_PIECE)
    pieces = UPLOAD_BYTES // UPLOAD_PIECE
    times = []
    url = f"http://127.0.0.1:{port}/upload"
    if kind == "ours":
        from paglets.http import HttpClient

        client = HttpClient(timeout=60)
        for _ in range(runs + 1):
            start = time.perf_counter()
            response = client.request(
                "POST", url, body=(block for _ in range(pieces)), content_type="application/octet-stream"
            )
            response.raise_for_status()
            times.append(time.perf_counter() - start)
            assert response.json()["size"] == UPLOAD_BYTES
    elif kind == "stdlib_ka":
        import http.client

        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for _ in range(runs + 1):
            start = time.perf_counter()
            connection.request(
                "POST",
                "/upload",
                body=(block for _ in range(pieces)),
                headers={"Content-Length": str(UPLOAD_BYTES), "Content-Type": "application/octet-stream"},
            )
            result = json.loads(connection.getresponse().read())
            times.append(time.perf_counter() - start)
            assert result["size"] == UPLOAD_BYTES
        connection.close()
    elif kind == "stdlib":
        import urllib.request

        for _ in range(runs + 1):
            start = time.perf_counter()
            request = urllib.request.Request(
                url,
                data=(block for _ in range(pieces)),
                headers={"Content-Length": str(UPLOAD_BYTES), "Content-Type": "application/octet-stream"},
            )
            with urllib.request.urlopen(request, timeout=60) as response:
                result = json.loads(response.read())
            times.append(time.perf_counter() - start)
            assert result["size"] == UPLOAD_BYTES
    else:
        view = memoryview(block)
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(b"u")
        for _ in range(runs + 1):
            start = time.perf_counter()
            for _ in range(pieces):
                sock.sendall(view)
            answer = sock.recv(8)
            times.append(time.perf_counter() - start)
            assert int.from_bytes(answer, "big") == UPLOAD_BYTES
        sock.close()
    return times[1:]


def client_main(argv: list[str]) -> None:
    kind, mode, port = argv[0], argv[1], int(argv[2])
    if mode == "rt":
        print(json.dumps(client_round_trips(kind, port, int(argv[3]))))
    elif mode == "rps":
        print(json.dumps(client_throughput(kind, port, float(argv[3]), float(argv[4]))))
    else:
        print(json.dumps(client_upload(kind, port, int(argv[3]))))


# --- orchestration -----------------------------------------------------------------------------------------


class Server:
    """A server process; its first stdout line is its port."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "serve", kind],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{kind} server did not start")
        self.port = int(line)

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def run_client(args: list[str]) -> Any:
    out = subprocess.run(
        [sys.executable, __file__, "client", *args],
        capture_output=True,
        text=True,
        timeout=CLIENT_TIMEOUT,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_clients(kind: str, port: int, processes: int, seconds: float) -> float:
    """Requests/s of ``processes`` client processes hammering one server for ``seconds``."""
    start_at = time.time() + 1.0 + 0.1 * processes  # every process imported and warmed up by then
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "client", kind, "rps", str(port), repr(start_at), repr(seconds)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    total = 0
    for proc in procs:
        out, _ = proc.communicate(timeout=CLIENT_TIMEOUT)
        total += json.loads(out.strip().splitlines()[-1])
    return total / seconds


def measure(options: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Every measure for every stack, interleaved over rounds; medians of the rounds."""
    rounds = 1 if options.quick else 3
    rt_count = 300 if options.quick else 1500
    window = 0.5 if options.quick else 2.0
    runs = 1 if options.quick else 3
    servers = {kind: Server(kind) for kind in KINDS}
    samples: dict[str, dict[str, list[float]]] = {kind: {} for kind in KINDS}

    def add(kind: str, key: str, value: float) -> None:
        samples[kind].setdefault(key, []).append(value)

    try:
        for index in range(rounds):
            order = KINDS if index % 2 == 0 else KINDS[::-1]
            for kind in order:
                count = rt_count if kind != "stdlib" else rt_count // 3
                latencies = run_client([kind, "rt", str(servers[kind].port), str(count)])
                add(kind, "rt_us", statistics.median(latencies) * 1e6)
            for clients in (1, 16):
                for kind in order:
                    if kind != "raw":
                        add(kind, f"rps_{clients}", run_clients(kind, servers[kind].port, clients, window))
            for kind in order:
                uploads = run_client([kind, "upload", str(servers[kind].port), str(runs)])
                add(kind, "upload_ms", statistics.median(uploads) * 1e3)
    finally:
        for server in servers.values():
            server.stop()
    results = {
        kind: {key: statistics.median(values) for key, values in rows.items()}
        for kind, rows in samples.items()
    }
    for row in results.values():
        row["upload_mbs"] = UPLOAD_BYTES / (row["upload_ms"] / 1e3) / 1e6
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run")
    parser.add_argument("--json", type=Path, help="write the results here")
    options = parser.parse_args()
    results = measure(options)

    ours, std, ka, raw = results["ours"], results["stdlib"], results["stdlib_ka"], results["raw"]
    rows = [
        ("small JSON round trip, median (µs)", "rt_us", True, raw["rt_us"]),
        ("requests/s, 1 client", "rps_1", False, None),
        ("requests/s, 16 client processes", "rps_16", False, None),
        ("64 MiB upload (MB/s)", "upload_mbs", False, raw["upload_mbs"]),
    ]
    print(
        f"\n{'measure':36} {'ours':>9} {'stdlib 1.0':>10} {'ratio':>7} {'stdlib k-a':>10} {'ratio':>7}"
        f" {'raw TCP':>9}"
    )
    for name, key, lower_is_better, floor in rows:
        a, b, c = ours[key], std[key], ka[key]
        ratio_b = b / a if lower_is_better else a / b
        ratio_c = c / a if lower_is_better else a / c
        floor_text = f"{floor:9.1f}" if floor is not None else f"{'':>9}"
        print(f"{name:36} {a:9.1f} {b:10.1f} {ratio_b:6.2f}x {c:10.1f} {ratio_c:6.2f}x {floor_text}")
    share = ours["upload_mbs"] / raw["upload_mbs"]
    print(
        f"\nupload: ours {ours['upload_ms']:.1f} ms, raw TCP {raw['upload_ms']:.1f} ms per 64 MiB "
        f"→ {share:.0%} of raw loopback TCP (target ≥ 50%)"
    )
    print(
        "stdlib 1.0 = ThreadingHTTPServer (HTTP/1.0, connection per request) + urllib; stdlib k-a = the same "
        "server on HTTP/1.1 keep-alive + one http.client connection per client; ratio = ours vs that column "
        "(higher is better; round trip: their time / ours). Medians of interleaved rounds."
    )
    if options.json:
        options.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "serve":
        servers = {
            "ours": serve_ours,
            "stdlib": serve_stdlib,
            "stdlib_ka": lambda: serve_stdlib(keep_alive=True),
            "raw": serve_raw,
        }
        servers[sys.argv[2]]()
    elif len(sys.argv) > 2 and sys.argv[1] == "client":
        client_main(sys.argv[2:])
    else:
        main()
