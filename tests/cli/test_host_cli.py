"""``paglets-host`` / ``paglets`` command lines: help texts, usage errors, hidden options."""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys

import pytest

from paglets.cli.host import HIDDEN_OPTIONS, CliError, build_parser, host_options, log_level


def _run(*args: str, module: str = "paglets.cli.host") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=60)


def test_every_shown_option_has_help_and_no_empty_default() -> None:
    parser = build_parser()
    text = parser.format_help()
    for action in parser._actions:
        if action.help == argparse.SUPPRESS:
            continue
        assert (action.help or "").strip(), f"{action.option_strings} has no help"
    assert "default: None" not in text
    assert "default: False" not in text
    assert "default: []" not in text
    for option in HIDDEN_OPTIONS:
        assert option not in text, option
    for option in (
        "--name",
        "--peer",
        "--mesh-version",
        "--log-level",
        "--quiet",
        "--verbose",
        "--public-url",
        "--connect-to",
        "--relay-offline-after",
        "--relay-delivery-timeout",
        "--relay-queue-limit",
        "--ca-file",
        "--tls-cert",
        "--tls-key",
    ):
        assert option in text


def test_connect_mode_and_auto_update_exclude_each_other() -> None:
    parser = build_parser()
    relay = ["--connect-to", "http://127.0.0.1:9", "--api-key-env", "HOME"]
    args = parser.parse_args(["--name", "x", "--auto-update-from-git", *relay])
    with pytest.raises(CliError, match="--connect-to cannot be combined with --auto-update-from-git"):
        host_options(args)
    assert host_options(parser.parse_args(["--name", "x", "--auto-update-from-git"]))["name"] == "x"
    out = _run(
        "--name", "x", "--connect-to", "http://127.0.0.1:9", "--auto-update-from-git", "--api-key-env", "HOME"
    )
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "paglets-host: error: --connect-to cannot be combined with --auto-update-from-git "
        "(see paglets-host --help)"
    ]


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["--connect-to", "https://hub.example/paglets"], "--public-url and --connect-to need an API key"),
        (["--public-url", "https://hub.example/paglets"], "--public-url and --connect-to need an API key"),
        (
            [
                "--connect-to",
                "https://h.example/p",
                "--public-url",
                "https://h.example/p",
                "--api-key-env",
                "HOME",
            ],
            "exclude each other",
        ),
        (["--relay-offline-after", "0"], "--relay-offline-after 0.0: must be a positive"),
        (["--relay-delivery-timeout", "-1"], "--relay-delivery-timeout -1.0: must be a positive"),
        (["--relay-queue-limit", "0"], "--relay-queue-limit 0: must be at least 1"),
        (["--tls-key", "k.pem"], "--tls-key needs --tls-cert"),
        (["--ca-file", "/nonexistent/ca.pem"], "--ca-file /nonexistent/ca.pem: no such file"),
    ],
)
def test_relay_and_tls_options_are_checked(
    argv: list[str], error: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PAGLETS_API_KEY", raising=False)
    args = build_parser().parse_args(["--name", "x", *argv])
    with pytest.raises(CliError, match=error):
        host_options(args)


def test_relay_options_reach_the_host() -> None:
    args = build_parser().parse_args(
        [
            "--name",
            "b",
            "--connect-to",
            "https://hub.example/paglets",
            "--api-key-env",
            "HOME",
            "--relay-offline-after",
            "12",
            "--relay-delivery-timeout",
            "3",
            "--relay-queue-limit",
            "7",
        ]
    )
    options = host_options(args)
    assert options["connect_to"] == "https://hub.example/paglets"
    assert (
        options["relay_offline_after"],
        options["relay_delivery_timeout"],
        options["relay_queue_limit"],
    ) == (12.0, 3.0, 7)
    defaults = host_options(build_parser().parse_args(["--name", "a"]))
    assert (
        defaults["relay_offline_after"],
        defaults["relay_delivery_timeout"],
        defaults["relay_queue_limit"],
    ) == (30.0, 10.0, 1024)


def test_a_usage_error_is_one_line_that_points_at_help() -> None:
    missing = _run()
    assert missing.returncode == 2
    assert missing.stdout == ""
    assert missing.stderr.splitlines() == [
        "paglets-host: error: the following arguments are required: --name (see paglets-host --help)"
    ]
    bogus = _run("--name", "x", "--bogus")
    assert bogus.stderr.splitlines() == [
        "paglets-host: error: unrecognized arguments: --bogus (see paglets-host --help)"
    ]
    peer = _run("--name", "x", "--peer", "alpha")
    assert len(peer.stderr.splitlines()) == 1
    assert "--peer alpha: 'alpha' is not a URL: write it as http://HOST:PORT" in peer.stderr
    umbrella = _run("nope", module="paglets.cli.main")
    assert umbrella.returncode == 2
    assert umbrella.stderr.splitlines() == ["paglets: error: unknown command 'nope' (see paglets --help)"]
    sub = _run("host", "--port", "x", module="paglets.cli.main")
    assert len(sub.stderr.splitlines()) == 1
    assert "(see paglets host --help)" in sub.stderr


def test_log_level_options() -> None:
    parser = build_parser()

    def level(*extra: str) -> int:
        return log_level(parser.parse_args(["--name", "x", *extra]))

    assert level() == logging.INFO
    assert level("-q") == logging.WARNING
    assert level("-v") == logging.DEBUG
    assert level("--log-level", "ERROR") == logging.ERROR
    with pytest.raises(CliError, match="contradict"):
        level("-q", "-v")
    bad = _run("--name", "x", "--log-level", "loud")
    assert len(bad.stderr.splitlines()) == 1
    assert "invalid choice: 'loud'" in bad.stderr


def test_expose_tracebacks_is_off_unless_asked() -> None:
    parser = build_parser()
    assert host_options(parser.parse_args(["--name", "x"]))["expose_tracebacks"] is False
    exposed = host_options(parser.parse_args(["--name", "x", "--expose-tracebacks"]))
    assert exposed["expose_tracebacks"] is True


def test_declared_compute_capacity() -> None:
    parser = build_parser()
    args = parser.parse_args(
        [
            "--name",
            "x",
            "--cpu-slots",
            "3",
            "--memory-limit",
            "4G",
            "--scratch-limit",
            "512M",
            "--gpu-slots",
            "1",
        ]
    )
    assert host_options(args)["compute_capacity"] == {
        "cpu_slots": 3,
        "memory_bytes": 4 << 30,
        "scratch_bytes": 512 << 20,
        "gpu_count": 1,
    }
    assert host_options(parser.parse_args(["--name", "x"]))["compute_capacity"] == {}
    bad = _run("--name", "x", "--cpu-slots", "-1")
    assert bad.returncode == 2
    assert "argument --cpu-slots: must be between 0 and 65536, got -1" in bad.stderr


def test_host_config_checks_the_compute_capacity() -> None:
    from paglets.core.errors import HostError
    from paglets.runtime._config import HostConfig

    config = HostConfig.build("x", compute_capacity={"cpu_slots": 2, "gpu_count": 0})
    assert config.compute_capacity == {"cpu_slots": 2}
    with pytest.raises(HostError, match="unknown key 'cores'"):
        HostConfig.build("x", compute_capacity={"cores": 2})
    with pytest.raises(HostError, match="cpu_slots must be a whole number of 0 or more, got -2"):
        HostConfig.build("x", compute_capacity={"cpu_slots": -2})
