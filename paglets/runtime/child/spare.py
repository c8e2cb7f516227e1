"""A spare process of the portable backend (``python -m paglets.runtime.child.spare``).

It reads its ``SpareBoot`` from stdin, imports the runtime and the host's preload modules, connects to
the host (``paglets.runtime._spare_protocol``) and waits. ``SparePreload`` imports more; ``SpareSpawn``
makes it the paglet process: it maps the channel's ring file, builds the child side of the channel from
its connections and runs ``paglets.runtime.child.main.run_paglet``. EOF on the control connection
before that means the host stopped or died: the spare leaves, and removes the host's runtime directory
if the host is gone. Nothing here forks.
"""

from __future__ import annotations

import argparse
import gc
import os
import signal
import socket
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Final, NoReturn

from paglets.runtime._preload import SPARE_MODULES, preload_modules
from paglets.runtime._spare_protocol import (
    BOOT_DECODER,
    FRAME_HEADER,
    HELLO,
    MAX_SPARE_MESSAGE,
    ROLE_CONTROL,
    ROLE_FRAMES,
    ROLE_LINK,
    ROLE_SERVICE,
    ROLE_SPACE,
    ROLES,
    SpareBoot,
    SparePreload,
    SpareSpawn,
    decode_spare_message,
)

#: Seconds a spare waits for its boot message and for each connection to the host.
BOOT_TIMEOUT: Final = 30.0
_EXIT_ERROR: Final = 1


def _read_exact(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        part = sock.recv(size - len(data))
        if not part:
            raise EOFError("the host closed the control connection")
        data += part
    return bytes(data)


def _connect(boot: SpareBoot) -> dict[int, socket.socket]:
    sockets: dict[int, socket.socket] = {}
    try:
        for role in ROLES:
            sock = socket.create_connection((boot.address, boot.port), timeout=BOOT_TIMEOUT)
            sock.sendall(HELLO.pack(boot.token, boot.spare_id, role))
            sockets[role] = sock
    except BaseException:
        for sock in sockets.values():
            sock.close()
        raise
    sockets[ROLE_CONTROL].settimeout(None)
    return sockets


def _wait_for_spawn(control: socket.socket) -> SpareSpawn:
    while True:
        (length,) = FRAME_HEADER.unpack(_read_exact(control, FRAME_HEADER.size))
        if length > MAX_SPARE_MESSAGE:
            raise ValueError(f"control message of {length} bytes")
        message = decode_spare_message(_read_exact(control, length))
        if isinstance(message, SparePreload):
            preload_modules(message.modules)
            continue
        return message


def _become_paglet(boot: SpareBoot, sockets: dict[int, socket.socket], spawn: SpareSpawn) -> int:
    from paglets.runtime._channel_layout import Ends
    from paglets.runtime._portable_ipc import (
        FileSegments,
        SocketBell,
        StreamLink,
        open_ring_file,
        tune,
    )
    from paglets.runtime._procutil import set_process_title
    from paglets.runtime.child._channel import ChildChannel
    from paglets.runtime.child.main import run_paglet

    set_process_title(spawn.title, use_proc=False)
    sys.argv = [spawn.title]
    if spawn.sys_path:
        sys.path[:] = spawn.sys_path
    directory = Path(spawn.channel_dir)
    mapping = open_ring_file(directory)
    ends = Ends(mapping, len(mapping) // 2, 0)
    wake_r, wake_w = socket.socketpair()
    frames = SocketBell(tune(sockets[ROLE_FRAMES]))
    channel = ChildChannel(
        ends,
        frames,
        frames,
        SocketBell(tune(sockets[ROLE_SPACE])),
        StreamLink(tune(sockets[ROLE_LINK]), directory, send_prefix="c", recv_prefix="h"),
        FileSegments(directory),
        wake=SocketBell(tune(wake_r), tune(wake_w)),
    )
    control = sockets[ROLE_CONTROL]
    try:
        return run_paglet(channel, SocketBell(tune(sockets[ROLE_SERVICE])), spawn.config)
    finally:
        control.close()


def _cleanup(boot: SpareBoot) -> None:
    from paglets.runtime._portable_ipc import remove_if_orphaned

    try:
        remove_if_orphaned(Path(boot.host_dir), boot.host_pid)
    except Exception:
        pass


def serve(boot: SpareBoot) -> int:
    sys.path[:] = [*boot.sys_path, *(entry for entry in sys.path if entry not in boot.sys_path)]
    preload_modules([*SPARE_MODULES, *boot.preload])
    gc.collect()
    try:
        sockets = _connect(boot)
    except OSError:
        _cleanup(boot)
        return 0  # the host is gone before this spare was ready
    try:
        spawn = _wait_for_spawn(sockets[ROLE_CONTROL])
    except (EOFError, OSError):
        for sock in sockets.values():
            sock.close()
        _cleanup(boot)
        return 0
    code = _become_paglet(boot, sockets, spawn)
    _cleanup(boot)
    return code


def main(argv: Sequence[str] | None = None) -> NoReturn:
    parser = argparse.ArgumentParser(prog="paglets.runtime.child.spare", add_help=False)
    parser.add_argument("--title-room", default="")
    parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the host's business
    code = _EXIT_ERROR
    try:
        boot = BOOT_DECODER.decode(sys.stdin.buffer.read()[FRAME_HEADER.size :])
        code = serve(boot)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else _EXIT_ERROR
    except BaseException:
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:
                pass
    os._exit(code)


if __name__ == "__main__":
    main()
