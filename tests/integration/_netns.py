"""Run a command in a network namespace of its own (``unshare -n``), loopback up, nothing else.

The command also runs as pid 1 of a pid namespace of its own (``-p -f --kill-child``, with its own
``/proc``): when it ends, or the test kills ``unshare`` on a timeout, the kernel ends every process left
inside (hosts, their template processes and paglets), so nothing started there can outlive the test.

With ``dns_sentinel=True``, in the namespace's own mount namespace, ``/etc/resolv.conf`` names
``127.0.0.1`` as the only nameserver, so any DNS lookup made inside is a UDP datagram to 127.0.0.1:53
that a :class:`DnsSentinel` can catch: a test proves no lookup happened without patching anything, and
no lookup can ever leave the machine.
"""

from __future__ import annotations

import functools
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

RESOLV_CONF = "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"
#: New network, mount and pid namespaces; the command is pid 1 there and everything dies with it.
_UNSHARE = ("unshare", "-n", "-m", "-p", "-f", "--kill-child", "--mount-proc")


@functools.cache
def can_unshare() -> bool:
    """Whether this machine lets us create the namespaces (root or user namespaces needed)."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    try:
        probe = subprocess.run([*_UNSHARE, "ip", "link", "set", "lo", "up"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def netns_argv(
    argv: Sequence[str], *, dns_sentinel: bool = False, workdir: Path | None = None, hosts: str | None = None
) -> list[str]:
    """``argv`` wrapped to run in a fresh network namespace with only ``lo`` up; with ``hosts``, that
    text is the namespace's ``/etc/hosts`` (bind-mounted in its own mount namespace)."""
    if not dns_sentinel and hosts is None:
        return [*_UNSHARE, "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *argv]
    base = Path(workdir or tempfile.mkdtemp(prefix="paglets-netns-"))
    resolv = base / "resolv.conf"
    resolv.write_text(RESOLV_CONF)
    hosts_file = base / "hosts"
    hosts_file.write_text(hosts if hosts is not None else Path("/etc/hosts").read_text())
    script = (
        'mount --bind "$1" /etc/resolv.conf && mount --bind "$2" /etc/hosts && ip link set lo up '
        '&& shift 2 && exec "$@"'
    )
    return [*_UNSHARE, "sh", "-c", script, "sh", str(resolv), str(hosts_file), *argv]


def run_in_netns(
    argv: Sequence[str],
    *,
    dns_sentinel: bool = False,
    timeout: float = 120,
    hosts: str | None = None,
    **kwargs: Any,
) -> subprocess.CompletedProcess[str]:
    kwargs.setdefault("env", dict(os.environ))
    with tempfile.TemporaryDirectory(prefix="paglets-netns-") as tmp:
        return subprocess.run(
            netns_argv(argv, dns_sentinel=dns_sentinel, workdir=Path(tmp), hosts=hosts),
            capture_output=True,
            text=True,
            timeout=timeout,
            **kwargs,
        )


class DnsSentinel:
    """Inside a namespace made with ``dns_sentinel=True``: records the names of every DNS query sent."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 53))
        self._sock.settimeout(0.2)
        self.names: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="dns-sentinel", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, _ = self._sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.names.append(_query_name(data))

    def seen(self) -> list[str]:
        with self._lock:
            return list(self.names)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()


def _query_name(data: bytes) -> str:
    """The question name of a DNS query datagram (best effort)."""
    labels: list[str] = []
    i = 12
    while i < len(data) and data[i] != 0:
        n = data[i]
        labels.append(data[i + 1 : i + 1 + n].decode("ascii", "replace"))
        i += 1 + n
    return ".".join(labels)
