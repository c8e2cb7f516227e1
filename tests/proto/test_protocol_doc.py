"""PROTOCOL.md agrees with the code: the limits table, the IPC tag table and the version."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from paglets.wire import envelope, ipc, limits

ROOT = Path(__file__).resolve().parents[2]
PROTOCOL = (ROOT / "proto" / "PROTOCOL.md").read_text()


def _section(number: int) -> str:
    match = re.search(rf"^## {number}\. .*?(?=^## |\Z)", PROTOCOL, flags=re.S | re.M)
    assert match, f"section {number} missing"
    return match.group(0)


def _table_rows(text: str) -> list[list[str]]:
    rows = []
    for line in text.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))  # "\|" inside a cell is not a border
            rows.append([cell.strip() for cell in cells])
    return rows


def _limit_rows(text: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for cells in _table_rows(text):
        name = re.fullmatch(r"`([A-Z_]+)`", cells[0])
        if name:
            value = cells[1]
            found[name.group(1)] = float(value) if "." in value else int(value)
    return found


def _wire_table() -> str:
    return _section(4).split("### 4.1 ")[0]


def _server_table() -> str:
    parts = _section(4).split("### 4.1 ")
    assert len(parts) == 2, "section 4.1 (HTTP server) missing"
    return parts[1]


def _documented_limits() -> dict[str, float]:
    return _limit_rows(_wire_table())


def _module_limits() -> dict[str, float]:
    return {
        name: value
        for name, value in vars(limits).items()
        if name.isupper() and isinstance(value, int | float)  # KiB/MiB/GiB are units, not limits
    }


def test_limits_table_matches_the_module() -> None:
    documented = _documented_limits()
    assert documented == _module_limits()


def test_limits_table_parses_every_row() -> None:
    # guard against a table edit that the parser would silently skip
    for table in (_wire_table(), _server_table()):
        rows = [r for r in _table_rows(table) if r[0] != "name"]
        assert len(rows) == len(_limit_rows(table))


def test_every_server_limit_is_documented_with_its_default() -> None:
    from paglets.http import limits as http_limits
    from paglets.http.limits import ServerLimits

    wire, server = _documented_limits(), _limit_rows(_server_table())
    defaults = ServerLimits()
    expected_server_rows = {}
    for field in ServerLimits.__struct_fields__:
        name = field.upper()  # every field's default is the module constant of the same name
        assert getattr(http_limits, name) == getattr(defaults, field), name
        if name not in wire:
            expected_server_rows[name] = getattr(http_limits, name)
    assert server == expected_server_rows


def _frame_table() -> str:
    """§1.2 (the frame types; §1.4's request tags are another numbering)."""
    return _section(1).split("### 1.2 ")[1].split("### 1.3 ")[0]


def test_ipc_tag_table_matches_the_structs() -> None:
    documented = {}
    for cells in _table_rows(_frame_table()):
        if cells[0].isdigit():
            documented[int(cells[0])] = cells[1].strip("`")
    actual = {t.__struct_config__.tag: t.__name__ for t in ipc.IPC_MESSAGE_TYPES}
    assert documented == actual


@pytest.mark.parametrize("tag_type", ipc.IPC_MESSAGE_TYPES, ids=lambda t: t.__name__)
def test_ipc_fields_are_documented_in_order(tag_type: type) -> None:
    row = next(
        cells for cells in _table_rows(_frame_table()) if cells[0] == str(tag_type.__struct_config__.tag)
    )
    documented = re.findall(r"`(\w+):", row[3])
    assert documented == list(tag_type.__struct_fields__)


def _control_rows() -> dict[int, list[str]]:
    match = re.search(r"^### 1\.4 .*?(?=^#{2,3} |^-{20,})", PROTOCOL, flags=re.S | re.M)
    assert match, "section 1.4 missing"
    return {int(cells[0]): cells for cells in _table_rows(match.group(0)) if cells[0].isdigit()}


def test_control_request_table_matches_the_code() -> None:
    """§1.4 lists every request of ``paglets.wire.control``: its tag, its fields in order, its reply."""
    from paglets.wire import control

    rows = _control_rows()
    assert set(rows) == {control.request_tag(cls) for cls in control.CONTROL_REQUEST_TYPES}
    for cls in control.CONTROL_REQUEST_TYPES:
        cells = rows[control.request_tag(cls)]
        assert cells[1] == f"`{cls.__name__}`"
        assert re.findall(r"`(\w+):", cells[2]) == list(cls.__struct_fields__), cls
        reply = control.reply_type(cls)
        named = getattr(reply, "__name__", None)
        if isinstance(reply, type) and issubclass(reply, control.msgspec.Struct):
            assert cells[3] == named, cls


def test_envelope_version_and_magic_are_documented() -> None:
    assert "protocol version 1" in PROTOCOL.splitlines()[0]
    assert envelope.ENVELOPE_VERSION == 1
    assert f'magic "{envelope.ENVELOPE_MAGIC.decode()}"' in PROTOCOL


def test_metadata_keys_are_documented() -> None:
    documented: list[str] = []
    for cells in _table_rows(_section(2)):
        documented += re.findall(r"`(\w+)`", cells[0])
    assert set(envelope.EnvelopeMetadata.__struct_fields__) <= set(documented)


def test_http_endpoints_section_is_reserved() -> None:
    assert "HTTP endpoints" in _section(6)
