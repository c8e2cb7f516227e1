"""Public values as the wire Structs that carry them in control replies, and back.

``paglets.wire.control`` cannot import the classes of the layers above it (``HostRef``,
``ServiceRecord``, ``PagletFileRef``, ``ArtifactRef``, ``PagletProxy``), so replies carry their wire
Structs, and both ends convert here: the host when it answers, the paglet process when it reads the
answer. ``to_*`` go from the public class to the Struct, ``*_from`` back (through the class's own
``from_wire`` checks).
"""

from __future__ import annotations

import msgspec

from paglets.artifacts import ArtifactRef, PagletFileRef
from paglets.remote._mesh_ref import HostRef
from paglets.services.contracts import ServiceRecord
from paglets.wire.control import ArtifactRefWire, FileRefWire, HostRefWire, ProxyRef, ServiceRecordWire

__all__ = [
    "artifact_ref_from",
    "file_ref_from",
    "host_ref_from",
    "service_record_from",
    "to_artifact_ref_wire",
    "to_file_ref_wire",
    "to_host_ref_wire",
    "to_service_record_wire",
]


def to_host_ref_wire(ref: HostRef) -> HostRefWire:
    return HostRefWire(
        name=ref.name,
        url=ref.url,
        code_version=ref.code_version,
        online=ref.online,
        last_seen=ref.last_seen,
        active_count=ref.active_count,
        inactive_count=ref.inactive_count,
        tags=list(ref.tags),
        properties=dict(ref.properties),
        error=ref.error,
        age=ref.age,
    )


def host_ref_from(wire: HostRefWire) -> HostRef:
    return HostRef.from_wire(msgspec.structs.asdict(wire))


def to_service_record_wire(record: ServiceRecord) -> ServiceRecordWire:
    return ServiceRecordWire(
        name=record.name,
        proxy=ProxyRef(record.proxy.host_url, record.proxy.agent_id),
        capabilities=list(record.capabilities),
        metadata=record.metadata,
        scope=record.scope.value,
        host_name=record.host_name,
        host_url=record.host_url,
        advertised_at=record.advertised_at,
        expires_at=record.expires_at,
    )


def service_record_from(wire: ServiceRecordWire) -> ServiceRecord:
    data = msgspec.structs.asdict(wire)
    data["proxy"] = msgspec.structs.asdict(wire.proxy)
    return ServiceRecord.from_wire(data)


def to_file_ref_wire(ref: PagletFileRef) -> FileRefWire:
    return FileRefWire(**ref.to_wire())


def file_ref_from(wire: FileRefWire) -> PagletFileRef:
    return PagletFileRef.from_wire(msgspec.structs.asdict(wire))


def to_artifact_ref_wire(ref: ArtifactRef) -> ArtifactRefWire:
    return ArtifactRefWire(**ref.to_wire())


def artifact_ref_from(wire: ArtifactRefWire) -> ArtifactRef:
    return ArtifactRef.from_wire(msgspec.structs.asdict(wire))
