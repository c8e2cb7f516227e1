"""Reading and checking launch files: bounded reads, TOML parsing, typed keys with precise errors.

Every error is a :class:`~paglets.core.errors.HostError` whose message reads
``"<file>: <key path>: <problem>"``; key paths join table names with dots and index arrays from 0 in
file order (``resident_services[2].lifecycle``). Values in messages are shown TOML-style: strings in
double quotes, other scalars with their TOML type (``3 (an integer)``), tables and arrays by type only.

Bounds: a file is read only if it is a regular file of at most ``MAX_LAUNCH_CONFIG_BYTES`` (the open is
non-blocking, so a FIFO given by mistake cannot hang the host); each array of entries holds at most
``MAX_LAUNCH_ENTRIES`` tables; names (ids, versions, service names) are at most ``MAX_NAME`` characters;
TOML nested so deeply that the parser runs out of stack is an error like any other syntax error.
"""

from __future__ import annotations

import json
import math
import os
import stat
import tomllib
from datetime import date, datetime
from datetime import time as time_of_day
from enum import Enum
from importlib import resources
from pathlib import Path
from typing import Any, Final, TypeVar

from paglets.core._ids import MAX_AGENT_ID_LENGTH, is_agent_id
from paglets.core.errors import HostError
from paglets.serialization.codec import MAX_QUALIFIED_NAME

__all__ = [
    "BUNDLED_LAUNCH_CONFIG",
    "MAX_LAUNCH_CONFIG_BYTES",
    "MAX_LAUNCH_ENTRIES",
    "MAX_NAME",
    "TomlTable",
    "bundled_launch_config_text",
    "decode_text",
    "launch_info",
    "parse_toml",
    "quoted",
    "read_file",
    "read_launch_table",
]

#: Largest launch file read. A hand-written list of services and agents is a few KiB; the bound keeps a
#: wrong path (a log, a disk image) from being read into memory.
MAX_LAUNCH_CONFIG_BYTES: Final = 1024 * 1024

#: Most entries in ``resident_services`` and in ``startup_agents`` (each). Each one is a paglet the host
#: starts or advertises at boot; more than this is a generated file gone wrong.
MAX_LAUNCH_ENTRIES: Final = 1024

#: Longest ``demo_config_id``, ``demo_config_version`` or ``service`` value (real ones are short names).
MAX_NAME: Final = 256

#: Resource name of the template bundled in ``paglets.config``.
BUNDLED_LAUNCH_CONFIG: Final = "default_launch.toml"


#: Keys of the ``[launch]`` table.
LAUNCH_KEYS: Final = frozenset({"demo_config_id", "demo_config_version", "sync_demo_config"})

E = TypeVar("E", bound=Enum)


def bundled_launch_config_text() -> str:
    """The template bundled with paglets (``paglets/config/default_launch.toml``)."""
    return resources.files("paglets.config").joinpath(BUNDLED_LAUNCH_CONFIG).read_text("utf-8")


def read_file(path: Path) -> bytes | None:
    """The bytes of the regular file ``path`` (bounded, see the module docstring); None if it is missing."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise HostError(f"{path}: cannot open launch config: {exc.strerror or exc}") from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise HostError(f"{path}: launch config is not a regular file")
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_LAUNCH_CONFIG_BYTES:
            chunk = os.read(fd, MAX_LAUNCH_CONFIG_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise HostError(f"{path}: cannot read launch config: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)
    if size > MAX_LAUNCH_CONFIG_BYTES:
        raise HostError(f"{path}: larger than MAX_LAUNCH_CONFIG_BYTES ({MAX_LAUNCH_CONFIG_BYTES} bytes)")
    return b"".join(chunks)


def decode_text(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HostError(f"{source}: not UTF-8 text (bad byte at offset {exc.start})") from exc


def parse_toml(text: str, source: str) -> dict[str, Any]:
    if len(text) > MAX_LAUNCH_CONFIG_BYTES:
        raise HostError(f"{source}: larger than MAX_LAUNCH_CONFIG_BYTES ({MAX_LAUNCH_CONFIG_BYTES} bytes)")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise HostError(f"{source}: invalid TOML: {exc}") from exc
    except RecursionError as exc:  # tomllib recurses on nested arrays and inline tables
        raise HostError(f"{source}: invalid TOML: values nested too deeply") from exc


def launch_info(top: TomlTable) -> tuple[str | None, str | None, bool]:
    """``(demo_config_id, demo_config_version, sync_demo_config)`` from the ``[launch]`` table of ``top``."""
    launch = TomlTable(top.source, "launch", top.table("launch"))
    launch.check_keys(LAUNCH_KEYS)
    sync = launch.boolean("sync_demo_config")
    return (
        launch.string("demo_config_id"),
        launch.string("demo_config_version"),
        True if sync is None else sync,
    )


def read_launch_table(text: str, source: str) -> tuple[str | None, str | None, bool]:
    """:func:`launch_info` of a whole file's text, checking nothing outside ``[launch]``."""
    return launch_info(TomlTable(source, "", parse_toml(text, source)))


