from __future__ import annotations

import dataclasses
import math
from typing import Any

import msgspec
import pytest

from paglets.core.errors import SerializationError
from paglets.core.runtime_values import ArrivalMode
from paglets.remote.transfer import (
    MAX_REQUIRED_CAPABILITIES,
    MAX_TRANSFER_RETRIES,
    MAX_TRANSFER_TIMEOUT,
    TransferTicket,
)


def test_defaults() -> None:
    ticket = TransferTicket("http://beta:8765")
    assert ticket.timeout == 10.0
    assert ticket.retries == 0
    assert ticket.retry_interval == 0.25
    assert ticket.required_capabilities == ()
    assert ticket.expected_code_version is None
    assert ticket.arrival_mode is ArrivalMode.ACTIVATE


def test_frozen() -> None:
    ticket = TransferTicket("beta")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ticket.timeout = 1.0  # type: ignore[misc]


def test_arrival_mode_must_be_the_enum() -> None:
    assert TransferTicket("b", arrival_mode=ArrivalMode.INACTIVE).arrival_mode is ArrivalMode.INACTIVE
    with pytest.raises(TypeError, match="arrival_mode"):
        TransferTicket("b", arrival_mode="inactive")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"timeout": 0}, ValueError),
        ({"timeout": -1.0}, ValueError),
        ({"timeout": math.nan}, ValueError),
        ({"timeout": math.inf}, ValueError),
        ({"timeout": MAX_TRANSFER_TIMEOUT + 1}, ValueError),
        ({"timeout": "10"}, TypeError),
        ({"timeout": True}, TypeError),
        ({"retries": -1}, ValueError),
        ({"retries": MAX_TRANSFER_RETRIES + 1}, ValueError),
        ({"retries": 1.5}, TypeError),
        ({"retries": True}, TypeError),
        ({"retry_interval": -0.1}, ValueError),
        ({"required_capabilities": "agents:dispatch"}, TypeError),
        ({"required_capabilities": (1,)}, TypeError),
        ({"required_capabilities": ("c",) * (MAX_REQUIRED_CAPABILITIES + 1)}, ValueError),
        ({"expected_code_version": 3}, TypeError),
        ({"destination": ""}, ValueError),
        ({"destination": None}, TypeError),
    ],
)
def test_validation(kwargs: dict[str, Any], error: type[Exception]) -> None:
    arguments: dict[str, Any] = {"destination": "http://beta:1", **kwargs}
    with pytest.raises(error):
        TransferTicket(**arguments)


def test_zero_retry_interval_and_capability_collections() -> None:
    assert TransferTicket("b", retry_interval=0).retry_interval == 0
    assert TransferTicket("b", required_capabilities=["x", "y"]).required_capabilities == ("x", "y")  # type: ignore[arg-type]
    assert TransferTicket("b", required_capabilities={"y", "x"}).required_capabilities == ("x", "y")  # type: ignore[arg-type]


def test_from_target() -> None:
    ticket = TransferTicket("beta", retries=2)
    assert TransferTicket.from_target(ticket) is ticket
    assert TransferTicket.from_target("http://beta:1") == TransferTicket("http://beta:1")


def test_wire_round_trip() -> None:
    ticket = TransferTicket(
        "http://beta:1",
        timeout=2.5,
        retries=3,
        retry_interval=0.5,
        required_capabilities=("agents:dispatch", "artifacts:upload"),
        expected_code_version="abc",
        arrival_mode=ArrivalMode.INACTIVE,
    )
    wire = ticket.to_wire()
    assert wire == {
        "destination": "http://beta:1",
        "timeout": 2.5,
        "retries": 3,
        "retry_interval": 0.5,
        "required_capabilities": ["agents:dispatch", "artifacts:upload"],
        "expected_code_version": "abc",
        "arrival_mode": "inactive",
    }
    assert TransferTicket.from_wire(msgspec.json.decode(msgspec.json.encode(wire))) == ticket


def test_from_wire_accepts_strings_and_fills_defaults() -> None:
    assert TransferTicket.from_wire({"destination": "b"}) == TransferTicket("b")
    assert (
        TransferTicket.from_wire({"destination": "b", "arrival_mode": None}).arrival_mode
        is ArrivalMode.ACTIVATE
    )
    ticket = TransferTicket.from_wire({"destination": "b", "arrival_mode": "inactive", "retries": 2.0})
    assert ticket.arrival_mode is ArrivalMode.INACTIVE
    assert ticket.retries == 2


@pytest.mark.parametrize(
    "bad",
    [
        None,
        {},
        {"destination": "b", "arrival_mode": "sleeping"},
        {"destination": "b", "timeout": 0},
        {"destination": "b", "retries": "many"},
        {"destination": 5},
        {"destination": "b", "required_capabilities": "x"},
    ],
)
def test_from_wire_rejects_malformed_input(bad: Any) -> None:
    with pytest.raises(SerializationError):
        TransferTicket.from_wire(bad)
