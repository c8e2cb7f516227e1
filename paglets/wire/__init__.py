"""Sans-IO protocol layer: message Structs, IPC frames, the movement envelope, JSON helpers, limits.

Nothing in this package performs I/O; it never imports socket, selectors, asyncio, mmap, os, time,
threading or subprocess, and from paglets only the exception tree (``paglets._errors``):
``paglets/_layers.toml`` declares it and ``tests/test_layers.py`` checks it. The byte formats are specified in
``proto/PROTOCOL.md``; golden vectors live in ``proto/vectors/``.

- ``limits``    every size and count limit, each with its reason
- ``messages``  ``ErrorInfo`` and the JSON error body: exceptions as data, rebuilt from a fixed table
- ``ipc``       host <-> child message Structs, frame layout, incremental ``FrameDecoder``
- ``envelope``  movement envelope: streaming ``EnvelopeEncoder``, incremental ``EnvelopeDecoder``
- ``jsonbin``   control-plane JSON with the binary tag form of paglets 2.0
- ``checksum``  CRC-32 and ``crc32_combine``
- ``requests``  typed JSON request bodies of the control plane
"""
