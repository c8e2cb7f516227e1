"""Shared plumbing of the inspection and administration commands (``paglets sys``, ``mesh``, ...).

Conventions every command follows:

- **Exit codes**: 0 success; 1 nothing found, or an answer is incomplete (a host did not answer, a
  named paglet or artifact does not exist); 2 usage or connection error (bad arguments, no entry host,
  authentication refused).
- **Errors** are one line on stderr, ``<prog>: <message>``; argument errors add where help is.
- **Options** of networked commands (:func:`add_network_options`) may come before or after the
  subcommand (``paglets-sysinfo --entry beta df`` and ``paglets sys df --entry beta`` both work).

This module imports nothing heavy: ``--help`` of every command must stay fast, so the HTTP client,
rich and the service modules are imported only once a command runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, Final, NoReturn

__all__ = [
    "EXIT_INCOMPLETE",
    "EXIT_OK",
    "EXIT_USAGE",
    "CommandError",
    "Parser",
    "add_network_options",
    "api_key",
    "option",
    "run",
]

EXIT_OK: Final = 0
EXIT_INCOMPLETE: Final = 1
EXIT_USAGE: Final = 2

API_KEY_ENV: Final = "PAGLETS_API_KEY"


class CommandError(Exception):
    """A failure reported as one line; ``code`` is the exit code (2 unless told otherwise)."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line pointing at ``--help``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def option(args: argparse.Namespace, name: str, default: Any) -> Any:
    """An option that may be missing from ``args`` (options shared by a group and its subcommands)."""
    value = getattr(args, name, None)
    return default if value is None else value


def add_network_options(parser: argparse.ArgumentParser, *, timeout: float | None = None) -> None:
    """``--entry``, ``--api-key-env``, ``--timeout``, ``--json`` and ``--multicast``.

    Defaults are applied by the command (:func:`option`), so the same options can sit on a group parser
    and on its subcommands without one overriding the other.
    """
    group = parser.add_argument_group("connection and output")
    group.add_argument(
        "--entry",
        metavar="NAME|URL",
        default=argparse.SUPPRESS,
        help="host to ask: a mesh host name or a URL (default: $PAGLETS_ENTRY, then http://127.0.0.1:8765)",
    )
    group.add_argument(
        "--api-key-env",
        metavar="NAME",
        default=argparse.SUPPRESS,
        help=f"read the API key from this environment variable (default: {API_KEY_ENV})",
    )
    group.add_argument(
        "--multicast",
        action="store_true",
        default=argparse.SUPPRESS,
        help="also listen for hosts' LAN multicast beacons when looking for an entry host",
    )
    if timeout is not None:
        group.add_argument(
            "--timeout",
            type=_positive_float,
            metavar="SECONDS",
            default=argparse.SUPPRESS,
            help=f"deadline for the whole command (default: {timeout:g})",
        )
    group.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print JSON for scripts instead of a table",
    )


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value <= 24 * 3600:
        raise argparse.ArgumentTypeError(f"must be between 0 and 86400 seconds, got {text}")
    return value


def api_key(args: argparse.Namespace) -> str | None:
    """The API key: ``--api-key-env NAME`` (must be set and non-empty) or ``PAGLETS_API_KEY``."""
    name = option(args, "api_key_env", None)
    if name:
        value = os.environ.get(name, "")
        if not value:
            raise CommandError(f"--api-key-env {name}: that environment variable is unset or empty")
        return value
    return os.environ.get(API_KEY_ENV) or None


def run(prog: str, command: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run ``command`` and turn every failure into one line on stderr and an exit code."""
    from paglets.core.errors import AuthenticationError, PagletError

    try:
        return command(args)
    except CommandError as exc:
        _fail(prog, str(exc))
        return exc.code
    except AuthenticationError as exc:
        _fail(prog, f"{exc} (set {API_KEY_ENV} or use --api-key-env NAME)")
        return EXIT_USAGE
    except PagletError as exc:
        _fail(prog, str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        _fail(prog, "interrupted")
        return 130
    except BrokenPipeError:  # output piped into a program that stopped reading (| head)
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps the interpreter quiet at exit
        except OSError:
            pass
        return EXIT_OK


def _fail(prog: str, message: str) -> None:
    first = message.strip().splitlines()[0] if message.strip() else "failed"
    print(f"{prog}: {first}", file=sys.stderr, flush=True)


def dispatch(parser: Parser, argv: Sequence[str] | None, prog: str) -> int:
    """Parse ``argv`` with a parser whose subcommands set ``func``; run the chosen one."""
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:  # a group without its subcommand: show the group's help
        getattr(args, "group_parser", parser).print_help(sys.stderr)
        return EXIT_USAGE
    return run(getattr(args, "prog", prog), func, args)
