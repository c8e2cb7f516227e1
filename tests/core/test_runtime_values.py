from __future__ import annotations

import json

import msgspec
import pytest

from paglets.core.runtime_values import (
    ArrivalMode,
    EnvelopeKind,
    LaunchConfigSyncAction,
    ResidentLifecycle,
    ServiceScope,
    enum_from_wire,
    require_enum,
)


def test_values_are_the_wire_strings() -> None:
    assert [m.value for m in ServiceScope] == ["local", "mesh"]
    assert [m.value for m in ResidentLifecycle] == ["lazy", "eager"]
    assert [m.value for m in ArrivalMode] == ["activate", "inactive"]
    assert [m.value for m in EnvelopeKind] == ["dispatch", "clone", "retract", "activation"]
    assert [m.value for m in LaunchConfigSyncAction] == [
        "copied",
        "skipped",
        "unchanged",
        "updated",
        "update-available",
    ]


def test_members_compare_and_encode_as_strings() -> None:
    assert ArrivalMode.INACTIVE == "inactive"
    assert str(ServiceScope.MESH) == "mesh"
    assert f"{ServiceScope.LOCAL}" == "local"
    assert json.dumps({"scope": ServiceScope.MESH}) == '{"scope": "mesh"}'
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(ArrivalMode.ACTIVATE)) == "activate"


def test_require_enum_accepts_members_only() -> None:
    assert require_enum(ArrivalMode, ArrivalMode.INACTIVE, "arrival_mode") is ArrivalMode.INACTIVE
    with pytest.raises(TypeError, match="arrival_mode"):
        require_enum(ArrivalMode, "inactive", "arrival_mode")
    with pytest.raises(TypeError):
        require_enum(ArrivalMode, ServiceScope.LOCAL)


def test_require_enum_accepts_the_reference_argument_order() -> None:
    assert require_enum(ServiceScope.MESH, ServiceScope, "scope") is ServiceScope.MESH
    with pytest.raises(TypeError, match="scope"):
        require_enum("mesh", ServiceScope, "scope")


def test_require_enum_needs_an_enum_class() -> None:
    with pytest.raises(TypeError, match="Enum class"):
        require_enum("a", "b")


def test_enum_from_wire() -> None:
    assert enum_from_wire(ArrivalMode, "inactive") is ArrivalMode.INACTIVE
    assert enum_from_wire(ArrivalMode, ArrivalMode.ACTIVATE) is ArrivalMode.ACTIVATE
    assert enum_from_wire("lazy", ResidentLifecycle, "lifecycle") is ResidentLifecycle.LAZY
    with pytest.raises(ValueError, match=r"lifecycle must be one of 'lazy', 'eager'"):
        enum_from_wire(ResidentLifecycle, "sometimes", "lifecycle")
    with pytest.raises(ValueError, match="must be one of"):
        enum_from_wire(ResidentLifecycle, ["lazy"])
