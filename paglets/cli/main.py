"""``paglets``: the umbrella command. ``paglets host ...`` is the same as ``paglets-host ...``."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from paglets import __version__

__all__ = ["main"]

_USAGE = """usage: paglets COMMAND [ARGS...]

commands:
  host      run a paglets host (same as paglets-host; see paglets host --help)
  demo      run the local demo (same as python -m paglets.demo)
  version   print the version
"""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_USAGE, end="")
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "host":
        from paglets.cli.host import main as host_main

        return host_main(rest, prog="paglets host")
    if command == "demo":
        from paglets.demo import main as demo_main

        return demo_main(rest)
    if command in ("version", "--version"):
        print(f"paglets {__version__}")
        return 0
    print(f"paglets: error: unknown command {command!r} (see paglets --help)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
