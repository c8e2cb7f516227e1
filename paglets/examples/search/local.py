"""Searching one host's files: ``grep`` (contents, like ripgrep) and ``find`` (names, like fd).

:func:`search` walks the requested paths and yields :class:`SearchEvent` values: ``match`` and
``context`` lines, ``file`` (a file name for ``-l`` and ``find``), ``count`` (``-c``) and ``error``
(a path that cannot be read). The walk skips hidden entries unless ``hidden``, honours ``.gitignore``,
``.ignore`` and ``.fdignore`` files unless ``no_ignore`` (gitignore syntax: ``*``, ``?``, ``**``,
``[...]``, a leading ``/`` anchors to the directory of the file, a trailing ``/`` matches directories
only, ``!`` re-includes), never descends into ``.git``, follows symbolic links only with ``follow``
(and never in a loop), and stops at ``max_depth``. ``globs`` (``!`` excludes) and ``types`` select
files by name. Files larger than ``max_file_size`` and binary files (a NUL byte in the first 8 KiB,
unless ``text``) are not searched by ``grep``.

Everything is bounded: at most ``max_results`` events per host, lines cut to :data:`MAX_LINE` characters,
and the search stops at its deadline (the summary says ``truncated``).
"""

from __future__ import annotations

import fnmatch
import os
import re
import stat
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

__all__ = [
    "FILE_TYPES",
    "MAX_LINE",
    "HostSearchSummary",
    "IgnoreRules",
    "SearchEvent",
    "SearchRequest",
    "compile_pattern",
    "search",
]

#: Characters of a matching line kept (longer lines end in ``...``).
MAX_LINE: Final = 500
#: Bytes looked at to tell a binary file.
BINARY_SNIFF: Final = 8192
#: The ignore files read in every directory.
IGNORE_FILES: Final = (".gitignore", ".ignore", ".fdignore")
#: Directories never entered.
ALWAYS_SKIPPED: Final = frozenset({".git", ".hg", ".svn"})

FILE_TYPES: Final[dict[str, tuple[str, ...]]] = {
    "c": ("*.c", "*.h"),
    "cpp": ("*.cpp", "*.cc", "*.cxx", "*.hpp", "*.hh", "*.hxx", "*.h"),
    "css": ("*.css", "*.scss"),
    "go": ("*.go",),
    "html": ("*.html", "*.htm"),
    "java": ("*.java",),
    "js": ("*.js", "*.mjs", "*.cjs", "*.jsx"),
    "json": ("*.json",),
    "md": ("*.md", "*.markdown"),
    "py": ("*.py", "*.pyi"),
    "python": ("*.py", "*.pyi"),
    "rs": ("*.rs",),
    "sh": ("*.sh", "*.bash", "*.zsh"),
    "text": ("*.txt", "*.text", "*.rst"),
    "toml": ("*.toml",),
    "ts": ("*.ts", "*.tsx"),
    "txt": ("*.txt",),
    "yaml": ("*.yaml", "*.yml"),
}


@dataclass(frozen=True, slots=True)
class SearchRequest:
    #: ``"grep"`` (contents) or ``"find"`` (names).
    mode: str = "grep"
    #: A regular expression (or a fixed string with ``fixed_strings``); ``find`` with "" lists everything.
    pattern: str = ""
    #: Where to search on each host ([]: the host's working directory).
    paths: list[str] = field(default_factory=list)
    ignore_case: bool = False
    smart_case: bool = False
    fixed_strings: bool = False
    word: bool = False
    #: File name globs; a leading ``!`` excludes.
    globs: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    types_not: list[str] = field(default_factory=list)
    hidden: bool = False
    no_ignore: bool = False
    follow: bool = False
    #: Directory levels below each path (0: unlimited).
    max_depth: int = 0
    #: Larger files are not searched (0: no limit).
    max_file_size: int = 10 << 20
    text: bool = False
    before: int = 0
    after: int = 0
    count: bool = False
    files_with_matches: bool = False
    files_without_match: bool = False
    #: Matching lines per file (0: all).
    max_count: int = 0
    only_matching: bool = False
    #: ``find``: match the whole path instead of the name.
    full_path: bool = False
    #: ``find``: file extensions (without the dot).
    extensions: list[str] = field(default_factory=list)
    #: ``find``: ``any``, ``file``, ``dir`` or ``symlink``.
    kind: str = "any"
    #: Events per host at most.
    max_results: int = 10_000
    #: Host names ([]: every online host).
    hosts: list[str] = field(default_factory=list)
    timeout: float = 60.0
    job_id: str = ""


