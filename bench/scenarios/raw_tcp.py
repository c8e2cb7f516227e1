"""The physical floor: 64 MiB over loopback TCP between two processes (median of a few runs, ms)."""

from __future__ import annotations

import json
import os
import socket
import statistics
import sys
import time

SIZE = 64 << 20


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    pid = os.fork()
    if pid == 0:
        conn, _ = listener.accept()
        buf = bytearray(1 << 20)
        for _ in range(rounds):
            remaining = SIZE
            while remaining:
                remaining -= conn.recv_into(buf, min(len(buf), remaining))
            conn.sendall(b"k")
        os._exit(0)
    listener.close()
    data = os.urandom(SIZE)
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        sock.sendall(data)
        sock.recv(1)
        samples.append(time.perf_counter() - t0)
    sock.close()
    os.waitpid(pid, 0)
    print(json.dumps({"raw_tcp_64MiB_ms": statistics.median(samples) * 1e3}))


if __name__ == "__main__":
    main()
