"""``paglets``: the umbrella command. ``paglets host ...`` is the same as ``paglets-host ...``.

The inspection and administration commands (``sys``, ``mesh``, ``artifacts``, ``hosts``, ``agents``,
``user-info``, ``completion``) live in :mod:`paglets.cli.tree`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from paglets import __version__

__all__ = ["main"]

#: The commands of ``paglets.cli.tree`` (named here so that ``paglets host`` never imports it).
TREE_COMMANDS = (
    "sys",
    "mesh",
    "artifacts",
    "hosts",
    "agents",
    "jobs",
    "compute-slots",
    "user-info",
    "examples",
    "search",
    "completion",
)


def _usage() -> str:
    from paglets.cli.tree import COMMANDS

    return (
        "usage: paglets COMMAND [ARGS...]\n\ncommands:\n"
        "  host        run a paglets host (same as paglets-host; see paglets host --help)\n"
        + "".join(f"  {name:<11} {text}\n" for name, text in COMMANDS.items())
        + "  demo        run the local demo (same as python -m paglets.demo)\n"
        "  version     print the version\n\n"
        "Run 'paglets COMMAND --help' for a command's options.\n"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage(), end="")
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "host":
        from paglets.cli.host import main as host_main

        return host_main(rest, prog="paglets host")
    if command == "demo":
        from paglets.demo import main as demo_main

        return demo_main(rest)
    if command in TREE_COMMANDS:
        from paglets.cli.tree import run

        return run(args)
    if command in ("version", "--version"):
        print(f"paglets {__version__}")
        return 0
    print(f"paglets: error: unknown command {command!r} (see paglets --help)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
