"""The agent id rule (``paglets.core._ids``): whole-string match, one definition for every user."""

from __future__ import annotations

import pytest

from paglets.core._ids import MAX_AGENT_ID_LENGTH, check_agent_id, is_agent_id
from paglets.core.errors import InvalidAgentError, InvalidAgentIdError

GOOD = ["a", "0", "c0ffee", "counter-1", "svc:echo", "a.b_c-d:e", "f" * 32, "x" * MAX_AGENT_ID_LENGTH]
BAD = [
    "",
    "\x00",
    "a\x00b",
    "/tmp/x",
    "a/b",
    "..",
    ".hidden",
    "-x",
    "_x",
    ":x",
    "a b",
    "ok\n",  # re.match with "$" accepted this one
    "ok\r",
    "\nok",
    "é",
    "x" * (MAX_AGENT_ID_LENGTH + 1),
    "x" * 1000,
]


@pytest.mark.parametrize("agent_id", GOOD)
def test_good_ids(agent_id: str) -> None:
    assert is_agent_id(agent_id)
    assert check_agent_id(agent_id) == agent_id


@pytest.mark.parametrize("agent_id", BAD, ids=repr)
def test_bad_ids(agent_id: str) -> None:
    assert not is_agent_id(agent_id)
    with pytest.raises(InvalidAgentIdError, match="invalid agent id") as caught:
        check_agent_id(agent_id)
    assert len(str(caught.value)) < 300  # a 1,000-character id is not echoed whole


def test_non_strings_are_not_ids() -> None:
    for value in (None, 5, b"abc", ["a"]):
        assert not is_agent_id(value)
        with pytest.raises(InvalidAgentIdError, match="expected a string"):
            check_agent_id(value)


def test_a_bad_id_is_a_400_and_still_an_invalid_agent_error() -> None:
    assert InvalidAgentIdError.http_status == 400
    assert issubclass(InvalidAgentIdError, InvalidAgentError)
    assert InvalidAgentError.http_status == 404


def test_the_launch_file_uses_the_same_rule() -> None:
    import paglets.config._launch_file as launch_file
    import paglets.config.startup as startup

    assert not hasattr(launch_file, "AGENT_ID")
    assert startup.is_agent_id is is_agent_id
    assert launch_file.is_agent_id is is_agent_id
