"""``paglets search grep|find`` (and ``paglets-search``): search the files of every host of the mesh.

A search paglet on the entry host clones itself to every online host (or the ``--host`` ones); each
clone searches its host's files and streams the results back in batches, which are printed here as
they come:

- ``grep PATTERN [PATH...]``: lines matching a regular expression, as ``host:path:line:column:text``
  (``host-path-line-text`` for context lines); ``-c`` prints ``host:path:count``, ``-l`` (and
  ``--files-without-match``) ``host:path``;
- ``find [PATTERN] [PATH...]``: names matching a regular expression (the whole path with
  ``--full-path``), as ``host:path`` (directories end in ``/``).

PATHs are searched on each host (default: the host's working directory). The options follow ripgrep
and fd: ``-i``, ``-S``, ``-F``, ``-w``, ``-g GLOB`` (``!GLOB`` excludes), ``-t TYPE``/``-T TYPE``
(``--type-list`` lists them), ``--hidden``, ``--no-ignore`` (``.gitignore``, ``.ignore`` and
``.fdignore`` are honoured otherwise), ``-A``/``-B``/``-C``, ``-m``, ``-o``, ``--max-depth``,
``--follow``, ``-e EXT``, ``--kind file|dir|symlink``. ``--jsonl`` prints one JSON object per result,
``--json`` one document at the end, ``--output FILE`` also writes the results to FILE as JSON lines.
Errors (a path that cannot be read) go to stderr as ``host: error: path: message``.

Exit codes: 0 something was found and every host answered; 1 nothing found, or a host is missing;
2 bad options (a bad pattern, an unknown type) or no entry host.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Any, Final

from paglets.cli._common import (
    EXIT_INCOMPLETE,
    EXIT_OK,
    CommandError,
    Parser,
    add_network_options,
    dispatch,
    option,
)

if TYPE_CHECKING:
    from paglets.examples.search.agent import SearchProgress
    from paglets.examples.search.local import SearchEvent

__all__ = ["add_commands", "build_parser", "main"]

DEFAULT_TIMEOUT: Final = 60.0
_KINDS: Final = {"f": "file", "file": "file", "d": "dir", "dir": "dir", "l": "symlink", "symlink": "symlink"}


def build_parser(prog: str = "paglets-search") -> Parser:
    parser = Parser(prog=prog, description=__doc__)
    parser.add_argument("--type-list", action="store_true", help="list the file types and exit")
    parser.set_defaults(func=_type_list, prog=prog)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    add_commands(sub, prog)
    return parser


def _common(leaf: argparse.ArgumentParser) -> None:
    leaf.add_argument("-i", "--ignore-case", action="store_true", help="match case-insensitively")
    leaf.add_argument(
        "-S", "--smart-case", action="store_true", help="ignore case unless PATTERN has capitals"
    )
    leaf.add_argument("-F", "--fixed-strings", action="store_true", help="PATTERN is a literal string")
    leaf.add_argument(
        "-g", "--glob", action="append", default=[], metavar="GLOB", help="only these names (!GLOB: not)"
    )
    leaf.add_argument(
        "-t", "--type", dest="types", action="append", default=[], metavar="TYPE", help="only TYPE"
    )
    leaf.add_argument("-T", "--type-not", action="append", default=[], metavar="TYPE", help="not TYPE")
    leaf.add_argument("-H", "--hidden", action="store_true", help="also hidden files and directories")
    leaf.add_argument(
        "-I", "--no-ignore", action="store_true", help="do not read .gitignore/.ignore/.fdignore"
    )
    leaf.add_argument("-L", "--follow", action="store_true", help="follow symbolic links")
    leaf.add_argument("-d", "--max-depth", type=int, default=0, metavar="N", help="directory levels (0: all)")
    leaf.add_argument(
        "--host", action="append", default=[], metavar="NAME", help="only this host (repeatable)"
    )
    leaf.add_argument(
        "--max-results-per-host", type=int, default=10_000, metavar="N", help="results per host"
    )
    leaf.add_argument("--output", default="", metavar="FILE", help="also write the results as JSON lines")
    leaf.add_argument("--jsonl", action="store_true", help="print one JSON object per result")
    leaf.add_argument(
        "--color", choices=("auto", "always", "never"), default="auto", help="highlight matches"
    )
    leaf.add_argument("--type-list", action="store_true", help="list the file types and exit")
    add_network_options(leaf, timeout=DEFAULT_TIMEOUT)


def add_commands(sub: Any, prog: str) -> None:
    """Add ``grep`` and ``find`` to the subparsers ``sub``."""
    text = "lines matching PATTERN in the files of every host"
    grep: Parser = sub.add_parser("grep", help=text, description=text)
    grep.add_argument("pattern", help="a regular expression (a literal string with -F)")
    grep.add_argument("paths", nargs="*", metavar="PATH", help="where to search on each host (default: .)")
    _common(grep)
    grep.add_argument("-w", "--word-regexp", action="store_true", help="whole words only")
    grep.add_argument("-A", "--after-context", type=int, default=0, metavar="N", help="lines after a match")
    grep.add_argument("-B", "--before-context", type=int, default=0, metavar="N", help="lines before a match")
    grep.add_argument("-C", "--context", type=int, default=0, metavar="N", help="lines around a match")
    grep.add_argument(
        "-n", "--line-number", action=argparse.BooleanOptionalAction, default=True, help="line:column"
    )
    grep.add_argument("-c", "--count", action="store_true", help="the number of matching lines per file")
    grep.add_argument(
        "-l", "--files-with-matches", action="store_true", help="only the names of matching files"
    )
    grep.add_argument("--files-without-match", action="store_true", help="only the names of other files")
    grep.add_argument("-m", "--max-count", type=int, default=0, metavar="N", help="matching lines per file")
    grep.add_argument("-o", "--only-matching", action="store_true", help="only the matching parts")
    grep.add_argument("-a", "--text", action="store_true", help="search binary files too")
    grep.add_argument(
        "--max-file-size", type=_size, default=10 << 20, metavar="SIZE", help="skip larger files (10M)"
    )
    grep.set_defaults(func=_run, prog=f"{prog} grep", mode="grep")

    text = "files and directories whose name matches PATTERN on every host"
    find: Parser = sub.add_parser("find", help=text, description=text)
    find.add_argument("pattern", nargs="?", default="", help="a regular expression (default: everything)")
    find.add_argument("paths", nargs="*", metavar="PATH", help="where to search on each host (default: .)")
    _common(find)
    find.add_argument(
        "-p", "--full-path", action="store_true", help="match the whole path, not only the name"
    )
    find.add_argument(
        "-e", "--extension", action="append", default=[], metavar="EXT", help="only this extension"
    )
    find.add_argument(
        "--kind",
        choices=("any", "file", "dir", "symlink", "f", "d", "l"),
        default="any",
        help="only files, directories or symbolic links",
    )
    find.set_defaults(func=_run, prog=f"{prog} find", mode="find")


def _size(text: str) -> int:
    from paglets.cli._jobs import parse_size

    return parse_size(text)


def main(argv: Sequence[str] | None = None) -> int:
    """``paglets-search``."""
    return dispatch(build_parser(), argv, "paglets-search")


def _type_list(args: argparse.Namespace) -> int:
    from paglets.examples.search.local import FILE_TYPES

    if not getattr(args, "type_list", False):
        raise CommandError("choose grep or find (see --help)")
    for name, globs in sorted(FILE_TYPES.items()):
        print(f"{name}: {', '.join(globs)}")
    return EXIT_OK


def _request(args: argparse.Namespace, hosts: list[str], timeout: float) -> Any:
    from paglets.examples.search.local import FILE_TYPES, SearchRequest

    for name in (*args.types, *args.type_not):
        if name not in FILE_TYPES:
            raise CommandError(f"unknown file type {name!r} (see --type-list)")
    for name in ("max_depth", "max_results_per_host"):
        if getattr(args, name) < 0:
            raise CommandError(f"--{name.replace('_', '-')} must be 0 or more")
    grep = args.mode == "grep"
    context = getattr(args, "context", 0)
    return SearchRequest(
        mode=args.mode,
        pattern=args.pattern,
        paths=list(args.paths),
        ignore_case=args.ignore_case,
        smart_case=args.smart_case,
        fixed_strings=args.fixed_strings,
        word=getattr(args, "word_regexp", False),
        globs=list(args.glob),
        types=list(args.types),
        types_not=list(args.type_not),
        hidden=args.hidden,
        no_ignore=args.no_ignore,
        follow=args.follow,
        max_depth=args.max_depth,
        max_file_size=getattr(args, "max_file_size", 0),
        text=getattr(args, "text", False),
        before=max(getattr(args, "before_context", 0), context) if grep else 0,
        after=max(getattr(args, "after_context", 0), context) if grep else 0,
        count=getattr(args, "count", False),
        files_with_matches=getattr(args, "files_with_matches", False),
        files_without_match=getattr(args, "files_without_match", False),
        max_count=max(0, getattr(args, "max_count", 0)),
        only_matching=getattr(args, "only_matching", False),
        full_path=getattr(args, "full_path", False),
        extensions=list(getattr(args, "extension", [])),
        kind=_KINDS.get(getattr(args, "kind", "any"), "any"),
        max_results=args.max_results_per_host or 10_000,
        hosts=hosts,
        timeout=max(1.0, timeout - 2.0),
    )


def _run(args: argparse.Namespace) -> int:
    from paglets.cli._jobs import create_paglet, dispose_quietly, poll, remote_host
    from paglets.cli._services import connect
    from paglets.examples.search.agent import (
        CANCEL_SEARCH,
        READ_SEARCH,
        SEARCH_CLASS,
        START_SEARCH,
        SearchReadRequest,
    )
    from paglets.examples.search.local import compile_pattern
    from paglets.patterns import OperationClient

    if args.type_list:
        return _type_list(args)
    timeout = float(option(args, "timeout", DEFAULT_TIMEOUT))
    request = _request(args, [], timeout)
    try:
        regex = compile_pattern(request)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    deadline = time.monotonic() + timeout
    client, entry = connect(args, timeout)
    hosts = [remote_host(entry, name)[0] for name in args.host]
    request = _request(args, hosts, timeout)
    as_json = bool(option(args, "json", False))
    printer = _Printer(args, regex, quiet=as_json)
    proxy = create_paglet(client, entry.url, SEARCH_CLASS, timeout=min(30.0, timeout))
    job = OperationClient(proxy)
    cursor = 0
    try:
        try:
            job.call(START_SEARCH, request, timeout=min(30.0, timeout))
        except Exception as exc:
            raise CommandError(str(exc).splitlines()[0]) from None

        def read(limit: float) -> SearchProgress:
            return job.call(READ_SEARCH, SearchReadRequest(cursor), timeout=limit)

        def show(progress: SearchProgress) -> None:
            nonlocal cursor
            cursor = progress.cursor
            printer.add(progress.events)

        try:
            final = poll(
                read,
                lambda p: p.status != "running" and not p.more and not p.events,
                deadline=deadline,
                on_reply=show,
            )
        except (TimeoutError, KeyboardInterrupt) as exc:
            try:
                final = job.call(CANCEL_SEARCH, timeout=5.0)
            except Exception:
                raise CommandError(f"timed out after {timeout:g} s", EXIT_INCOMPLETE) from None
            if isinstance(exc, KeyboardInterrupt):
                raise
    finally:
        dispose_quietly(proxy)
        printer.close()
    return _report(args, final, printer)


def _report(args: argparse.Namespace, final: SearchProgress, printer: _Printer) -> int:
    from paglets.cli import _render
    from paglets.serialization.codec import dataclass_to_wire

    found = printer.results
    if option(args, "json", False):
        _render.print_json(
            {
                "job_id": final.job_id,
                "status": final.status,
                "error": final.error,
                "hosts": final.hosts,
                "events": [dataclass_to_wire(e) for e in printer.kept],
                "summaries": {h: dataclass_to_wire(s) for h, s in final.summaries.items()},
                "errors": final.errors,
            }
        )
    for host, error in sorted(final.errors.items()):
        print(f"{host}: missing: {error}", file=sys.stderr)
    truncated = sorted(h for h, s in final.summaries.items() if s.truncated)
    if truncated:
        print(
            f"note: results cut short on {', '.join(truncated)} (time or --max-results-per-host)",
            file=sys.stderr,
        )
    searched = sum(s.files_searched for s in final.summaries.values())
    what = "files searched" if args.mode == "grep" else "hosts"
    count = searched if args.mode == "grep" else len(final.summaries)
    print(
        f"{args.prog}: {found} result{'s' if found != 1 else ''} from {len(final.summaries)} of "
        f"{len(final.hosts)} hosts ({count} {what}, {final.elapsed_seconds:.1f}s)",
        file=sys.stderr,
    )
    if final.status not in ("done",) or final.errors:
        if final.status != "done":
            print(f"{args.prog}: the search {final.status}: {final.error}", file=sys.stderr)
        return EXIT_INCOMPLETE
    return EXIT_OK if found else EXIT_INCOMPLETE


class _Printer:
    """Prints results as they arrive (text, or JSON lines) and keeps them for ``--json``."""

    def __init__(self, args: argparse.Namespace, regex: Any, *, quiet: bool) -> None:
        self._args = args
        self._regex = regex
        self._quiet = quiet
        self.kept: list[SearchEvent] = []
        self.results = 0
        tty = sys.stdout.isatty()
        self._color = args.color == "always" or (args.color == "auto" and tty)
        self._file: IO[str] | None = None
        if args.output:
            try:
                self._file = open(args.output, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
            except OSError as exc:
                raise CommandError(f"cannot write {args.output}: {exc.strerror or exc}") from None

    def add(self, events: list[SearchEvent]) -> None:
        from paglets.serialization.codec import dataclass_to_wire

        out: list[str] = []
        for event in events:
            if event.kind != "error" and event.kind != "context":
                self.results += 1
            if self._file is not None:
                self._file.write(json.dumps(dataclass_to_wire(event), sort_keys=True) + "\n")
            if self._quiet:
                self.kept.append(event)
                continue
            if event.kind == "error":
                print(f"{event.host}: error: {event.path}: {event.text}", file=sys.stderr)
            elif self._args.jsonl:
                out.append(json.dumps(dataclass_to_wire(event), sort_keys=True))
            else:
                out.append(self._line(event))
        if out:
            sys.stdout.write("\n".join(out) + "\n")
            sys.stdout.flush()

    def _line(self, event: SearchEvent) -> str:
        if event.kind == "match":
            text = self._highlight(event.text) if self._color else event.text
            if getattr(self._args, "line_number", True):
                return f"{event.host}:{event.path}:{event.line}:{event.column}:{text}"
            return f"{event.host}:{event.path}:{text}"
        if event.kind == "context":
            if getattr(self._args, "line_number", True):
                return f"{event.host}-{event.path}-{event.line}-{event.text}"
            return f"{event.host}-{event.path}-{event.text}"
        if event.kind == "count":
            return f"{event.host}:{event.path}:{event.count}"
        return f"{event.host}:{event.path}"

    def _highlight(self, text: str) -> str:
        marked: str = self._regex.sub(lambda m: f"\x1b[1;31m{m.group(0)}\x1b[0m", text)
        return marked

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


if __name__ == "__main__":
    raise SystemExit(main())
