"""Names → paths (``path_component``, ``class_storage_name``): injective, one safe component each."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from paglets.persistence._recordformat import file_stem
from paglets.persistence.storage import MAX_PATH_COMPONENT, class_storage_name, path_component, sanitize_name

names = st.text(max_size=300)


def _safe(component: str) -> bool:
    return (
        0 < len(component) <= MAX_PATH_COMPONENT
        and "/" not in component
        and "\x00" not in component
        and not component.startswith(".")
    )


@given(names)
def test_every_name_is_one_safe_component(name: str) -> None:
    assert _safe(path_component(name))


@given(names, names)
def test_different_names_never_share_a_component(a: str, b: str) -> None:
    if a != b:
        assert path_component(a) != path_component(b)


def test_the_collisions_of_sanitize_name_are_gone() -> None:
    assert sanitize_name("a:b") == sanitize_name("a_b")  # why sanitize_name is not used for paths
    assert len({path_component(n) for n in ["a:b", "a_b", "a.b", "a%3Ab", "", "%", ".", "..", "%2E"]}) == 9


def test_usual_names_are_their_own_component() -> None:
    for name in ["c0ffee" * 5, "counter-1", "data.csv", "pkg.mod.Class", "_x"]:
        assert path_component(name) == name
    assert path_component("a:b") == "a%3Ab"
    assert path_component(".hidden") == "%2Ehidden"
    assert path_component("x" * 300).startswith("%%")


@given(st.text(min_size=1, max_size=100))
def test_record_stems_are_path_components(agent_id: str) -> None:
    assert file_stem(agent_id) == path_component(agent_id)


def test_class_storage_keeps_2_0_names_and_never_collides() -> None:
    assert class_storage_name("pkg.mod:Class") == "pkg.mod.Class"  # 2.0's <sanitized "module.Class">
    nested = class_storage_name("pkg:mod.Class")  # class Class nested in class mod of module pkg
    assert nested != class_storage_name("pkg.mod:Class")
    assert nested == "pkg%3Amod.Class"
    names = ["a.b:C", "a:b.C", "a_b:C", "a:b_C", "a:B.C.D", "a.B:C.D", "a.B.C:D"]
    assert len({class_storage_name(n) for n in names}) == len(names)
