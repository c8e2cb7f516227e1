"""Sans-IO protocol layer: message Structs, IPC frames, the movement envelope, limits.

Nothing in this package performs I/O; it never imports socket, selectors, asyncio, mmap, os or time.
"""