@dataclass(frozen=True, slots=True)
class SearchEvent:
    #: ``match``, ``context``, ``file``, ``count`` or ``error``.
    kind: str
    host: str = ""
    path: str = ""
    line: int = 0
    column: int = 0
    text: str = ""
    count: int = 0


@dataclass(frozen=True, slots=True)
class HostSearchSummary:
    host: str = ""
    files_seen: int = 0
    files_searched: int = 0
    files_matched: int = 0
    matches: int = 0
    paths_matched: int = 0
    errors: int = 0
    #: True when the result limit or the deadline cut the search short.
    truncated: bool = False
    duration_seconds: float = 0.0


# --- ignore files -----------------------------------------------------------------------------------------


def _glob_regex(pattern: str) -> str:
    """A gitignore glob as a regular expression over ``/``-separated relative paths."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("/**", i) and i + 3 == len(pattern):
            out.append("/.*")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                out.append(re.escape(c))
                i += 1
            else:
                body = pattern[i + 1 : end].replace("\\", "\\\\")
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = end + 1
        elif c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


@dataclass(frozen=True, slots=True)
class _Rule:
    regex: re.Pattern[str]
    negated: bool
    dir_only: bool
    #: The directory (relative to the search root, ``/``-separated, "" for the root) of the ignore file.
    base: str


class IgnoreRules:
    """The ignore rules in force in one directory (its own files' rules after its parents')."""

    def __init__(self, rules: tuple[_Rule, ...] = ()) -> None:
        self._rules = rules

    def child(self, directory: Path, relative: str) -> IgnoreRules:
        """The rules for ``directory`` (at ``relative`` below the root): these plus its ignore files."""
        added: list[_Rule] = []
        for name in IGNORE_FILES:
            try:
                text = (directory / name).read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            for raw in text.splitlines()[:10_000]:
                line = raw.rstrip()
                if not line or line.startswith("#"):
                    continue
                negated = line.startswith("!")
                if negated:
                    line = line[1:]
                if line.startswith("\\"):
                    line = line[1:]
                dir_only = line.endswith("/")
                line = line.rstrip("/")
                if not line:
                    continue
                anchored = "/" in line
                body = _glob_regex(line.lstrip("/"))
                regex = re.compile(body if anchored else f"(?:.*/)?{body}")
                added.append(_Rule(regex, negated, dir_only, relative))
        return IgnoreRules(self._rules + tuple(added)) if added else self

    def ignored(self, relative: str, is_dir: bool) -> bool:
        result = False
        for rule in self._rules:
            if rule.dir_only and not is_dir:
                continue
            if rule.base:
                if not relative.startswith(rule.base + "/"):
                    continue
                tail = relative[len(rule.base) + 1 :]
            else:
                tail = relative
            if rule.regex.fullmatch(tail):
                result = not rule.negated
        return result


# --- selecting files --------------------------------------------------------------------------------------


class _NameFilter:
    def __init__(self, request: SearchRequest) -> None:
        self._include = [g for g in request.globs if not g.startswith("!")]
        self._exclude = [g[1:] for g in request.globs if g.startswith("!")]
        unknown = [t for t in (*request.types, *request.types_not) if t not in FILE_TYPES]
        if unknown:
            raise ValueError(f"unknown file type {unknown[0]!r} (known: {', '.join(sorted(FILE_TYPES))})")
        self._types = [g for t in request.types for g in FILE_TYPES[t]]
        self._types_not = [g for t in request.types_not for g in FILE_TYPES[t]]
        self._extensions = [e.lower().lstrip(".") for e in request.extensions]

    @staticmethod
    def _any(name: str, relative: str, globs: list[str]) -> bool:
        return any(fnmatch.fnmatch(relative if "/" in g else name, g) for g in globs)

    def wants(self, name: str, relative: str) -> bool:
        if self._include and not self._any(name, relative, self._include):
            return False
        if self._exclude and self._any(name, relative, self._exclude):
            return False
        if self._types and not self._any(name, relative, self._types):
            return False
        if self._types_not and self._any(name, relative, self._types_not):
            return False
        if not self._extensions:
            return True
        return "." in name and name.lower().rsplit(".", 1)[-1] in self._extensions

    def excludes_dir(self, name: str, relative: str) -> bool:
        return bool(self._exclude) and self._any(name, relative, self._exclude)


@dataclass(slots=True)
class _Entry:
    path: Path
    relative: str
    kind: str  # "file", "dir" or "symlink"
    size: int


def _walk(
    root: Path, request: SearchRequest, names: _NameFilter, errors: list[tuple[str, str]], deadline: float
) -> Iterator[_Entry]:
    """Every entry below ``root`` that the rules let through (directories are yielded too)."""
    seen: set[tuple[int, int]] = set()
    try:
        info = root.stat()
    except OSError as exc:
        errors.append((str(root), exc.strerror or str(exc)))
        return
    if not stat.S_ISDIR(info.st_mode):
        yield _Entry(root, root.name, "file", info.st_size)
        return
    seen.add((info.st_dev, info.st_ino))
    rules = IgnoreRules() if request.no_ignore else IgnoreRules().child(root, "")
    stack: list[tuple[Path, str, IgnoreRules, int]] = [(root, "", rules, 0)]
    while stack:
        if time.monotonic() > deadline:
            return
        directory, prefix, rules, depth = stack.pop()
        try:
            with os.scandir(directory) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as exc:
            errors.append((str(directory), exc.strerror or str(exc)))
            continue
        below: list[tuple[Path, str, IgnoreRules, int]] = []
        for entry in entries:
            name = entry.name
            relative = f"{prefix}{name}"
            if not request.hidden and name.startswith("."):
                continue
            try:
                is_link = entry.is_symlink()
                is_dir = entry.is_dir(follow_symlinks=request.follow)
            except OSError:
                continue
            if not request.no_ignore and rules.ignored(relative, is_dir):
                continue
            if is_dir:
                if name in ALWAYS_SKIPPED or names.excludes_dir(name, relative):
                    continue
                yield _Entry(Path(entry.path), relative, "symlink" if is_link else "dir", 0)
                if request.max_depth and depth + 1 >= request.max_depth:
                    continue
                try:
                    target = entry.stat(follow_symlinks=request.follow)
                except OSError:
                    continue
                key = (target.st_dev, target.st_ino)
                if key in seen:
                    continue  # a loop through symbolic links
                seen.add(key)
                child = Path(entry.path)
                child_rules = rules if request.no_ignore else rules.child(child, relative)
                below.append((child, relative + "/", child_rules, depth + 1))
            else:
                try:
                    size = entry.stat(follow_symlinks=True).st_size if not is_link else 0
                except OSError:
                    size = 0
                yield _Entry(Path(entry.path), relative, "symlink" if is_link else "file", size)
        stack.extend(reversed(below))


# --- the searches -----------------------------------------------------------------------------------------


def compile_pattern(request: SearchRequest) -> re.Pattern[str]:
    pattern = re.escape(request.pattern) if request.fixed_strings else request.pattern
    if request.word:
        pattern = rf"\b(?:{pattern})\b"
    ignore_case = request.ignore_case or (request.smart_case and request.pattern == request.pattern.lower())
    try:
        return re.compile(pattern, re.IGNORECASE if ignore_case else 0)
    except re.error as exc:
        raise ValueError(f"bad pattern {request.pattern!r}: {exc}") from None


def _cut(text: str) -> str:
    return text if len(text) <= MAX_LINE else text[: MAX_LINE - 3] + "..."


class _Limit(Exception):
    pass


def search(
    request: SearchRequest, host: str, *, deadline: float
) -> Iterator[SearchEvent | HostSearchSummary]:
    """The events of ``request`` on this host, then its :class:`HostSearchSummary` (module docstring).

    ``ValueError`` for a bad pattern or an unknown file type, before any event.
    """
    names = _NameFilter(request)
    regex = compile_pattern(request)
    began = time.monotonic()
    counts = {"files_seen": 0, "files_searched": 0, "files_matched": 0, "matches": 0, "paths": 0, "events": 0}
    truncated = False
    errors: list[tuple[str, str]] = []
    error_count = 0

    def emit(event: SearchEvent) -> SearchEvent:
        counts["events"] += 1
        if counts["events"] > request.max_results:
            raise _Limit
        return event

    paths = request.paths or ["."]
    try:
        for text in paths:
            root = Path(text).expanduser()
            shown = text.rstrip("/") or "/"
            is_dir = root.is_dir()
            for entry in _walk(root, request, names, errors, deadline):
                while errors:
                    path, error = errors.pop(0)
                    error_count += 1
                    yield emit(SearchEvent("error", host, path, text=error))
                if time.monotonic() > deadline:
                    truncated = True
                    break
                if not is_dir:
                    display = shown
                elif shown in (".", "./"):
                    display = entry.relative
                else:
                    display = f"{shown}/{entry.relative}"
                if request.mode == "find":
                    if not _find_wants(request, regex, names, entry):
                        continue
                    counts["paths"] += 1
                    yield emit(SearchEvent("file", host, display + ("/" if entry.kind == "dir" else "")))
                    continue
                if entry.kind != "file" or not names.wants(entry.path.name, entry.relative):
                    continue
                counts["files_seen"] += 1
                if request.max_file_size and entry.size > request.max_file_size:
                    continue
                for event in _grep_file(request, regex, entry.path, display, host, counts):
                    if event.kind == "error":
                        error_count += 1
                    yield emit(event)
            while errors:
                path, error = errors.pop(0)
                error_count += 1
                yield emit(SearchEvent("error", host, path, text=error))
    except _Limit:
        truncated = True
    yield HostSearchSummary(
        host=host,
        files_seen=counts["files_seen"],
        files_searched=counts["files_searched"],
        files_matched=counts["files_matched"],
        matches=counts["matches"],
        paths_matched=counts["paths"],
        errors=error_count,
        truncated=truncated or time.monotonic() > deadline,
        duration_seconds=time.monotonic() - began,
    )


def _find_wants(request: SearchRequest, regex: re.Pattern[str], names: _NameFilter, entry: _Entry) -> bool:
    if request.kind != "any" and entry.kind != request.kind:
        return False
    if entry.kind != "dir" and not names.wants(entry.path.name, entry.relative):
        return False
    if entry.kind == "dir" and (request.extensions or request.types or request.globs):
        return False
    subject = str(entry.path.resolve()) if request.full_path else entry.path.name
    return not request.pattern or regex.search(subject) is not None


def _grep_file(
    request: SearchRequest,
    regex: re.Pattern[str],
    path: Path,
    display: str,
    host: str,
    counts: dict[str, int],
) -> Iterator[SearchEvent]:
    try:
        with path.open("rb") as handle:
            head = handle.read(BINARY_SNIFF)
            if b"\0" in head and not request.text:
                return
            data = head + handle.read()
    except OSError as exc:
        yield SearchEvent("error", host, display, text=exc.strerror or str(exc))
        return
    counts["files_searched"] += 1
    lines = data.decode("utf-8", errors="replace").splitlines()
    found = 0
    before: deque[tuple[int, str]] = deque(maxlen=max(0, request.before))
    after_left = 0
    last_shown = 0
    quiet = request.count or request.files_with_matches or request.files_without_match
    for number, line in enumerate(lines, start=1):
        hit = regex.search(line)
        if hit is None:
            if after_left > 0 and not quiet:
                after_left -= 1
                last_shown = number
                yield SearchEvent("context", host, display, number, 0, _cut(line))
            elif request.before:
                before.append((number, line))
            continue
        found += 1
        counts["matches"] += 1
        if request.files_with_matches or request.files_without_match:
            break
        if not quiet:
            for context_number, context_line in before:
                if context_number > last_shown:
                    yield SearchEvent("context", host, display, context_number, 0, _cut(context_line))
            before.clear()
            if request.only_matching:
                for each in regex.finditer(line):
                    if each.group(0):
                        part = _cut(each.group(0))
                        yield SearchEvent("match", host, display, number, each.start() + 1, part)
            else:
                yield SearchEvent("match", host, display, number, hit.start() + 1, _cut(line))
            last_shown = number
            after_left = request.after
        if request.max_count and found >= request.max_count:
            break
    if found:
        counts["files_matched"] += 1
    if request.files_without_match:
        if not found:
            counts["paths"] += 1
            yield SearchEvent("file", host, display)
    elif request.files_with_matches:
        if found:
            counts["paths"] += 1
            yield SearchEvent("file", host, display)
    elif request.count and found:
        yield SearchEvent("count", host, display, count=found)
