"""What a host tells a new paglet process: the ``ChildConfig`` carried by the zygote's spawn request.

The config is small (ids, class names, addresses). The initial state travels beside it: inline when
small, else through a handoff segment that the host sends on the channel before the child starts.
"""

from __future__ import annotations

import msgspec

from paglets.wire.ipc import HandoffRef

__all__ = ["ChildConfig", "decode_child_config", "encode_child_config"]


class ChildConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a paglet process needs before its first lifecycle request."""

    agent_id: str
    agent_class: str
    state_class: str
    host_name: str
    host_address: str
    #: Initial state (MessagePack of the state dataclass); ``None`` with ``state_handoff`` or a fresh state.
    state: bytes | None = None
    state_handoff: HandoffRef | None = None
    api_key: str | None = None
    #: Where the host keeps this paglet's scratch directory (``work_dir``).
    work_dir: str = ""
    #: Seconds a child waits for the host to answer one of its host calls.
    host_call_timeout: float = 60.0
    #: The host's ``send_timeout``: how long it lets a synchronous send wait for its reply when the
    #: sender gives no deadline (``None``: no limit).
    send_timeout: float | None = 60.0
    #: The host's ``sys.path`` when it asked for the process, so paglet classes import as in the host.
    sys_path: list[str] = []


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(ChildConfig)


def encode_child_config(config: ChildConfig) -> bytes:
    return _encoder.encode(config)


def decode_child_config(data: bytes | memoryview) -> ChildConfig:
    return _decoder.decode(data)
