"""Launch files: loading and checking every key, resolving entries against real paglet classes."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import _launch_classes as classes
import pytest

from paglets.config.startup import (
    MAX_LAUNCH_CONFIG_BYTES,
    MAX_LAUNCH_ENTRIES,
    AutoStartSpec,
    LaunchConfig,
    ResidentServiceConfig,
    StartupAgentConfig,
    bundled_launch_config_text,
    default_launch_config_path,
    load_launch_config,
    parse_launch_config,
    resolve_resident_services,
    resolve_startup_agents,
)
from paglets.core.errors import HostError
from paglets.core.runtime_values import ResidentLifecycle, ServiceScope
from paglets.services.resident import RESIDENT_SERVICE_METADATA_KEY

FULL = """
[launch]
demo_config_id = "my-launch"
demo_config_version = "7"
sync_demo_config = false

[[resident_services]]
class = "_launch_classes:InfoService"
service = "test-info"
enabled = true
agent_id = "svc.info"
singleton = false
lifecycle = "lazy"
scope = "local"
idle_timeout = 0
state = { greeting = "hi", count = 2 }
init = [1, "two"]

[[resident_services]]
class = "_launch_classes:TwoServices"
enabled = false

[[startup_agents]]
class = "_launch_classes:Watcher"
enabled = true
agent_id = "watch-1"
singleton = true
state = { label = "file" }
init = { verbose = true }

