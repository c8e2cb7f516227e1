"""Registered files travel with their paglet (contract §4.9, behaviours 17 and 18)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from _paglets import FileCarrier

from paglets.core.messages import Message
from paglets.runtime.host import Host


@pytest.mark.parametrize("mode", ["move", "copy"])
def test_registered_file_travels_with_dispatch(
    make_host: Callable[..., Host], tmp_path: Path, mode: str
) -> None:
    alpha, beta = make_host("alpha"), make_host("beta")
    data = os.urandom(2 << 20)
    source = tmp_path / "input.bin"
    source.write_bytes(data)
    proxy = alpha.create(FileCarrier)
    proxy.send(Message("register", {"mode": mode}, arg=str(source)))
    moved = alpha.dispatch(proxy.agent_id, beta.address)
    assert moved.send(Message("log"))[-1] == f"arrival-sees:True:{len(data)}"
    where = Path(moved.send(Message("where")))
    assert where.parent == beta.persistence_dir / "work" / proxy.agent_id
    assert moved.send(Message("read")) == data
    assert source.exists() is (mode == "copy")
    assert not (alpha.persistence_dir / "work" / proxy.agent_id).exists()
    moved.dispose()  # behaviour 18: the work dir goes, files outside it stay
    assert not where.exists()
    assert source.exists() is (mode == "copy")


def test_clone_always_copies(make_host: Callable[..., Host], tmp_path: Path) -> None:
    alpha, beta = make_host("alpha"), make_host("beta")
    source = tmp_path / "input.bin"
    source.write_bytes(b"abc" * 1000)
    proxy = alpha.create(FileCarrier)
    proxy.send(Message("register", {"mode": "move"}, arg=str(source)))
    clone = alpha.clone(proxy.agent_id, target=beta.address)
    assert clone.send(Message("read")) == b"abc" * 1000
    assert source.exists()
    assert proxy.send(Message("read")) == b"abc" * 1000


def test_same_host_dispatch_keeps_files(make_host: Callable[..., Host], tmp_path: Path) -> None:
    alpha = make_host("alpha")
    source = tmp_path / "input.bin"
    source.write_bytes(b"x" * 5000)
    proxy = alpha.create(FileCarrier)
    proxy.send(Message("register", {"mode": "move"}, arg=str(source)))
    moved = alpha.dispatch(proxy.agent_id, alpha.address)
    assert moved.send(Message("read")) == b"x" * 5000
    assert source.exists()
