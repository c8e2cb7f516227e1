"""Class naming of ``paglets.serialization.codec``: qualified_name and resolve_qualified_name."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from paglets.core.errors import SerializationError
from paglets.remote.references import PagletProxyRef
from paglets.serialization import codec
from paglets.serialization.codec import MAX_QUALIFIED_NAME, qualified_name, resolve_qualified_name


@dataclass
class Outer:
    @dataclass
    class Inner:
        value: int = 0


def test_contract_names_are_exported() -> None:
    for name in ("qualified_name", "resolve_qualified_name", "dataclass_to_wire", "dataclass_from_wire"):
        assert callable(getattr(codec, name))
    for name in ("codec_for", "encode_state", "encode_state_into", "decode_state", "StateCodec"):
        assert name in codec.__all__


def test_qualified_name_of_class_and_instance() -> None:
    expected = "paglets.remote.references:PagletProxyRef"
    assert qualified_name(PagletProxyRef) == expected
    assert qualified_name(PagletProxyRef("http://h", "a")) == expected


def test_qualified_name_of_nested_class_round_trips() -> None:
    name = qualified_name(Outer.Inner)
    assert name == f"{Outer.__module__}:Outer.Inner"
    assert resolve_qualified_name(name) is Outer.Inner


def test_qualified_name_refuses_local_classes_with_the_fix() -> None:
    @dataclass
    class Local:
        x: int = 0

    with pytest.raises(SerializationError, match="module level") as info:
        qualified_name(Local)
    assert "<locals>" in str(info.value)
    with pytest.raises(SerializationError, match="module level"):
        qualified_name(Local())


def test_resolve_known_classes() -> None:
    assert resolve_qualified_name("paglets.remote.references:PagletProxyRef") is PagletProxyRef
    assert resolve_qualified_name("pathlib:Path") is Path
    assert resolve_qualified_name(qualified_name(SerializationError)) is SerializationError


@pytest.mark.parametrize(
    "name",
    [
        "",
        "no_colon_here",
        ":Name",
        "module:",
        "a:b:c",
        "mod:Outer.<locals>.Inner",
        "1mod:Name",
        "mod.:Name",
        "mod:Name.",
        "os; import sys:Name",
        "../etc:passwd",
        "mod:__import__('os')",
    ],
)
def test_resolve_rejects_malformed_names(name: str) -> None:
    with pytest.raises(SerializationError, match="malformed class name"):
        resolve_qualified_name(name)


def test_resolve_rejects_overlong_and_non_string_names() -> None:
    with pytest.raises(SerializationError, match="longer than"):
        resolve_qualified_name("a" * MAX_QUALIFIED_NAME + ":B")
    with pytest.raises(SerializationError, match="must be a str"):
        resolve_qualified_name(42)  # type: ignore[arg-type]


def test_resolve_missing_module() -> None:
    with pytest.raises(SerializationError, match="cannot import module") as info:
        resolve_qualified_name("paglets_no_such_module_xyz:Thing")
    assert isinstance(info.value.__cause__, ImportError)


def test_resolve_missing_attribute_names_the_path() -> None:
    with pytest.raises(SerializationError, match=r"no attribute 'PagletProxyRef\.Nope'") as info:
        resolve_qualified_name("paglets.remote.references:PagletProxyRef.Nope")
    assert isinstance(info.value.__cause__, AttributeError)


def test_resolve_refuses_non_classes() -> None:
    with pytest.raises(SerializationError, match="not a class"):
        resolve_qualified_name("os.path:join")


def test_resolve_reports_a_module_that_fails_on_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "paglets_broken_module_for_test.py").write_text("raise RuntimeError('boom at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with pytest.raises(SerializationError, match="boom at import") as info:
            resolve_qualified_name("paglets_broken_module_for_test:Thing")
        assert isinstance(info.value.__cause__, RuntimeError)
    finally:
        sys.modules.pop("paglets_broken_module_for_test", None)


def test_resolve_imports_a_module_from_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = "from dataclasses import dataclass\n\n@dataclass\nclass Thing:\n    class Part:\n        pass\n"
    (tmp_path / "paglets_module_for_test.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        part = resolve_qualified_name("paglets_module_for_test:Thing.Part")
        assert qualified_name(part) == "paglets_module_for_test:Thing.Part"
    finally:
        sys.modules.pop("paglets_module_for_test", None)
