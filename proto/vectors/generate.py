"""Regenerate the golden vectors of ``proto/PROTOCOL.md`` (deterministic: fixed ids, times and data).

    .venv/bin/python proto/vectors/generate.py          # write the files
    .venv/bin/python proto/vectors/generate.py --check  # exit 1 if any committed file would change

The outputs are committed. Tests decode the committed bytes and compare them with the committed JSON;
they never regenerate. Run this only when adding a vector (a new message type or frame kind): existing
vectors must never change (PROTOCOL.md §5), so ``--check`` must pass before and after, apart from the
new files.

Layout:
    ipc/<tag>_<name>.bin          one IPC frame (length prefix + body)
    ipc/<tag>_<name>.json         {"type", "tag", "fields"}: the decoded message
    control/<tag>_<name>.bin      one control request (the ``request`` of a ``HostCall``, PROTOCOL.md §1.4)
    control/<tag>_<name>.json     {"type", "tag", "fields"}: the decoded request
    envelope/<name>.bin           one whole envelope
    envelope/<name>.json          metadata, state (base64), frames, encoder settings
    transfer/header.bin           the header slot of a transfer record file (PROTOCOL.md §6.2)
    transfer/<name>.bin           one record slot
    transfer/<name>.json          {"sequence", "record"}: the decoded slot
    invalid/<name>.bin            bytes a decoder must refuse
    invalid/<name>.json           {"decoder": "ipc"|"envelope", "error": "<error class name>"}

In the JSON files binary values use the tag form of PROTOCOL.md §3.2 and ``msgspec.Raw`` payloads appear
as {"msgpack": "<hex>"}.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import struct
import sys
import zlib
from pathlib import Path
from typing import Any

import msgspec
import zstandard

from paglets.persistence._transfers import TransferRecord, encode_header, encode_slot
from paglets.wire import control
from paglets.wire.envelope import EnvelopeMetadata, encode_envelope
from paglets.wire.ipc import (
    NIL,
    Deliver,
    GetState,
    HandoffRef,
    Hello,
    HostCall,
    HostReply,
    IpcMessage,
    Lifecycle,
    MessageWire,
    Reply,
    ResourceCall,
    RunFinished,
    Shutdown,
    Start,
    UntypedHostCall,
    encode_frame,
    encode_message,
)
from paglets.wire.messages import ErrorInfo

HERE = Path(__file__).resolve().parent
_pack = msgspec.msgpack.encode


def describe(value: Any) -> Any:
    """A JSON-able description of a decoded value (Structs as field dicts, Raw as hex, bytes tagged)."""
    if isinstance(value, msgspec.Raw):
        return {"msgpack": bytes(value).hex()}
    if isinstance(value, msgspec.Struct):
        return {name: describe(getattr(value, name)) for name in value.__struct_fields__}
    if isinstance(value, bytes | bytearray):
        kind = "bytearray" if isinstance(value, bytearray) else "bytes"
        return {"__paglets_binary__": kind, "base64": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        return {str(k): describe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [describe(v) for v in value]
    return value


def pseudo_random(n: int, seed: bytes) -> bytes:
    """``n`` incompressible but reproducible bytes (SHA-256 in counter mode)."""
    out = bytearray()
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(seed + counter.to_bytes(8, "little")).digest()
        counter += 1
    return bytes(out[:n])


def text(n: int) -> bytes:
    """``n`` bytes of very compressible text."""
    line = b"paglets move state, not code; every host has the same classes importable.\n"
    return (line * (n // len(line) + 1))[:n]


def ipc_vectors() -> dict[str, IpcMessage]:
    traceback = (
        'Traceback (most recent call last):\n  File "agent.py", line 12, in on_message\nRuntimeError: boom\n'
    )
    return {
        "01_lifecycle": Lifecycle(
            call_id=1,
            hook="arrival",
            event=msgspec.Raw(_pack({"reason": "dispatch", "source": "http://127.0.0.1:8701"})),
        ),
        "02_deliver": Deliver(
            call_id=2,
            message=MessageWire(
                kind="add",
                args={"n": 3, "blob": b"\x00\x01\xfe\xff"},
                arg=[1, "two", None, 2.5],
                sender="5f0c4a3e9b2d4c1f8e7a6b5c4d3e2f10",
                reply_to=None,
                priority=7,
                message_type=1,
                timestamp=1700000000.25,
                message_id="0123456789abcdef0123456789abcdef",
            ),
            oneway=False,
        ),
        "02_deliver_oneway": Deliver(call_id=3, message=MessageWire(kind="tick"), oneway=True),
        "02_deliver_segment": Deliver(
            call_id=9,
            message=MessageWire(kind=""),
            oneway=False,
            message_segment=HandoffRef(segment=4, length=262144, checksum=0),
        ),
        "03_get_state": GetState(call_id=4),
        "04_resource_call": ResourceCall(call_id=5, op="cleanup", reason="dispatch"),
        "05_shutdown": Shutdown(reason="host stopping"),
        "06_host_reply": HostReply(
            call_id=6,
            ok=True,
            result=msgspec.Raw(_pack({"host_url": "http://127.0.0.1:8702", "agent_id": "a" * 32})),
        ),
        "06_host_reply_error": HostReply(
            call_id=7, ok=False, error=ErrorInfo("transfer", "TransferError", "preflight failed")
        ),
        "07_start": Start(call_id=8),
        "32_hello": Hello(pid=4242),
        "33_reply": Reply(call_id=2, ok=True, result=msgspec.Raw(_pack(5))),
        "33_reply_handoff": Reply(
            call_id=4, ok=True, handoff=HandoffRef(segment=7, length=64 * 1024 * 1024, checksum=0xDEADBEEF)
        ),
        "33_reply_error": Reply(
            call_id=8, ok=False, error=ErrorInfo("host", "RuntimeError", "boom", traceback)
        ),
        # retired (tag 34): written before host calls were typed; they must still decode
        "34_host_call": UntypedHostCall(
            call_id=9, op="lookup_service", args=msgspec.Raw(_pack({"name": "echo"}))
        ),
        "34_host_call_segment": UntypedHostCall(
            call_id=11,
            op="deliver",
            args=msgspec.Raw(b"\xc0"),
            args_segment=HandoffRef(segment=2, length=2097384, checksum=0),
        ),
        "36_host_call": HostCall(
            call_id=12, request=msgspec.Raw(control.encode_control(control.LookupServices(name="echo")))
        ),
        "36_host_call_segment": HostCall(
            call_id=14, request=NIL, request_segment=HandoffRef(segment=2, length=2097384, checksum=0)
        ),
        "35_run_finished": RunFinished(),
        "35_run_finished_error": RunFinished(error=ErrorInfo("paglet_crashed", "MemoryError", "")),
    }


#: The name a type had when its vectors were written, where it was renamed since (the JSON keeps it).
WRITTEN_AS: dict[type[Any], str] = {UntypedHostCall: "HostCall"}


def control_vectors() -> dict[str, control.Request[Any]]:
    """One request of every type of ``paglets.wire.control`` (name: ``<tag>_<type>``)."""
    agent = "5f0c4a3e9b2d4c1f8e7a6b5c4d3e2f10"
    ticket = {"destination": "http://127.0.0.1:8702", "timeout": 10.0, "retries": 1}
    message = encode_message(
        MessageWire(
            kind="add", args={"n": 3, "blob": b"\x00\xff"}, sender="http://127.0.0.1:8701", message_id="m-1"
        )
    )
    creation = control.CreateAgent(
        agent_class="examples.counter:Counter",
        state_class="examples.counter:CounterState",
        state=b"\x81\xa5count\x0a",
        init={"start": 1},
        agent_id="c0ffee",
    )
    requests: list[control.Request[Any]] = [
        control.AgentInfo(agent),
        control.AgentStateInfo(agent),
        control.DisposeAgent(agent),
        control.DeactivateAgent(agent, {"reason": "maintenance", "source": "external"}),
        control.ActivateAgent(agent),
        control.DispatchAgent(agent, ticket=ticket),
        control.CloneAgent(agent, target="beta"),
        control.RetractAgent(agent, target="http://127.0.0.1:8701"),
        control.DeliverMessage(agent, msgspec.Raw(message), oneway=False, deadline=30.0),
        creation,
        control.CreateRemote("beta", creation),
        control.ListAgents(active=True, inactive=True, include_state=False),
        control.HostHealth(),
        control.AcquireLease(agent, "echo", ttl=120.0),
        control.ReleaseLease("0123456789abcdef0123456789abcdef"),
        control.GetProxy(agent, include_inactive=True),
        control.GetProxies(3),
        control.GetProperty("color", default="blue"),
        control.SetProperty("color", value=b"\x01\x02"),
        control.AvailableHosts(online_only=False, include_self=True),
        control.MeshCodeVersion(),
        control.HostStatus("beta"),
        control.IsHostOnline("http://127.0.0.1:8702"),
        control.WaitForHost("beta", timeout=5.0),
        control.ResolveHostUrl("beta"),
        control.MovePreflight("dispatch", ticket),
        control.MoveSelf("clone", ticket, clone_id="6a" * 16, state_segment=control.StateSegment(3, 4096)),
        control.DeactivateSelf(
            {"reason": "idle", "source": "self"},
            {"activate_on_message": True, "queue_messages_when_inactive": True},
            control.StateSegment(5, 128),
        ),
        control.StorageRead("notes/today.txt"),
        control.StorageWrite("notes/today.txt", b"hello", quota_bytes=1 << 20),
        control.StorageDelete("notes/today.txt"),
        control.StorageClear(),
        control.StorageStatusRequest(quota_bytes=1 << 20),
        control.RegisterFile("/srv/alpha/notes.txt", name="notes", mode="move"),
        control.RegisteredFiles(),
        control.UnregisterFile("notes"),
        control.RegisteredFilePath("notes"),
        control.UploadArtifact("/srv/alpha/model.bin", owner_agent_id=None, name="model", compression="zstd"),
        control.LocateArtifact("f" * 32),
        control.DeleteArtifact("f" * 32),
        control.AdvertiseService("echo", None, ["ping"], {"version": 2}, "mesh", ttl=30.0),
        control.UnadvertiseService("echo", agent_id=agent),
        control.LookupServices("echo", capability="ping", scope="mesh"),
        control.LookupService(capability="ping"),
        control.CheckpointAgent(agent),
    ]
    return {f"{control.request_tag(type(r)):03d}_{type(r).__name__}": r for r in requests}


def _metadata(kind: str = "dispatch", **extra: Any) -> EnvelopeMetadata:
    fields: dict[str, Any] = {
        "kind": kind,
        "agent_id": "5f0c4a3e9b2d4c1f8e7a6b5c4d3e2f10",
        "agent_class_name": "examples.counter:Counter",
        "state_class_name": "examples.counter:CounterState",
        "transfer_id": "00112233445566778899aabbccddeeff",
        "source_host_name": "alpha",
        "source_host_address": "http://127.0.0.1:8701",
        "target_host_name": "beta",
        "target_host_address": "http://127.0.0.1:8702",
    }
    fields.update(extra)
    return msgspec.convert(fields, EnvelopeMetadata)


def envelope_vectors() -> dict[str, tuple[EnvelopeMetadata, bytes, int]]:
    """name -> (metadata, state, frame_size); all use zstd level 1."""
    ticket = {
        "destination": "http://127.0.0.1:8702",
        "timeout": 10.0,
        "retries": 0,
        "retry_interval": 0.25,
        "required_capabilities": ["gpu"],
        "expected_code_version": None,
        "arrival_mode": "activate",
    }
    files = [
        {
            "file": {"name": "notes.txt", "mode": "copy", "sha256": "0" * 64, "size_bytes": 12},
            "artifact": {"artifact_id": "f" * 32, "host_url": "http://127.0.0.1:8702", "size_bytes": 12},
            "transfer_mode": "copy",
            "source_path": "/srv/alpha/notes.txt",
        }
    ]
    return {
        "empty_state": (_metadata("activation", target_host_name="", target_host_address=""), b"", 1 << 20),
        "raw_frame": (_metadata(), pseudo_random(300, b"raw"), 1 << 20),
        "compressed_frame": (_metadata(ticket=ticket), text(4000), 1 << 20),
        "multi_frame": (
            _metadata(
                "clone",
                agent_id="6a" * 16,
                clone_of="5f0c4a3e9b2d4c1f8e7a6b5c4d3e2f10",
                registered_files=files,
            ),
            text(1024) + pseudo_random(1024, b"multi") + text(500),
            1024,
        ),
    }


def _frame(body: bytes) -> bytes:
    return struct.pack("<I", len(body)) + body


def invalid_vectors(raw_envelope: bytes) -> dict[str, tuple[str, str, bytes]]:
    """name -> (decoder, expected error class, bytes)."""
    header = struct.Struct("<4sHHIQI")
    flipped = bytearray(raw_envelope)
    flipped[-30] ^= 0x01  # inside the raw payload: frame CRC mismatch
    bad_kind = bytearray(raw_envelope)
    meta_len = header.unpack_from(raw_envelope)[3]
    bad_kind[header.size + meta_len] = ord("X")
    # a "bomb": the frame header claims 100 raw bytes, the zstd frame declares 1 MiB of zeros
    bomb_payload = zstandard.ZstdCompressor(level=1).compress(bytes(1 << 20))
    head = raw_envelope[: header.size + meta_len]
    fields = list(header.unpack_from(head))
    fields[4] = 100  # declared state length
    fixed = header.pack(*fields)[:-4]
    meta = head[header.size :]
    crc = zlib.crc32(meta, zlib.crc32(fixed))
    bomb = (
        fixed
        + crc.to_bytes(4, "little")
        + meta
        + struct.pack("<BBHIII", ord("Z"), 0, 0, len(bomb_payload), 100, 0)
        + bomb_payload
    )
    return {
        "ipc_unknown_tag": ("ipc", "FrameError", _frame(_pack([99, 1]))),
        "ipc_empty_frame": ("ipc", "FrameError", struct.pack("<I", 0)),
        "ipc_too_large": ("ipc", "LimitExceededError", struct.pack("<I", (1 << 20) + 1) + b"\x90"),
        "ipc_bad_field": ("ipc", "FrameError", _frame(_pack([1, 1, "teleport", None]))),
        "ipc_trailing_bytes": ("ipc", "FrameError", _frame(_pack([3, 1]) + b"\xc0")),
        "ipc_truncated": ("ipc", "FrameError", _frame(_pack([32, 4242]))[:-1]),
        "envelope_bad_magic": ("envelope", "FrameError", b"XXXX" + raw_envelope[4:]),
        "envelope_truncated": ("envelope", "FrameError", raw_envelope[:-7]),
        "envelope_frame_crc": ("envelope", "ChecksumError", bytes(flipped)),
        "envelope_unknown_frame_kind": ("envelope", "FrameError", bytes(bad_kind)),
        "envelope_zstd_bomb": ("envelope", "ChecksumError", bomb),
        "envelope_trailing_bytes": ("envelope", "FrameError", raw_envelope + b"\x00"),
    }


def _json(data: Any) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()


def build() -> dict[Path, bytes]:
    out: dict[Path, bytes] = {}
    for name, msg in ipc_vectors().items():
        out[HERE / "ipc" / f"{name}.bin"] = encode_frame(msg)
        tag = type(msg).__struct_config__.tag
        name_of = WRITTEN_AS.get(type(msg), type(msg).__name__)
        description = {"type": name_of, "tag": tag, "fields": describe(msg)}
        out[HERE / "ipc" / f"{name}.json"] = _json(description)
    for name, request in control_vectors().items():
        out[HERE / "control" / f"{name}.bin"] = control.encode_control(request)
        tag = control.request_tag(type(request))
        description = {"type": type(request).__name__, "tag": tag, "fields": describe(request)}
        out[HERE / "control" / f"{name}.json"] = _json(description)
    raw_envelope = b""
    for name, (metadata, state, frame_size) in envelope_vectors().items():
        data = encode_envelope(metadata, state, frame_size=frame_size, level=1)
        if name == "raw_frame":
            raw_envelope = data
        out[HERE / "envelope" / f"{name}.bin"] = data
        out[HERE / "envelope" / f"{name}.json"] = _json(
            {
                "metadata": describe(metadata),
                "state": describe(state),
                "state_length": len(state),
                "state_crc": zlib.crc32(state),
                "frame_size": frame_size,
                "zstd_level": 1,
                "zstd_version": zstandard.ZSTD_VERSION,
            }
        )
    for name, (decoder, error, data) in invalid_vectors(raw_envelope).items():
        out[HERE / "invalid" / f"{name}.bin"] = data
        out[HERE / "invalid" / f"{name}.json"] = _json({"decoder": decoder, "error": error})
    out[HERE / "transfer" / "header.bin"] = encode_header()
    for sequence, (name, record) in enumerate(transfer_vectors().items(), 1):
        out[HERE / "transfer" / f"{name}.bin"] = encode_slot(record, sequence)
        out[HERE / "transfer" / f"{name}.json"] = _json({"sequence": sequence, "record": describe(record)})
    return out


def transfer_vectors() -> dict[str, TransferRecord]:
    """A source's decision and a target's executed mark, as written by hosts (fixed ids and times)."""
    return {
        "source_committed": TransferRecord(
            transfer_id="0123456789abcdef" + "fedcba9876543210",
            role="source",
            outcome="committed",
            agent_id="c0ffee",
            peer="http://127.0.0.1:8766",
            kind="dispatch",
            written_at=1767225600.0,
        ),
        "source_aborted": TransferRecord(
            transfer_id="0123456789abcdef" + "00000000000000a1",
            role="source",
            outcome="aborted",
            agent_id="c0ffee",
            peer="http://127.0.0.1:8766",
            kind="clone",
            written_at=1767225601.5,
        ),
        "target_executed": TransferRecord(
            transfer_id="0123456789abcdef" + "fedcba9876543210",
            role="target",
            outcome="executed",
            agent_id="c0ffee",
            peer="http://127.0.0.1:8765",
            kind="dispatch",
            written_at=1767225600.25,
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report files that would change")
    args = parser.parse_args()
    changed = []
    for path, data in sorted(build().items()):
        if path.exists() and path.read_bytes() == data:
            continue
        changed.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    for path in changed:
        print(("would change " if args.check else "wrote ") + str(path.relative_to(HERE)))
    return 1 if (args.check and changed) else 0


if __name__ == "__main__":
    sys.exit(main())