def _kind(value: object) -> str:
    """The TOML name of a value's type, with its article."""
    kinds: tuple[tuple[type, str], ...] = (
        (bool, "a boolean"),
        (int, "an integer"),
        (float, "a float"),
        (str, "a string"),
        (dict, "a table"),
        (list, "an array"),
        (datetime, "a date-time"),
        (date, "a date"),
        (time_of_day, "a time"),
    )
    for type_, name in kinds:
        if isinstance(value, type_):
            return name
    return f"a {type(value).__name__}"


def _show(value: object) -> str:
    """A short rendering of a bad value for an error message."""
    if isinstance(value, str):
        return json.dumps(value if len(value) <= 80 else value[:80] + "...")
    if isinstance(value, (dict, list)):
        return _kind(value)
    return f"{value!r} ({_kind(value)})"


def quoted(names: set[str] | list[str]) -> str:
    """Names in double quotes, sorted, comma-separated."""
    return ", ".join(json.dumps(name) for name in sorted(names))


def _dotted(text: str) -> bool:
    return bool(text) and all(part.isidentifier() for part in text.split("."))


class TomlTable:
    """One TOML table being checked: reads typed keys, builds errors naming the file and the key path.

    Readers return None for an absent key; a present key of the wrong type or value raises.
    """

    __slots__ = ("data", "source", "where")

    def __init__(self, source: str, where: str, data: dict[str, Any]) -> None:
        self.source = source
        self.where = where
        self.data = data

    def error(self, key: str | None, problem: str) -> HostError:
        path = self.where if key is None else f"{self.where}.{key}" if self.where else key
        return HostError(f"{self.source}: {path}: {problem}" if path else f"{self.source}: {problem}")

    def check_keys(self, allowed: frozenset[str]) -> None:
        unknown = set(self.data) - allowed
        if unknown:
            word = "key" if len(unknown) == 1 else "keys"
            listed = ", ".join(sorted(allowed))
            raise self.error(None, f"unknown {word} {quoted(unknown)} (allowed: {listed})")

    def _typed(self, key: str, types: type | tuple[type, ...], expected: str) -> Any:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, types) or (isinstance(value, bool) and types is not bool):
            raise self.error(key, f"expected {expected}, got {_show(value)}")
        return value

    def string(self, key: str) -> str | None:
        value: str | None = self._typed(key, str, "a string")
        if value is not None and (not value.strip() or len(value) > MAX_NAME):
            raise self.error(key, f"expected a non-empty string of at most {MAX_NAME} characters")
        return value

    def boolean(self, key: str) -> bool | None:
        value: bool | None = self._typed(key, bool, "true or false")
        return value

    def table(self, key: str) -> dict[str, Any]:
        value: dict[str, Any] | None = self._typed(key, dict, "a table")
        return {} if value is None else value

    def seconds(self, key: str) -> float | None:
        value: float | None = self._typed(key, (int, float), "a number of seconds")
        if value is None:
            return None
        if not math.isfinite(value) or value < 0:
            raise self.error(key, f"expected a finite number of seconds >= 0, got {value!r}")
        return float(value)

    def choice(self, key: str, enum_cls: type[E]) -> E | None:
        value = self.data.get(key)
        if value is None:
            return None
        for member in enum_cls:
            if isinstance(value, str) and value == member.value:
                return member
        allowed = " or ".join(json.dumps(str(member.value)) for member in enum_cls)
        raise self.error(key, f"expected {allowed}, got {_show(value)}")

    def agent_id(self, key: str) -> str | None:
        value: str | None = self._typed(key, str, "a string")
        if value is not None and not is_agent_id(value):
            raise self.error(
                key,
                f"invalid agent id {_show(value)}: use 1 to {MAX_AGENT_ID_LENGTH} characters from "
                "A-Z a-z 0-9 . _ : -, starting with a letter or digit",
            )
        return value

    def class_name(self, key: str) -> str:
        """A required ``"module.path:Qual.Name"`` (format only: nothing is imported)."""
        value: str | None = self._typed(key, str, 'a class name "package.module:ClassName"')
        if value is None:
            raise self.error(key, 'missing (the paglet class, e.g. class = "package.module:ClassName")')
        module, colon, qualname = value.partition(":")
        if len(value) > MAX_QUALIFIED_NAME or not colon or not _dotted(module) or not _dotted(qualname):
            raise self.error(key, f'expected "package.module:ClassName", got {_show(value)}')
        return value

    def entries(self, key: str) -> list[TomlTable]:
        """The tables of an array of tables (``[[key]]``), each with its indexed key path."""
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise self.error(key, f"expected an array of tables ([[{key}]]), got {_show(value)}")
        if len(value) > MAX_LAUNCH_ENTRIES:
            raise self.error(key, f"more than MAX_LAUNCH_ENTRIES ({MAX_LAUNCH_ENTRIES}) entries")
        return [TomlTable(self.source, f"{key}[{index}]", item) for index, item in enumerate(value)]
