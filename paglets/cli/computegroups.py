"""``paglets-compute-groups``: the job groups of a paglets mesh (the same as ``paglets jobs groups``)."""

from __future__ import annotations

from collections.abc import Sequence

from paglets.cli._common import Parser, dispatch

__all__ = ["build_parser", "main"]


def build_parser(prog: str = "paglets-compute-groups") -> Parser:
    from paglets.cli import jobs
    from paglets.cli.computeslots import add_options

    parser = Parser(prog=prog, description="job groups and how far each got")
    parser.add_argument("--group", default="", metavar="ID", help="only this group")
    add_options(parser)
    parser.set_defaults(func=jobs.groups, prog=prog)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``paglets-compute-groups``."""
    return dispatch(build_parser(), argv, "paglets-compute-groups")


if __name__ == "__main__":
    raise SystemExit(main())
