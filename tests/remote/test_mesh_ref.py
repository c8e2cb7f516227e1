"""HostRef wire form, URL normalization, beacons and the code version resolution."""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paglets import __version__
from paglets.core.errors import HostError
from paglets.remote._mesh_beacon import BEACON_KIND, MAX_BEACON_BYTES, decode_beacon, encode_beacon
from paglets.remote._mesh_ref import MAX_HOST_TAGS, MAX_HOST_URL, name_from_url
from paglets.remote.mesh import HostRef, normalize_host_url, resolve_code_version

ROOT = Path(__file__).resolve().parents[2]


def _ref(**changes: Any) -> HostRef:
    base = HostRef("alpha", "http://127.0.0.1:8765", "v1", True, 1700000000.5, 2, 3)
    return base.replace(**changes)


# --- URLs -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("http://a:1", "http://a:1"),
        ("  http://a:1/  ", "http://a:1"),
        ("a:1", "http://a:1"),
        ("https://a.example/paglets//", "https://a.example/paglets"),
        ("127.0.0.1:8765/", "http://127.0.0.1:8765"),
    ],
)
def test_normalize_host_url(raw: str, expected: str) -> None:
    assert normalize_host_url(raw) == expected


@pytest.mark.parametrize("raw", ["", "   ", "/", "http://a b", "a\x00b", "x" * (MAX_HOST_URL + 1)])
def test_normalize_host_url_refuses_garbage(raw: str) -> None:
    with pytest.raises(HostError):
        normalize_host_url(raw)


def test_name_from_url() -> None:
    assert name_from_url("http://10.0.0.1:8765/x") == "10.0.0.1:8765"


# --- wire form ----------------------------------------------------------------------------------------------


def test_to_wire_always_has_tags_and_properties_and_error_only_when_set() -> None:
    wire = _ref().to_wire()
    assert wire == {
        "name": "alpha",
        "url": "http://127.0.0.1:8765",
        "code_version": "v1",
        "online": True,
        "last_seen": 1700000000.5,
        "active_count": 2,
        "inactive_count": 3,
        "tags": [],
        "properties": {},
    }
    wire = _ref(error="boom", age=1.25, tags=("a",), properties={"k": "v"}).to_wire()
    assert wire["error"] == "boom"
    assert wire["age"] == 1.25
    assert wire["tags"] == ["a"]
    assert wire["properties"] == {"k": "v"}


def test_round_trip_and_normalization() -> None:
    ref = _ref(tags=("gpu", "lab"), properties={"zone": "b"}, error="x", age=0.5)
    assert HostRef.from_wire(ref.to_wire()) == ref
    parsed = HostRef.from_wire(
        {
            "name": "b",
            "address": " 10.0.0.2:9000/ ",
            "code_version": "v1",
            "tags": [" GPU ", "gpu", "Lab", ""],
            "properties": {" k ": "v", "": "dropped"},
            "unknown_future_field": [1, 2],
        }
    )
    assert parsed.url == "http://10.0.0.2:9000"
    assert parsed.tags == ("gpu", "lab")
    assert parsed.properties == {"k": "v"}
    assert parsed.online is True
    assert parsed.last_seen == 0.0
    assert parsed.error is None
    assert parsed.age is None


@pytest.mark.parametrize(
    "patch",
    [
        {"name": 5},
        {"name": None},
        {"url": 7},
        {"url": ""},
        {"code_version": ["v1"]},
        {"online": "yes"},
        {"last_seen": "now"},
        {"last_seen": math.nan},
        {"last_seen": True},
        {"active_count": -1},
        {"active_count": 1.5},
        {"inactive_count": True},
        {"active_count": 2**60},
        {"tags": "gpu"},
        {"tags": [1]},
        {"tags": ["t"] * (MAX_HOST_TAGS + 1)},
        {"properties": ["a"]},
        {"properties": {"a": 1}},
        {"error": 3},
        {"age": -1.0},
        {"age": math.inf},
        {"age": "1"},
    ],
)
def test_from_wire_refuses_bad_fields(patch: dict[str, Any]) -> None:
    wire = _ref().to_wire()
    wire.update(patch)
    with pytest.raises(HostError):
        HostRef.from_wire(wire)


@pytest.mark.parametrize("payload", [None, [], "ref", 3, {"name": "a"}])
def test_from_wire_refuses_non_refs(payload: Any) -> None:
    with pytest.raises(HostError):
        HostRef.from_wire(payload)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)


@settings(max_examples=200)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            key: _json
            for key in (
                "name",
                "url",
                "code_version",
                "online",
                "last_seen",
                "active_count",
                "inactive_count",
                "tags",
                "properties",
                "error",
                "age",
            )
        },
    )
)
def test_from_wire_only_raises_host_error(payload: dict[str, Any]) -> None:
    try:
        ref = HostRef.from_wire(payload)
    except HostError:
        return
    assert HostRef.from_wire(ref.to_wire()) == ref


# --- beacons ------------------------------------------------------------------------------------------------


def test_beacon_round_trip_drops_age() -> None:
    ref = _ref(age=3.0, tags=("x",))
    data = encode_beacon(ref)
    assert data is not None
    assert decode_beacon(data) == ref.replace(age=None)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff\xfe",
        b"[1,2]",
        b'{"kind": "other", "host": {}}',
        b'{"kind": "' + BEACON_KIND.encode() + b'", "host": {"name": 1}}',
        b" " * (MAX_BEACON_BYTES + 1),
    ],
)
def test_beacon_ignores_foreign_or_bad_datagrams(data: bytes) -> None:
    assert decode_beacon(data) is None


def test_oversized_ref_is_not_beaconed() -> None:
    big = _ref(properties={f"k{i}": "v" * 1000 for i in range(20)})
    assert encode_beacon(big) is None


# --- code version -------------------------------------------------------------------------------------------


def test_code_version_explicit_then_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PAGLETS_MESH_VERSION", "from-env")
    assert resolve_code_version(" flag ", repo_root=tmp_path) == "flag"
    assert resolve_code_version(None, repo_root=tmp_path) == "from-env"
    assert resolve_code_version("  ", repo_root=tmp_path) == "from-env"


def test_code_version_falls_back_without_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("PAGLETS_MESH_VERSION", raising=False)
    assert resolve_code_version(None, repo_root=tmp_path) == f"paglets-{__version__}-no-git"
    (tmp_path / ".git").mkdir()  # a .git that is not a repository: git fails, we fall back
    assert resolve_code_version(None, repo_root=tmp_path) == f"paglets-{__version__}-no-git"


@pytest.mark.skipif(not (ROOT / ".git").exists() or shutil.which("git") is None, reason="no git checkout")
def test_code_version_is_the_checkout_head(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PAGLETS_MESH_VERSION", raising=False)
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
    ).stdout.strip()
    assert resolve_code_version(None) == head
    assert resolve_code_version(None, repo_root=ROOT) == head
