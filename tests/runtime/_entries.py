"""Child entry points for the runtime tests; they run inside zygote children.

The zygote imports this module by name (``_entries:echo``), so the tests start the zygote with this
directory on ``PYTHONPATH``. ``echo`` speaks a tiny test protocol over a ``ChildChannel``: the first
byte of each frame from the host is a command.

    e...        echo the frame back
    b<n>        send n frames ("B<i>" padded to 1000 bytes) as fast as possible, then "done"
    h<ref>      open the handoff segment (msgpack HandoffRef), reply "H" + sha256 + a ref to a copy
                of the same payload sent back through a new segment
    x<code>     os._exit(code) at once
    r<code>     return code from the entry
    s           segfault
    i           send SIGINT to itself, reply "i" + the SIGINT disposition (a number)
    t           reply "t" + /proc/self/cmdline + b"|" + /proc/self/comm
    f           reply "f" + the sorted open fd numbers (comma separated)
    m           reply "m" + RssAnon in KiB
    c           reply "c" + the child channel's ring-full count
    q           close the channel and return 0
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import select
import signal
import sys

import msgspec

from paglets.runtime._channel_layout import ChannelClosedError
from paglets.runtime._handoff import HandoffRef
from paglets.runtime.child._channel import ChildChannel

RECEIVE_TIMEOUT = 60.0
_REF = msgspec.msgpack.Decoder(HandoffRef)
_ENC = msgspec.msgpack.Encoder()


def _rss_anon_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return -1


def _handle(channel: ChildChannel, frame: bytes) -> int | None:
    op = frame[:1]
    if op == b"e":
        channel.send(frame)
    elif op == b"b":
        count = int(frame[1:])
        for i in range(count):
            channel.send(b"B%d" % i + b"." * 990)
        channel.send(b"done")
    elif op == b"h":
        ref = _REF.decode(frame[1:])
        with channel.open_handoff(ref.segment_id, ref.length) as segment:
            digest = hashlib.sha256(segment.view).hexdigest().encode()
            back = channel.send_large(segment.view)
        channel.send(b"H" + digest + _ENC.encode(back))
    elif op == b"x":
        os._exit(int(frame[1:]))
    elif op == b"r":
        return int(frame[1:])
    elif op == b"s":
        ctypes.string_at(0)
    elif op == b"i":
        os.kill(os.getpid(), signal.SIGINT)
        channel.send(b"i%d" % int(signal.getsignal(signal.SIGINT)))  # type: ignore[arg-type]
    elif op == b"t":
        with open("/proc/self/cmdline", "rb") as cmdline, open("/proc/self/comm", "rb") as comm:
            channel.send(b"t" + cmdline.read() + b"|" + comm.read())
    elif op == b"f":
        fds = sorted(int(name) for name in os.listdir("/proc/self/fd"))
        channel.send(b"f" + ",".join(map(str, fds)).encode())
    elif op == b"m":
        channel.send(b"m%d" % _rss_anon_kib())
    elif op == b"c":
        channel.send(b"c%d" % channel.statistics().ring_full_events)
    elif op == b"q":
        channel.close()
        return 0
    return None


def echo(fds: list[int], config: bytes) -> int:
    channel = ChildChannel.from_fds(fds)
    channel.send(b"ready:%d:" % os.getpid() + config)
    while True:
        try:
            frames = channel.receive(RECEIVE_TIMEOUT)
        except ChannelClosedError:
            return 0
        if not frames:
            return 3
        for frame in frames:
            code = _handle(channel, frame)
            if code is not None:
                return code


def sleeper(fds: list[int], config: bytes) -> int:
    """Block until killed (or a minute passes)."""
    select.select([], [], [], RECEIVE_TIMEOUT)
    return 0


def returns(fds: list[int], config: bytes) -> int:
    """Exit with the code given as config."""
    return int(config)


def raises(fds: list[int], config: bytes) -> int:
    raise RuntimeError("entry failed on purpose")


def host_main() -> None:
    """A "host" process for the orphan test: zygote + 3 sleeping children, prints their pids, waits."""
    from paglets.runtime._zygote import Zygote

    mode = sys.argv[1] if len(sys.argv) > 1 else "fork"
    zygote = Zygote.start(mode=mode)  # type: ignore[arg-type]
    children = [zygote.spawn("_entries:sleeper", b"", [], title=f"orphan-test-{i}") for i in range(3)]
    print(json.dumps({"zygote": zygote.pid, "children": [c.pid for c in children]}), flush=True)
    sys.stdin.read()  # until killed


if __name__ == "__main__":
    host_main()