[[startup_agents]]
class = "_launch_classes:Plain"
"""


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str], Path]:
    def write_file(text: str) -> Path:
        path = tmp_path / "launch.toml"
        path.write_text(text, encoding="utf-8")
        return path

    return write_file


def load_error(path: Path) -> str:
    with pytest.raises(HostError) as info:
        load_launch_config(path)
    return str(info.value)


# --- loading --------------------------------------------------------------------------------------------


def test_full_file_loads_into_the_dataclasses(write: Callable[[str], Path]) -> None:
    path = write(FULL)
    assert load_launch_config(path) == LaunchConfig(
        path=path,
        demo_config_id="my-launch",
        demo_config_version="7",
        sync_demo_config=False,
        resident_services=(
            ResidentServiceConfig(
                class_name="_launch_classes:InfoService",
                service="test-info",
                enabled=True,
                agent_id="svc.info",
                singleton=False,
                lifecycle=ResidentLifecycle.LAZY,
                scope=ServiceScope.LOCAL,
                idle_timeout=0.0,
                state={"greeting": "hi", "count": 2},
                init=[1, "two"],
            ),
            ResidentServiceConfig(class_name="_launch_classes:TwoServices", enabled=False),
        ),
        startup_agents=(
            StartupAgentConfig(
                class_name="_launch_classes:Watcher",
                enabled=True,
                agent_id="watch-1",
                singleton=True,
                state={"label": "file"},
                init={"verbose": True},
            ),
            StartupAgentConfig(class_name="_launch_classes:Plain"),
        ),
    )


def test_enum_keys_become_enum_members(write: Callable[[str], Path]) -> None:
    config = load_launch_config(write(FULL))
    entry = config.resident_services[0]
    assert entry.lifecycle is ResidentLifecycle.LAZY
    assert entry.scope is ServiceScope.LOCAL
    assert isinstance(entry.idle_timeout, float)


def test_empty_file_gives_the_defaults(write: Callable[[str], Path]) -> None:
    path = write("# nothing yet\n")
    assert load_launch_config(path) == LaunchConfig(path=path)


def test_unset_keys_load_as_none(write: Callable[[str], Path]) -> None:
    config = load_launch_config(
        write('[[resident_services]]\nclass = "m:C"\n[[startup_agents]]\nclass = "m:C"\n')
    )
    assert config.resident_services == (ResidentServiceConfig("m:C"),)
    assert config.resident_services[0].enabled is True
    assert config.startup_agents == (StartupAgentConfig("m:C"),)
    assert config.startup_agents[0].enabled is None
    assert config.startup_agents[0].singleton is None


def test_parse_names_the_given_path_in_errors() -> None:
    text = (
        '[[resident_services]]\nclass = "m:A"\n' * 2
        + '[[resident_services]]\nclass = "m:A"\nlifecycle = "sometimes"\n'
    )
    with pytest.raises(HostError) as info:
        parse_launch_config(text)
    assert (
        str(info.value)
        == 'launch.toml: resident_services[2].lifecycle: expected "lazy" or "eager", got "sometimes"'
    )


ENTRY = '[[resident_services]]\nclass = "m:C"\n'
AGENT = '[[startup_agents]]\nclass = "m:C"\n'

ERRORS = [
    ("foo = 1\n", 'unknown key "foo" (allowed: launch, resident_services, startup_agents)'),
    ("a = 1\nb = 2\n", 'unknown keys "a", "b" (allowed: launch, resident_services, startup_agents)'),
    ("launch = 3\n", "launch: expected a table, got 3 (an integer)"),
    (
        "[launch]\ndemo_id = 'x'\n",
        'launch: unknown key "demo_id" (allowed: demo_config_id, demo_config_version, sync_demo_config)',
    ),
    (
        "[launch]\ndemo_config_version = 5\n",
        "launch.demo_config_version: expected a string, got 5 (an integer)",
    ),
    (
        '[launch]\ndemo_config_id = " "\n',
        "launch.demo_config_id: expected a non-empty string of at most 256 characters",
    ),
    ('[launch]\nsync_demo_config = "no"\n', 'launch.sync_demo_config: expected true or false, got "no"'),
    (
        "resident_services = 1\n",
        "resident_services: expected an array of tables ([[resident_services]]), got 1 (an integer)",
    ),
    (
        '[resident_services]\nclass = "m:C"\n',
        "resident_services: expected an array of tables ([[resident_services]]), got a table",
    ),
    (
        "startup_agents = [1]\n",
        "startup_agents: expected an array of tables ([[startup_agents]]), got an array",
    ),
    (
        ENTRY + 'lifecycle = "sometimes"\n',
        'resident_services[0].lifecycle: expected "lazy" or "eager", got "sometimes"',
    ),
    (
        ENTRY + "lifecycle = 1\n",
        'resident_services[0].lifecycle: expected "lazy" or "eager", got 1 (an integer)',
    ),
    (
        ENTRY + 'lifecycle = "LAZY"\n',
        'resident_services[0].lifecycle: expected "lazy" or "eager", got "LAZY"',
    ),
    (ENTRY + 'scope = "global"\n', 'resident_services[0].scope: expected "local" or "mesh", got "global"'),
    (
        ENTRY + "idle_timeout = -1\n",
        "resident_services[0].idle_timeout: expected a finite number of seconds >= 0, got -1",
    ),
    (
        ENTRY + "idle_timeout = nan\n",
        "resident_services[0].idle_timeout: expected a finite number of seconds >= 0, got nan",
    ),
    (
        ENTRY + "idle_timeout = inf\n",
        "resident_services[0].idle_timeout: expected a finite number of seconds >= 0, got inf",
    ),
    (
        ENTRY + 'idle_timeout = "30"\n',
        'resident_services[0].idle_timeout: expected a number of seconds, got "30"',
    ),
    (
        ENTRY + "idle_timeout = true\n",
        "resident_services[0].idle_timeout: expected a number of seconds, got True (a boolean)",
    ),
    (ENTRY + "enabled = 1\n", "resident_services[0].enabled: expected true or false, got 1 (an integer)"),
    (ENTRY + "singleton = 'yes'\n", 'resident_services[0].singleton: expected true or false, got "yes"'),
    (ENTRY + "state = 5\n", "resident_services[0].state: expected a table, got 5 (an integer)"),
    (ENTRY + "state = [1]\n", "resident_services[0].state: expected a table, got an array"),
    (
        ENTRY + 'service = ""\n',
        "resident_services[0].service: expected a non-empty string of at most 256 characters",
    ),
    (
        ENTRY + "service = 1979-05-27\n",
        "resident_services[0].service: expected a string, got datetime.date(1979, 5, 27) (a date)",
    ),
    (
        ENTRY + 'agent_id = "has space"\n',
        'resident_services[0].agent_id: invalid agent id "has space": use 1 to 128 characters from '
        "A-Z a-z 0-9 . _ : -, starting with a letter or digit",
    ),
    (
        ENTRY + 'agent_id = ""\n',
        'resident_services[0].agent_id: invalid agent id "": use 1 to 128 characters from '
        "A-Z a-z 0-9 . _ : -, starting with a letter or digit",
    ),
    (ENTRY + "agent_id = 7\n", "resident_services[0].agent_id: expected a string, got 7 (an integer)"),
    (
        ENTRY + "clas = 'x'\nidle = 3\n",
        'resident_services[0]: unknown keys "clas", "idle" (allowed: agent_id, class, enabled, idle_timeout, '
        "init, lifecycle, scope, service, singleton, state)",
    ),
    (
        AGENT + 'lifecycle = "eager"\n',
        'startup_agents[0]: unknown key "lifecycle" '
        "(allowed: agent_id, class, enabled, init, singleton, state)",
    ),
    (
        "[[resident_services]]\nenabled = true\n",
        'resident_services[0].class: missing (the paglet class, e.g. class = "package.module:ClassName")',
    ),
    (
        "[[startup_agents]]\nclass = 5\n",
        'startup_agents[0].class: expected a class name "package.module:ClassName", got 5 (an integer)',
    ),
    (
        '[[startup_agents]]\nclass = "pkg.Class"\n',
        'startup_agents[0].class: expected "package.module:ClassName", got "pkg.Class"',
    ),
    (
        '[[startup_agents]]\nclass = "pkg.mod:"\n',
        'startup_agents[0].class: expected "package.module:ClassName", got "pkg.mod:"',
    ),
    (
        '[[startup_agents]]\nclass = "1pkg:C"\n',
        'startup_agents[0].class: expected "package.module:ClassName", got "1pkg:C"',
    ),
    (
        '[[startup_agents]]\nclass = "a:B:C"\n',
        'startup_agents[0].class: expected "package.module:ClassName", got "a:B:C"',
    ),
    (
        '[[startup_agents]]\nuse = "server-info"\n',
        'startup_agents[0].use: "use" aliases are not supported; name the paglet class instead, '
        'e.g. class = "package.module:ClassName"',
    ),
    (
        ENTRY + '[[resident_services]]\nclass = "m:C"\nuse = "server-info"\n',
        'resident_services[1].use: "use" aliases are not supported; name the paglet class instead, '
        'e.g. class = "package.module:ClassName"',
    ),
]


@pytest.mark.parametrize(("text", "message"), ERRORS)
def test_every_bad_key_names_file_and_key_path(write: Callable[[str], Path], text: str, message: str) -> None:
    path = write(text)
    assert load_error(path) == f"{path}: {message}"


def test_long_strings_are_shortened_in_messages(write: Callable[[str], Path]) -> None:
    path = write(f'[[startup_agents]]\nclass = "{"x" * 500}"\n')
    assert (
        load_error(path)
        == f'{path}: startup_agents[0].class: expected "package.module:ClassName", got "{"x" * 80}..."'
    )


def test_invalid_toml_names_the_file(write: Callable[[str], Path]) -> None:
    path = write("[launch\n")
    message = load_error(path)
    assert message.startswith(f"{path}: invalid TOML: ")
    assert "line 1" in message


def test_deeply_nested_toml_is_an_error_not_a_crash(write: Callable[[str], Path]) -> None:
    depth = 50_000
    path = write("init = " + "[" * depth + "]" * depth + "\n")
    assert load_error(path) == f"{path}: invalid TOML: values nested too deeply"


def test_too_many_entries(write: Callable[[str], Path]) -> None:
    path = write(AGENT * (MAX_LAUNCH_ENTRIES + 1))
    assert (
        load_error(path)
        == f"{path}: startup_agents: more than MAX_LAUNCH_ENTRIES ({MAX_LAUNCH_ENTRIES}) entries"
    )
    assert len(load_launch_config(write(AGENT * MAX_LAUNCH_ENTRIES)).startup_agents) == MAX_LAUNCH_ENTRIES


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "launch.toml"
    assert load_error(path) == f"{path}: launch config file not found"


def test_file_size_is_bounded(tmp_path: Path) -> None:
    path = tmp_path / "launch.toml"
    path.write_bytes(b"#" * MAX_LAUNCH_CONFIG_BYTES)
    assert load_launch_config(path) == LaunchConfig(path=path)
    path.write_bytes(b"#" * (MAX_LAUNCH_CONFIG_BYTES + 1))
    assert (
        load_error(path) == f"{path}: larger than MAX_LAUNCH_CONFIG_BYTES ({MAX_LAUNCH_CONFIG_BYTES} bytes)"
    )
    with pytest.raises(HostError, match="larger than MAX_LAUNCH_CONFIG_BYTES"):
        parse_launch_config("#" * (MAX_LAUNCH_CONFIG_BYTES + 1))


def test_text_must_be_utf8(tmp_path: Path) -> None:
    path = tmp_path / "launch.toml"
    path.write_bytes(b"# caf\xe9\n")
    assert load_error(path) == f"{path}: not UTF-8 text (bad byte at offset 5)"


def test_only_regular_files_are_read(tmp_path: Path) -> None:
    assert load_error(tmp_path) == f"{tmp_path}: launch config is not a regular file"
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)  # nobody writes to it: a blocking open would hang here
    assert load_error(fifo) == f"{fifo}: launch config is not a regular file"


def test_default_path_is_under_the_home_directory() -> None:
    assert default_launch_config_path() == Path.home() / ".paglets" / "launch.toml"


# --- bundled template -------------------------------------------------------------------------------------


def test_bundled_template_is_package_data_and_loads() -> None:
    text = resources.files("paglets.config").joinpath("default_launch.toml").read_text("utf-8")
    assert bundled_launch_config_text() == text
    config = parse_launch_config(text, path="default_launch.toml")
    assert config.demo_config_id == "paglets-default-launch"
    assert config.demo_config_version == "8"
    assert config.sync_demo_config is True
    services = {entry.agent_id: entry for entry in config.resident_services}
    assert list(services) == [
        "service.server-info",
        "service.mesh-info",
        "service.compute-slots",
        "service.user-info",
    ]
    assert services["service.mesh-info"].lifecycle is ResidentLifecycle.EAGER
    assert services["service.compute-slots"].lifecycle is ResidentLifecycle.EAGER
    assert services["service.server-info"].lifecycle is ResidentLifecycle.LAZY
    assert all(entry.scope is ServiceScope.MESH and entry.enabled for entry in services.values())
    assert config.startup_agents == ()
    resolved = resolve_resident_services(config)
    assert [r.contract.name for r in resolved] == ["server-info", "mesh-info", "compute-slots", "user-info"]


def test_bundled_template_comments_show_valid_syntax() -> None:
    """Uncommenting the examples of the template gives a file that loads."""
    lines = []
    for line in bundled_launch_config_text().splitlines():
        body = line.removeprefix("# ")
        if line.startswith("# ") and re.match(r"\[\[\w+\]\]$|\w+ = ", body):
            line = body
        lines.append(line)
    config = parse_launch_config("\n".join(lines))
    assert config.sync_demo_config is False
    *_, resident = config.resident_services
    assert resident.lifecycle is ResidentLifecycle.LAZY
    assert resident.scope is ServiceScope.MESH
    assert resident.idle_timeout == 30.0
    assert resident.state == {"greeting": "hi"}
    (agent,) = config.startup_agents
    assert agent.agent_id == "watcher"
    assert agent.init == {"verbose": True}


# --- AUTO_START ---------------------------------------------------------------------------------------------


def test_auto_start_spec_defaults_and_checks() -> None:
    spec = AutoStartSpec()
    assert (spec.agent_id, spec.singleton, spec.state, spec.init, spec.enabled) == (
        None,
        True,
        {},
        None,
        True,
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.agent_id = "x"  # type: ignore[misc]
    with pytest.raises(ValueError, match="agent_id"):
        AutoStartSpec(agent_id="not valid")
    with pytest.raises(TypeError, match="singleton"):
        AutoStartSpec(singleton=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="state"):
        AutoStartSpec(state={1: 2})  # type: ignore[dict-item]


# --- resolving resident services ----------------------------------------------------------------------------


def residents(text: str, path: str = "launch.toml") -> LaunchConfig:
    return parse_launch_config(text, path=path)


def resolve_error(text: str) -> str:
    with pytest.raises(HostError) as info:
        resolve_resident_services(residents(text))
    return str(info.value)


def test_resident_service_defaults_come_from_the_spec() -> None:
    (service,) = resolve_resident_services(
        residents('[[resident_services]]\nclass = "_launch_classes:InfoService"\n')
    )
    assert service.agent_class is classes.InfoService
    assert service.class_name == "_launch_classes:InfoService"
    assert service.state_class_name == "_launch_classes:ServiceState"
    assert service.spec is classes.InfoService.RESIDENT_SERVICES[0]
    assert service.contract is classes.INFO
    assert service.service_name == "test-info"
    assert service.agent_id == "service.test-info"
    assert service.lifecycle is ResidentLifecycle.EAGER
    assert service.scope is ServiceScope.MESH
    assert service.idle_timeout == 5.0
    assert service.singleton is True
    assert service.state == {"greeting": "spec"}
    assert service.init is None
    assert service.record_metadata() == {
        RESIDENT_SERVICE_METADATA_KEY: {
            "agent_id": "service.test-info",
            "agent_class_name": "_launch_classes:InfoService",
            "lifecycle": "eager",
            "idle_timeout": 5.0,
        }
    }


def test_resident_service_entry_overrides_the_spec() -> None:
    (service,) = resolve_resident_services(parse_launch_config(FULL))
    assert service.agent_id == "svc.info"
    assert service.lifecycle is ResidentLifecycle.LAZY
    assert service.scope is ServiceScope.LOCAL
    assert service.idle_timeout == 0.0  # zero is a value, not "unset"
    assert service.singleton is False
    assert service.state == {"greeting": "hi", "count": 2}
    assert service.init == [1, "two"]
    assert classes.InfoService.RESIDENT_SERVICES[0].state == {"greeting": "spec"}  # spec untouched


def test_state_is_merged_key_by_key_over_the_spec() -> None:
    text = '[[resident_services]]\nclass = "_launch_classes:InfoService"\nstate = { count = 3 }\n'
    (service,) = resolve_resident_services(residents(text))
    assert service.state == {"greeting": "spec", "count": 3}


def test_service_key_picks_among_several_specs() -> None:
    base = '[[resident_services]]\nclass = "_launch_classes:TwoServices"\n'
    echo, info = resolve_resident_services(
        residents(base + 'service = "test-echo"\n' + base + 'service = "test-info"\n')
    )
    assert echo.contract is classes.ECHO
    assert echo.agent_id == "service.test-echo"
    assert echo.singleton is False
    assert echo.lifecycle is ResidentLifecycle.LAZY
    assert info.contract is classes.INFO
    assert info.agent_id == "two.info"


def test_several_specs_need_the_service_key() -> None:
    assert resolve_error('[[resident_services]]\nclass = "_launch_classes:TwoServices"\n') == (
        "launch.toml: resident_services[0]: class: _launch_classes:TwoServices declares several "
        'resident services ("test-echo", "test-info"); choose one with service = "<name>"'
    )


def test_unknown_service_name() -> None:
    text = '[[resident_services]]\nclass = "_launch_classes:TwoServices"\nservice = "nope"\n'
    assert resolve_error(text) == (
        "launch.toml: resident_services[0]: service: _launch_classes:TwoServices declares no "
        'resident service "nope" (it declares "test-echo", "test-info")'
    )


@pytest.mark.parametrize(
    ("class_name", "problem"),
    [
        (
            "_launch_classes:NoServices",
            "class: _launch_classes:NoServices does not declare RESIDENT_SERVICES",
        ),
        (
            "_launch_classes:WrongServices",
            "class: _launch_classes:WrongServices.RESIDENT_SERVICES holds 'server-info', "
            "not a ResidentServiceSpec",
        ),
        ("_launch_classes:NotAPaglet", "class: _launch_classes:NotAPaglet is not a Paglet subclass"),
        ("_launch_classes:Missing", "class: "),
        ("no_such_module_for_launch:Thing", "class: cannot import module 'no_such_module_for_launch'"),
        ("_launch_classes:SpacedService", 'invalid agent id "service.bad name" (default from the spec)'),
    ],
)
def test_resident_class_problems(class_name: str, problem: str) -> None:
    message = resolve_error(f'[[resident_services]]\nclass = "{class_name}"\n')
    assert message.startswith(f"launch.toml: resident_services[0]: {problem}")


def test_resident_state_must_fit_the_state_class() -> None:
    text = (
        '[[resident_services]]\nclass = "_launch_classes:InfoService"\nstate = { colour = "red", size = 1 }\n'
    )
    assert resolve_error(text) == (
        'launch.toml: resident_services[0]: state: "colour", "size" '
        "not a field of _launch_classes:ServiceState"
    )
    text = '[[resident_services]]\nclass = "_launch_classes:InfoService"\nstate = { count = "many" }\n'
    message = resolve_error(text)
    assert message.startswith("launch.toml: resident_services[0]: state: ")
    assert "count" in message


def test_disabled_resident_entries_are_not_imported() -> None:
    text = '[[resident_services]]\nclass = "no_such_module_for_launch:Thing"\nenabled = false\n'
    assert resolve_resident_services(residents(text)) == []


def test_duplicate_resident_agent_ids() -> None:
    entry = '[[resident_services]]\nclass = "_launch_classes:InfoService"\n'
    assert resolve_error(entry * 2) == (
        'launch.toml: resident_services[1]: agent id "service.test-info" is already used by '
        "resident_services[0]"
    )


def test_on_error_reports_and_skips_bad_resident_entries() -> None:
    text = (
        '[[resident_services]]\nclass = "_launch_classes:NoServices"\n'
        '[[resident_services]]\nclass = "_launch_classes:InfoService"\n'
        '[[resident_services]]\nclass = "_launch_classes:InfoService"\n'
        '[[resident_services]]\nclass = "_launch_classes:TwoServices"\nservice = "test-echo"\n'
    )
    config = residents(text, path="/etc/paglets/launch.toml")
    failures: list[tuple[ResidentServiceConfig, HostError]] = []
    resolved = resolve_resident_services(config, on_error=lambda entry, exc: failures.append((entry, exc)))
    assert [service.agent_id for service in resolved] == ["service.test-info", "service.test-echo"]
    assert [entry for entry, _ in failures] == [config.resident_services[0], config.resident_services[2]]
    assert [str(exc).split(": ")[1] for _, exc in failures] == [
        "resident_services[0]",
        "resident_services[2]",
    ]
    assert all(str(exc).startswith("/etc/paglets/launch.toml: ") for _, exc in failures)


def test_resolution_errors_chain_the_cause() -> None:
    with pytest.raises(HostError) as info:
        resolve_resident_services(residents('[[resident_services]]\nclass = "no_such_module_for_launch:T"\n'))
    assert info.value.__cause__ is not None


# --- resolving startup agents -------------------------------------------------------------------------------


def agents_error(text: str) -> str:
    with pytest.raises(HostError) as info:
        resolve_startup_agents(parse_launch_config(text))
    return str(info.value)


def test_startup_agent_defaults_come_from_auto_start() -> None:
    (agent,) = resolve_startup_agents(
        parse_launch_config('[[startup_agents]]\nclass = "_launch_classes:Watcher"\n')
    )
    assert agent.agent_class is classes.Watcher
    assert agent.class_name == "_launch_classes:Watcher"
    assert agent.state_class_name == "_launch_classes:WatchState"
    assert agent.agent_id == "watcher"
    assert agent.singleton is True
    assert agent.state == {"interval": 5.0, "label": "auto"}
    assert agent.init == {"from": "auto"}
    assert agent.auto_start is classes.Watcher.AUTO_START


def test_startup_agent_entry_overrides_auto_start() -> None:
    text = (
        '[[startup_agents]]\nclass = "_launch_classes:Watcher"\nagent_id = "w2"\nsingleton = false\n'
        'state = { label = "file", tags = ["a"] }\ninit = 3\n'
    )
    (agent,) = resolve_startup_agents(parse_launch_config(text))
    assert agent.agent_id == "w2"
    assert agent.singleton is False
    assert agent.state == {"interval": 5.0, "label": "file", "tags": ["a"]}
    assert agent.init == 3


def test_startup_agent_without_auto_start() -> None:
    text = '[[startup_agents]]\nclass = "_launch_classes:Plain"\n' * 2  # no ids: two fresh paglets
    first, second = resolve_startup_agents(parse_launch_config(text))
    assert first.agent_id is None
    assert second.agent_id is None
    assert first.singleton is True
    assert first.state == {}
    assert first.init is None
    assert first.auto_start is None


def test_auto_start_enabled_is_the_default_of_enabled() -> None:
    dormant = '[[startup_agents]]\nclass = "_launch_classes:Dormant"\n'
    assert resolve_startup_agents(parse_launch_config(dormant)) == []
    (agent,) = resolve_startup_agents(parse_launch_config(dormant + "enabled = true\n"))
    assert agent.agent_class is classes.Dormant
    assert agent.singleton is False
    disabled = '[[startup_agents]]\nclass = "no_such_module_for_launch:Thing"\nenabled = false\n'
    assert resolve_startup_agents(parse_launch_config(disabled)) == []


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            '[[startup_agents]]\nclass = "_launch_classes:WrongAutoStart"\n',
            "class: _launch_classes:WrongAutoStart.AUTO_START must be an AutoStartSpec, "
            "got {'agent_id': 'x'}",
        ),
        (
            '[[startup_agents]]\nclass = "_launch_classes:NotAPaglet"\n',
            "class: _launch_classes:NotAPaglet is not a",
        ),
        (
            '[[startup_agents]]\nclass = "_launch_classes:Plain"\nstate = { speed = 1 }\n',
            'state: "speed" not a field of _launch_classes:WatchState',
        ),
        (
            '[[startup_agents]]\nclass = "_launch_classes:Plain"\nagent_id = "a"\n'
            '[[startup_agents]]\nclass = "_launch_classes:Plain"\n'
            '[[startup_agents]]\nclass = "_launch_classes:Watcher"\nagent_id = "a"\n',
            "",  # checked below
        ),
    ],
)
def test_startup_agent_problems(text: str, problem: str) -> None:
    message = agents_error(text)
    if problem:
        assert message.startswith(f"launch.toml: startup_agents[0]: {problem}")
    else:
        assert message == 'launch.toml: startup_agents[2]: agent id "a" is already used by startup_agents[0]'


def test_on_error_reports_and_skips_bad_startup_agents() -> None:
    text = (
        '[[startup_agents]]\nclass = "_launch_classes:NotAPaglet"\n'
        '[[startup_agents]]\nclass = "_launch_classes:Watcher"\n'
    )
    config = parse_launch_config(text)
    failures: list[tuple[StartupAgentConfig, HostError]] = []
    resolved = resolve_startup_agents(config, on_error=lambda entry, exc: failures.append((entry, exc)))
    assert [agent.agent_id for agent in resolved] == ["watcher"]
    assert [entry for entry, _ in failures] == [config.startup_agents[0]]


def test_resolved_values_are_frozen() -> None:
    (agent,) = resolve_startup_agents(
        parse_launch_config('[[startup_agents]]\nclass = "_launch_classes:Watcher"\n')
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        agent.agent_id = "other"  # type: ignore[misc]
    assert agent.state is not classes.Watcher.AUTO_START.state  # merged into a new dict
