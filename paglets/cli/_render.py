"""Output of the commands: rich tables for people, JSON for scripts, and the value formats they share.

Tables never have blank cells (a missing value prints as ``-``), every value carries its unit (``12.5%``,
``1.2 GB``, ``3.4s``), and numbers are right-aligned. Colour is used only when stdout is a terminal and
``NO_COLOR`` is unset; output that is not a terminal is laid out for a wide page rather than cut.
rich is imported on the first table, never by ``--help``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

__all__ = [
    "bytes_text",
    "cell",
    "duration_text",
    "percent_text",
    "print_json",
    "print_section",
    "print_table",
    "when_text",
]

#: Width used when stdout is not a terminal (files, pipes): wide enough that tables are not cut.
PIPE_WIDTH: Final = 200

_console: list[Any] = []


def console() -> Any:
    """The rich ``Console`` for stdout (made on first use)."""
    if not _console:
        from rich.console import Console

        tty = sys.stdout.isatty()
        _console.append(
            Console(
                no_color=not tty or bool(os.environ.get("NO_COLOR")),
                width=None if tty else PIPE_WIDTH,
                highlight=False,
                soft_wrap=False,
            )
        )
    return _console[0]


def bytes_text(value: float | None) -> str:
    """``512 B``, ``1.5 KB`` ... ``2.0 PB`` (powers of 1024); ``-`` for None."""
    if value is None:
        return "-"
    amount = float(max(0.0, value))
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if amount < 1024.0:
            return f"{int(amount)} B" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024.0
    return f"{amount:.1f} PB"


def percent_text(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}%"


def duration_text(seconds: float | None) -> str:
    """``3.2s``, ``4.5m``, ``2.0h``, ``3.1d``."""
    if seconds is None:
        return "-"
    value = max(0.0, float(seconds))
    if value < 60:
        return f"{value:.1f}s"
    if value < 3600:
        return f"{value / 60:.1f}m"
    if value < 86400:
        return f"{value / 3600:.1f}h"
    return f"{value / 86400:.1f}d"


def when_text(timestamp: float | None) -> str:
    """A wall-clock time in the local zone, ``YYYY-MM-DD HH:MM:SS``."""
    if not timestamp:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def cell(value: object) -> str:
    """A table cell: never empty."""
    if value is None:
        return "-"
    text = str(value)
    return text if text.strip() else "-"


def print_table(
    title: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    right: Iterable[str] = (),
    wrap: Iterable[str] = (),
) -> None:
    """A titled table; columns in ``right`` are right-aligned, those in ``wrap`` may wrap."""
    from rich import box
    from rich.table import Table

    right_set, wrap_set = set(right), set(wrap)
    table = Table(title=title, box=box.SIMPLE_HEAVY, title_justify="left", title_style="bold")
    for column in columns:
        table.add_column(
            column,
            justify="right" if column in right_set else "left",
            no_wrap=column not in wrap_set,
            overflow="fold" if column in wrap_set else "ellipsis",
        )
    for row in rows:
        table.add_row(*(cell(value) for value in row))
    console().print(table)


def print_section(title: str, lines: Mapping[str, str] | Iterable[str], *, style: str = "bold") -> None:
    """A heading and ``- key: value`` lines (nothing when there are none)."""
    items = [f"{k}: {v}" for k, v in sorted(lines.items())] if isinstance(lines, Mapping) else list(lines)
    if not items:
        return
    out = console()
    out.print(f"[{style}]{title}[/{style}]")
    for item in items:
        out.print(f"- {item}", markup=False)


def print_line(text: str) -> None:
    console().print(text, markup=False)


def print_json(payload: Any) -> None:
    """Sorted-key, indented JSON on stdout (plain ``json``, no colour, so pipes get clean text)."""
    sys.stdout.write(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()
