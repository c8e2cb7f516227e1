"""Launch configuration: ``launch.toml``, the ``AUTO_START`` marker, and syncing with the bundled template.

A host's launch file (default ``~/.paglets/launch.toml``) lists the resident services the host keeps
available and the paglets it starts with it (docs/operations/launch.md). This module *loads and
resolves* that file; the host does the starting.

**File format** (TOML; every table and key is optional unless marked)::

    [launch]
    demo_config_id = "paglets-default-launch"   # identifies the bundled template (string)
    demo_config_version = "1"                   # its version (string)
    sync_demo_config = true                     # false: never replace this file

    [[resident_services]]      # class (required), service, enabled, agent_id, singleton,
                               # lifecycle ("lazy"|"eager"), scope ("local"|"mesh"), idle_timeout (>= 0),
                               # state (table), init (any value)
    [[startup_agents]]         # class (required), enabled, agent_id, singleton, state (table), init

**Loading** (:func:`load_launch_config`, :func:`parse_launch_config`) checks the syntax and every key but
imports nothing: unknown keys, wrong types, out-of-range values, a malformed ``class`` (it must read
``"module.path:Qual.Name"``), a malformed agent id and ``use = ...`` aliases (a paglets 2.0 shorthand we
do not support) are all errors. Enum strings become :class:`~paglets.core.runtime_values.ResidentLifecycle`
and :class:`~paglets.core.runtime_values.ServiceScope`. A key that is absent loads as ``None`` ("take
the class's default"), so the resolver can tell "not set" from "set to the default value". Bounds
(file size, entries per array) are in :mod:`paglets.config._launch_file`.

**Resolving** (:func:`resolve_resident_services`, :func:`resolve_startup_agents`) imports each enabled
entry's class (it must be a ``Paglet`` subclass) and merges the entry over what the class declares
(``RESIDENT_SERVICES`` / ``AUTO_START``): each key set in the file wins; ``state`` is merged key by key
(shallow) over the declared state, and the result must name only fields of the paglet's ``State`` and
decode into it. A resident service's spec is picked by ``service`` (the contract name), which is required
only when the class declares several; its agent id defaults to ``spec.agent_id`` or
``"service.<contract name>"``. A startup agent's id defaults to ``AUTO_START.agent_id`` (None: the host
makes a fresh one). Agent ids must be unique within each list. By default the first bad entry raises;
with ``on_error`` each bad entry is reported and skipped, so a host can start without it (failed
entries never stop the host).

**Errors.** Every problem raises :class:`~paglets.core.errors.HostError` whose message starts with the
file and the key path, e.g. ``launch.toml: resident_services[2].lifecycle: expected "lazy" or "eager",
got "sometimes"``. Array indexes count from 0, in file order.

**Syncing** (:func:`sync_launch_config`, run by the CLI before the host starts) copies or updates the
user's file from the template bundled in this package; its rules are in
:mod:`paglets.config._launch_sync`.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

from paglets.config._launch_file import (
    BUNDLED_LAUNCH_CONFIG,
    MAX_LAUNCH_CONFIG_BYTES,
    MAX_LAUNCH_ENTRIES,
    TomlTable,
    bundled_launch_config_text,
    decode_text,
    launch_info,
    parse_toml,
    quoted,
    read_file,
)
from paglets.config._launch_sync import (
    MAX_BACKUP_CANDIDATES,
    LaunchConfigSyncResult,
    console_prompt,
    sync_launch_config,
    sync_launch_config_result,
)
from paglets.core._ids import is_agent_id
from paglets.core.agent import Paglet
from paglets.core.errors import HostError, PagletError, SerializationError
from paglets.core.runtime_values import ResidentLifecycle, ServiceScope
from paglets.serialization.codec import dataclass_from_wire, qualified_name, resolve_qualified_name
from paglets.services.contracts import ServiceContract
from paglets.services.resident import RESIDENT_SERVICE_METADATA_KEY, ResidentServiceSpec

__all__ = [
    "BUNDLED_LAUNCH_CONFIG",
    "MAX_BACKUP_CANDIDATES",
    "MAX_LAUNCH_CONFIG_BYTES",
    "MAX_LAUNCH_ENTRIES",
    "AutoStartSpec",
    "LaunchConfig",
    "LaunchConfigSyncResult",
    "ResidentServiceConfig",
    "ResolvedResidentService",
    "ResolvedStartupAgent",
    "StartupAgentConfig",
    "bundled_launch_config_text",
    "console_prompt",
    "default_launch_config_path",
    "load_launch_config",
    "parse_launch_config",
    "resolve_resident_services",
    "resolve_startup_agents",
    "sync_launch_config",
    "sync_launch_config_result",
]

_TOP_KEYS: Final = frozenset({"launch", "resident_services", "startup_agents"})
_STARTUP_KEYS: Final = frozenset({"class", "enabled", "agent_id", "singleton", "state", "init"})
_RESIDENT_KEYS: Final = _STARTUP_KEYS | {"service", "lifecycle", "scope", "idle_timeout"}

_T = TypeVar("_T")


# --- value types -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AutoStartSpec:
    """What a paglet class declares as ``AUTO_START``: defaults for its ``[[startup_agents]]`` entries.

    ``agent_id`` fixes the paglet's id (None: a fresh one); ``singleton`` (with an id) reuses an existing
    paglet instead of creating a second; ``state`` is a state wire dict; ``init`` goes to
    ``on_creation``; ``enabled=False`` keeps the class from starting unless its entry says
    ``enabled = true``.
    """

    agent_id: str | None = None
    singleton: bool = True
    state: dict[str, Any] = field(default_factory=dict)
    init: Any = None
    enabled: bool = True

    def __post_init__(self) -> None:
        if self.agent_id is not None and not is_agent_id(self.agent_id):
            raise ValueError(f"agent_id must be None or a valid agent id, got {self.agent_id!r}")
        if not isinstance(self.singleton, bool) or not isinstance(self.enabled, bool):
            raise TypeError("singleton and enabled must be bools")
        if not isinstance(self.state, dict) or not all(isinstance(k, str) for k in self.state):
            raise TypeError("state must be a dict with string keys (a state wire dict)")


@dataclass(frozen=True, slots=True)
class ResidentServiceConfig:
    """One ``[[resident_services]]`` entry as written (None: not set, the class's spec decides)."""

    class_name: str
    service: str | None = None
    enabled: bool = True
    agent_id: str | None = None
    singleton: bool | None = None
    lifecycle: ResidentLifecycle | None = None
    scope: ServiceScope | None = None
    idle_timeout: float | None = None
    state: dict[str, Any] = field(default_factory=dict)
    init: Any = None


@dataclass(frozen=True, slots=True)
class StartupAgentConfig:
    """One ``[[startup_agents]]`` entry as written (None: not set, the class's ``AUTO_START`` decides)."""

    class_name: str
    enabled: bool | None = None
    agent_id: str | None = None
    singleton: bool | None = None
    state: dict[str, Any] = field(default_factory=dict)
    init: Any = None


@dataclass(frozen=True, slots=True)
class LaunchConfig:
    """A loaded launch file (``path`` is where it came from; it prefixes every resolution error)."""

    path: Path
    demo_config_id: str | None = None
    demo_config_version: str | None = None
    sync_demo_config: bool = True
    resident_services: tuple[ResidentServiceConfig, ...] = ()
    startup_agents: tuple[StartupAgentConfig, ...] = ()


@dataclass(frozen=True, slots=True)
class ResolvedResidentService:
    """A resident service ready for the host: the entry merged over the class's spec.

    ``class_name`` / ``state_class_name`` are the canonical ``module:QualName`` names (what the service
    record metadata and the inactive records carry), whatever alias the file used.
    """

    agent_class: type[Paglet[Any]]
    class_name: str
    state_class_name: str
    spec: ResidentServiceSpec
    contract: ServiceContract
    agent_id: str
    lifecycle: ResidentLifecycle
    scope: ServiceScope
    idle_timeout: float
    singleton: bool
    state: dict[str, Any]
    init: Any = None

    @property
    def service_name(self) -> str:
        return self.contract.name

    def record_metadata(self) -> dict[str, Any]:
        """The ``"paglets.resident_service"`` metadata entry of this service's record."""
        return {
            RESIDENT_SERVICE_METADATA_KEY: {
                "agent_id": self.agent_id,
                "agent_class_name": self.class_name,
                "lifecycle": self.lifecycle.value,
                "idle_timeout": self.idle_timeout,
            }
        }


@dataclass(frozen=True, slots=True)
class ResolvedStartupAgent:
    """A startup paglet ready for the host: the entry merged over the class's ``AUTO_START``.

    ``agent_id`` None means "create with a fresh id". With an id and ``singleton``, the host skips the
    agent when it is active, activates it when inactive, and creates it otherwise.
    """

    agent_class: type[Paglet[Any]]
    class_name: str
    state_class_name: str
    agent_id: str | None
    singleton: bool
    state: dict[str, Any]
    init: Any = None
    auto_start: AutoStartSpec | None = None


# --- loading -----------------------------------------------------------------------------------------------


def default_launch_config_path() -> Path:
    """``~/.paglets/launch.toml``."""
    return Path.home() / ".paglets" / "launch.toml"


def load_launch_config(path: str | os.PathLike[str]) -> LaunchConfig:
    """Read and check a launch file (see the module docstring); ``HostError`` names file and key."""
    target = Path(path)
    data = read_file(target)
    if data is None:
        raise HostError(f"{target}: launch config file not found")
    return parse_launch_config(decode_text(data, str(target)), path=target)


def parse_launch_config(text: str, *, path: str | os.PathLike[str] = "launch.toml") -> LaunchConfig:
    """Check launch-file ``text``; ``path`` is only used to name the file in errors and in the result."""
    source = str(path)
    top = TomlTable(source, "", parse_toml(text, source))
    top.check_keys(_TOP_KEYS)
    info = launch_info(top)
    residents = tuple(_resident_entry(t) for t in top.entries("resident_services"))
    agents = tuple(_startup_entry(t) for t in top.entries("startup_agents"))
    return LaunchConfig(Path(path), *info, residents, agents)


def _entry_common(entry: TomlTable, allowed: frozenset[str]) -> tuple[str, str | None, bool | None]:
    if "use" in entry.data:
        raise entry.error(
            "use",
            '"use" aliases are not supported; name the paglet class instead, '
            'e.g. class = "package.module:ClassName"',
        )
    entry.check_keys(allowed)
    return entry.class_name("class"), entry.agent_id("agent_id"), entry.boolean("singleton")


def _resident_entry(entry: TomlTable) -> ResidentServiceConfig:
    class_name, agent_id, singleton = _entry_common(entry, _RESIDENT_KEYS)
    enabled = entry.boolean("enabled")
    return ResidentServiceConfig(
        class_name=class_name,
        service=entry.string("service"),
        enabled=True if enabled is None else enabled,
        agent_id=agent_id,
        singleton=singleton,
        lifecycle=entry.choice("lifecycle", ResidentLifecycle),
        scope=entry.choice("scope", ServiceScope),
        idle_timeout=entry.seconds("idle_timeout"),
        state=entry.table("state"),
        init=entry.data.get("init"),
    )


def _startup_entry(entry: TomlTable) -> StartupAgentConfig:
    class_name, agent_id, singleton = _entry_common(entry, _STARTUP_KEYS)
    return StartupAgentConfig(
        class_name=class_name,
        enabled=entry.boolean("enabled"),
        agent_id=agent_id,
        singleton=singleton,
        state=entry.table("state"),
        init=entry.data.get("init"),
    )


# --- resolving ---------------------------------------------------------------------------------------------


def resolve_resident_services(
    config: LaunchConfig,
    *,
    on_error: Callable[[ResidentServiceConfig, HostError], None] | None = None,
) -> list[ResolvedResidentService]:
    """Import and merge every enabled ``[[resident_services]]`` entry, in file order.

    Without ``on_error`` the first bad entry raises ``HostError``; with it, each bad entry is passed to
    ``on_error`` with its error and skipped.
    """
    resolved: list[ResolvedResidentService] = []
    ids: dict[str, int] = {}
    for index, entry in enumerate(config.resident_services):
        if not entry.enabled:
            continue
        where = f"{config.path}: resident_services[{index}]"
        try:
            item = _translated(where, functools.partial(_resolve_resident, entry))
            if item.agent_id in ids:
                raise HostError(
                    f"{where}: agent id {quoted([item.agent_id])} is already used by "
                    f"resident_services[{ids[item.agent_id]}]"
                )
        except HostError as exc:
            if on_error is None:
                raise
            on_error(entry, exc)
            continue
        ids[item.agent_id] = index
        resolved.append(item)
    return resolved


def resolve_startup_agents(
    config: LaunchConfig,
    *,
    on_error: Callable[[StartupAgentConfig, HostError], None] | None = None,
) -> list[ResolvedStartupAgent]:
    """Import and merge every enabled ``[[startup_agents]]`` entry, in file order.

    An entry without ``enabled`` follows its class's ``AUTO_START.enabled``. Errors as in
    :func:`resolve_resident_services`.
    """
    resolved: list[ResolvedStartupAgent] = []
    ids: dict[str, int] = {}
    for index, entry in enumerate(config.startup_agents):
        if entry.enabled is False:
            continue
        where = f"{config.path}: startup_agents[{index}]"
        try:
            item = _translated(where, functools.partial(_resolve_startup, entry))
            if item is not None and item.agent_id is not None and item.agent_id in ids:
                raise HostError(
                    f"{where}: agent id {quoted([item.agent_id])} is already used by "
                    f"startup_agents[{ids[item.agent_id]}]"
                )
        except HostError as exc:
            if on_error is None:
                raise
            on_error(entry, exc)
            continue
        if item is None:
            continue
        if item.agent_id is not None:
            ids[item.agent_id] = index
        resolved.append(item)
    return resolved


def _translated(where: str, resolve: Callable[[], _T]) -> _T:
    """Run ``resolve``, turning any paglets error into a ``HostError`` prefixed with ``where``."""
    try:
        return resolve()
    except PagletError as exc:
        raise HostError(f"{where}: {exc}") from exc


def _paglet_class(class_name: str) -> type[Paglet[Any]]:
    try:
        cls = resolve_qualified_name(class_name)
    except SerializationError as exc:
        raise HostError(f"class: {exc}") from exc
    if not issubclass(cls, Paglet):
        raise HostError(f"class: {class_name} is not a Paglet subclass")
    return cls


def _checked_state(cls: type[Paglet[Any]], state: dict[str, Any]) -> str:
    """Check that ``state`` names only fields of ``cls.State`` and decodes into it; returns its name."""
    state_cls = cls.state_class()
    names = {f.name for f in dataclasses.fields(state_cls)}
    unknown = set(state) - names
    if unknown:
        raise HostError(f"state: {quoted(unknown)} not a field of {qualified_name(state_cls)}")
    try:
        dataclass_from_wire(state_cls, state)
    except SerializationError as exc:  # names the bad field
        raise HostError(f"state: {exc}") from exc
    return qualified_name(state_cls)


def _checked_agent_id(agent_id: str, origin: str) -> str:
    if not is_agent_id(agent_id):
        raise HostError(f"invalid agent id {quoted([agent_id])} ({origin})")
    return agent_id


def _resident_spec(cls: type[Paglet[Any]], entry: ResidentServiceConfig) -> ResidentServiceSpec:
    declared = getattr(cls, "RESIDENT_SERVICES", None)
    if declared is None:
        raise HostError(f"class: {entry.class_name} does not declare RESIDENT_SERVICES")
    if not isinstance(declared, (tuple, list)) or not declared:
        raise HostError(
            f"class: {entry.class_name}.RESIDENT_SERVICES must be a non-empty tuple of ResidentServiceSpec"
        )
    specs: list[ResidentServiceSpec] = []
    for spec in declared:
        if not isinstance(spec, ResidentServiceSpec):
            raise HostError(
                f"class: {entry.class_name}.RESIDENT_SERVICES holds {spec!r}, not a ResidentServiceSpec"
            )
        specs.append(spec)
    names = [spec.contract.name for spec in specs]
    if entry.service is not None:
        for spec in specs:
            if spec.contract.name == entry.service:
                return spec
        raise HostError(
            f"service: {entry.class_name} declares no resident service {quoted([entry.service])} "
            f"(it declares {quoted(names)})"
        )
    if len(specs) > 1:
        raise HostError(
            f"class: {entry.class_name} declares several resident services ({quoted(names)}); "
            'choose one with service = "<name>"'
        )
    return specs[0]


def _resolve_resident(entry: ResidentServiceConfig) -> ResolvedResidentService:
    cls = _paglet_class(entry.class_name)
    spec = _resident_spec(cls, entry)
    contract = spec.contract
    if entry.agent_id is not None:
        agent_id = entry.agent_id
    else:
        agent_id = _checked_agent_id(spec.agent_id or f"service.{contract.name}", "default from the spec")
    state = {**spec.state, **entry.state}
    state_class_name = _checked_state(cls, state)
    return ResolvedResidentService(
        agent_class=cls,
        class_name=qualified_name(cls),
        state_class_name=state_class_name,
        spec=spec,
        contract=contract,
        agent_id=agent_id,
        lifecycle=spec.lifecycle if entry.lifecycle is None else entry.lifecycle,
        scope=spec.scope if entry.scope is None else entry.scope,
        idle_timeout=spec.idle_timeout if entry.idle_timeout is None else entry.idle_timeout,
        singleton=spec.singleton if entry.singleton is None else entry.singleton,
        state=state,
        init=entry.init,
    )


def _resolve_startup(entry: StartupAgentConfig) -> ResolvedStartupAgent | None:
    cls = _paglet_class(entry.class_name)
    auto = getattr(cls, "AUTO_START", None)
    if auto is not None and not isinstance(auto, AutoStartSpec):
        raise HostError(f"class: {entry.class_name}.AUTO_START must be an AutoStartSpec, got {auto!r}")
    base = auto or AutoStartSpec()
    if not (base.enabled if entry.enabled is None else entry.enabled):
        return None
    agent_id = entry.agent_id if entry.agent_id is not None else base.agent_id
    state = {**base.state, **entry.state}
    state_class_name = _checked_state(cls, state)
    return ResolvedStartupAgent(
        agent_class=cls,
        class_name=qualified_name(cls),
        state_class_name=state_class_name,
        agent_id=agent_id,
        singleton=base.singleton if entry.singleton is None else entry.singleton,
        state=state,
        init=base.init if entry.init is None else entry.init,
        auto_start=auto,
    )
