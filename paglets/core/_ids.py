"""Agent ids: the one rule every way into a host checks (``proto/PROTOCOL.md`` §6).

An agent id is 1 to ``MAX_AGENT_ID_LENGTH`` characters from ``[A-Za-z0-9._:-]`` and starts with a letter
or a digit: uuid hex (what hosts generate), readable names (``counter-1``, ``svc:echo``). It appears in
URL paths, file names (escaped, see ``paglets.persistence.storage.path_component``), process titles and
log lines, so nothing outside that set is accepted: no empty id, no ``/``, no NUL, no newline, no 1,000
characters.

:func:`check_agent_id` matches the *whole* string (``re.fullmatch``): ``re.match`` with ``$`` would
accept a trailing newline. Every path that makes or names a paglet calls it: creation (HTTP, embedded,
from a paglet, ``launch.toml``), arrival (envelope metadata), activation (an id read back from a record),
clone ids, routes with an id in their path, service leases. A bad id is ``InvalidAgentIdError`` (HTTP
400: the request is malformed, not about a missing paglet).
"""

from __future__ import annotations

import re
from typing import Final

from paglets.core.errors import InvalidAgentIdError

__all__ = ["AGENT_ID_PATTERN", "MAX_AGENT_ID_LENGTH", "check_agent_id", "is_agent_id"]

#: Longest agent id. A uuid in hex is 32 characters; 128 leaves room for readable prefixes and keeps ids
#: fit for URL paths, file names, process titles and log lines.
MAX_AGENT_ID_LENGTH: Final = 128

#: The agent id rule as a regular expression (match it with ``fullmatch``).
AGENT_ID_PATTERN: Final = rf"[A-Za-z0-9][A-Za-z0-9._:-]{{0,{MAX_AGENT_ID_LENGTH - 1}}}"

_AGENT_ID: Final = re.compile(AGENT_ID_PATTERN)

#: Longest piece of a bad id quoted back in an error message.
_QUOTED: Final = 64


def is_agent_id(value: object) -> bool:
    """Whether ``value`` is a valid agent id (a ``str`` matching the whole rule)."""
    return type(value) is str and _AGENT_ID.fullmatch(value) is not None


def check_agent_id(value: object) -> str:
    """``value`` if it is a valid agent id; ``InvalidAgentIdError`` (HTTP 400) saying why otherwise."""
    if type(value) is str and _AGENT_ID.fullmatch(value) is not None:
        return value
    if not isinstance(value, str):
        raise InvalidAgentIdError(f"invalid agent id: expected a string, got {type(value).__name__}")
    shown = repr(value[:_QUOTED]) + ("..." if len(value) > _QUOTED else "")
    raise InvalidAgentIdError(
        f"invalid agent id {shown}: an id is 1 to {MAX_AGENT_ID_LENGTH} characters of A-Z a-z 0-9 . _ : - "
        "starting with a letter or a digit"
    )
