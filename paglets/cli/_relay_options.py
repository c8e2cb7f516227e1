"""The relay and TLS options of ``paglets-host`` (docs/relay.md): their definitions and their checks."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Final

__all__ = ["CA_FILE_ENV", "add_relay_options", "relay_options_problem"]

#: The environment variable naming extra CA certificates for https:// URLs (set by ``--ca-file``).
CA_FILE_ENV: Final = "PAGLETS_CA_FILE"


def add_relay_options(parser: argparse.ArgumentParser) -> None:
    relay = parser.add_argument_group("relay and TLS (docs/relay.md)")
    relay.add_argument(
        "--connect-to",
        metavar="URL",
        help="connect mode: open no port, reach the mesh through the relay hub at URL, e.g. "
        "https://server-a.example.com/paglets (needs an API key)",
    )
    relay.add_argument(
        "--relay-offline-after",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="hub: a connect-mode host that has not polled for this long is offline (default: 30)",
    )
    relay.add_argument(
        "--relay-delivery-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="hub: a relayed request its host has not taken by then is withdrawn, never to run (default: 10)",
    )
    relay.add_argument(
        "--relay-queue-limit",
        type=int,
        default=1024,
        metavar="N",
        help="hub: relayed requests waiting per connect-mode host; more are refused (default: 1024)",
    )
    relay.add_argument(
        "--ca-file",
        type=Path,
        metavar="PEM",
        help=f"also trust the CA certificates in this file for https:// URLs (sets {CA_FILE_ENV})",
    )
    relay.add_argument("--tls-cert", type=Path, metavar="PEM", help="serve HTTPS with this certificate chain")
    relay.add_argument("--tls-key", type=Path, metavar="PEM", help="the private key of --tls-cert")


def relay_options_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the relay and TLS options, in one line; ``None`` when they are fine."""
    if args.connect_to and args.public_url:
        return "--connect-to and --public-url exclude each other (a host is a hub or connects to one)"
    if args.tls_key is not None and args.tls_cert is None:
        return "--tls-key needs --tls-cert"
    for flag, value in (
        ("--relay-offline-after", args.relay_offline_after),
        ("--relay-delivery-timeout", args.relay_delivery_timeout),
    ):
        if not value > 0:
            return f"{flag} {value}: must be a positive number of seconds"
    if args.relay_queue_limit < 1:
        return f"--relay-queue-limit {args.relay_queue_limit}: must be at least 1"
    if args.ca_file is not None and not args.ca_file.is_file():
        return f"--ca-file {args.ca_file}: no such file"
    return None
