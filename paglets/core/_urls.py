"""What a host URL is: the one rule for every argument that takes "a host name or URL".

- :func:`explicit_url` decides: a string with an ``http://`` or ``https://`` scheme is a URL (returned
  normalized), a string without a scheme is a host *name* (``None``: looked up among the mesh members
  only), anything else is a ``HostError``. ``TransferTicket`` validates its destination with it, and
  ``paglets.remote`` resolves every target through it, so a mistyped name never becomes a DNS lookup.
- :func:`normalize_host_url` trims, drops trailing ``/`` and bounds the length (``MAX_HOST_URL``).

Defined in the authoring layer because ``TransferTicket`` needs it; the mesh
(``paglets.remote._mesh_ref``) re-exports both functions. Nothing here does I/O.
"""

from __future__ import annotations

import re
from typing import Final

from paglets.core.errors import HostError

__all__ = ["MAX_HOST_URL", "URL_SCHEMES", "explicit_url", "normalize_host_url"]

#: Longest host URL (the common limit of browsers and proxies for a whole URL).
MAX_HOST_URL: Final = 2048

#: Whitespace (``\s`` is what ``str.isspace`` accepts) and control characters: never in a host URL.
_UNSAFE: Final = re.compile(r"[\s\x00-\x1f]")


def normalize_host_url(url: str) -> str:
    """Trim, drop trailing ``/``, add ``http://`` when there is no scheme; ``HostError`` when empty."""
    if not isinstance(url, str):
        raise HostError(f"host URL must be a string, got {type(url).__name__}")
    value = url.strip().rstrip("/")
    if not value:
        raise HostError("host URL must not be empty")
    if len(value) > MAX_HOST_URL:
        raise HostError(f"host URL longer than {MAX_HOST_URL} characters")
    if _UNSAFE.search(value):  # the mesh checks every URL of every ref it hears: a regex, not a loop
        raise HostError(f"host URL contains whitespace or control characters: {value[:80]!r}")
    if "://" not in value:
        value = f"http://{value}"
    return value


#: The schemes that make a string a URL. Anything else with ``://`` is refused.
URL_SCHEMES: Final = ("http", "https")


def explicit_url(text: str) -> str | None:
    """The normalized URL when ``text`` starts with ``http://`` or ``https://``; ``None`` when it has no
    scheme (it is then a host *name*, looked up in the mesh only); ``HostError`` for another scheme or a
    URL without a host.

    This is the one rule for every argument that takes "a host name or URL" (``dispatch``, ``clone``,
    ``retract``, ``create_remote``, ``resolve_host_url``, ``wait_for_host``, tickets): only a string with
    an explicit scheme is a URL, so a mistyped name can never turn into a DNS lookup.
    """
    if not isinstance(text, str):
        raise HostError(f"a host name or URL must be a string, got {type(text).__name__}")
    value = text.strip()
    scheme, sep, rest = value.partition("://")
    if not sep:
        return None
    if scheme.lower() not in URL_SCHEMES:
        raise HostError(f"not an http:// or https:// URL: {value[:200]!r}")
    host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    if not host or host.startswith(":"):
        raise HostError(f"URL without a host: {value[:200]!r}")
    return normalize_host_url(f"{scheme.lower()}://{rest}")
