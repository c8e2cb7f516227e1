"""The controller's lifecycle status: one table, one writer (``PagletController.transition``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, get_args

import pytest

from paglets.runtime._controller import (
    STATUS_TRANSITIONS,
    PagletController,
    Status,
    StatusTransitionError,
)

ROOT = Path(__file__).resolve().parents[2] / "paglets"


class _Bare(PagletController):
    """A controller without a process or a channel: only the status machinery."""

    def __init__(self, status: Any) -> None:  # no parent constructor: no process, no channel
        self.agent_id = "p"
        self._status = status
        self.pumped = 0

    def pump(self) -> None:
        self.pumped += 1


def test_the_table_covers_every_status() -> None:
    assert set(STATUS_TRANSITIONS) == set(get_args(Status))
    for targets in STATUS_TRANSITIONS.values():
        assert targets <= set(get_args(Status))
    assert STATUS_TRANSITIONS["gone"] == frozenset()


@pytest.mark.parametrize("start", get_args(Status))
@pytest.mark.parametrize("end", get_args(Status))
def test_transitions_follow_the_table(start: Any, end: Any) -> None:
    ctrl = _Bare(start)
    if start == end or end in STATUS_TRANSITIONS[start]:
        ctrl.transition(end)
        assert ctrl.status == end
    else:
        with pytest.raises(StatusTransitionError, match=f"status {start} cannot become {end}"):
            ctrl.transition(end)
        assert ctrl.status == start


def test_pause_and_resume() -> None:
    ctrl = _Bare("ready")
    ctrl.pause()
    assert ctrl.status == "moving"
    assert ctrl.resume() is True
    assert ctrl.status == "ready"
    assert ctrl.pumped == 1
    assert ctrl.resume() is False
    with pytest.raises(StatusTransitionError):
        _Bare("starting").pause()


def test_nothing_else_writes_the_status() -> None:
    writes = []
    for path in (ROOT / "runtime").rglob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"\bctrl\.status\s*=[^=]|self\.status\s*=[^=]|\._status\s*=[^=]", line):
                writes.append(f"{path.relative_to(ROOT)}:{number}")
    assert writes == ["runtime/_controller.py:" + str(n) for n in _own_writes()], writes


def _own_writes() -> list[int]:
    text = (ROOT / "runtime" / "_controller.py").read_text().splitlines()
    return [n for n, line in enumerate(text, 1) if re.search(r"self\._status\s*=[^=]", line)]
