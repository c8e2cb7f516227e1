"""The ``paglets`` command tree below ``host`` and ``demo``: inspection and administration commands.

``paglets sys ...``, ``paglets mesh ...``, ``paglets artifacts ...``, ``paglets hosts``,
``paglets agents ...``, ``paglets jobs ...``, ``paglets user-info``, ``paglets examples ...``,
``paglets search ...`` and ``paglets completion bash|zsh|fish``. Building the parsers imports nothing
heavy, so every ``--help`` is fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from paglets.cli._common import Parser, dispatch

__all__ = ["COMMANDS", "build_parser", "run"]

#: Subcommands of ``paglets`` this module runs, with their one-line help.
COMMANDS: Final = {
    "sys": "load, disk usage, processes and summary of every host",
    "mesh": "resource snapshots of the mesh, placement targets, and git updates of every host",
    "artifacts": "list, inspect, download and delete stored artifacts",
    "hosts": "the hosts of the mesh",
    "agents": "list and manage paglets across the mesh",
    "jobs": "compute slots and compute jobs: capacity, queues, running and finished jobs, groups",
    "compute-slots": "compute slots and jobs in the command shapes of paglets 2.0 (paglets-compute-slots)",
    "user-info": "read notifications and output that paglets sent to a host's user-info service",
    "examples": "run the example agents: pi, file, perf, mesh-benchmark, analysis",
    "search": "grep and find over the files of every host",
    "completion": "print a shell completion script (bash, zsh or fish)",
}


def build_parser(prog: str = "paglets") -> Parser:
    """The parser of the commands in :data:`COMMANDS` (``host`` and ``demo`` are parsed elsewhere)."""
    from paglets.cli import agents, artifacts, jobs, meshinfo, sysinfo, userinfo

    parser = Parser(prog=prog, description="Inspect and manage a paglets mesh.")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    group: Parser = sub.add_parser("sys", help=COMMANDS["sys"], description=COMMANDS["sys"])
    group.set_defaults(group_parser=group)
    sysinfo._host_option(group)
    _network(group, sysinfo.DEFAULT_TIMEOUT)
    sysinfo.add_commands(group.add_subparsers(title="commands", metavar="COMMAND"), f"{prog} sys")

    group = sub.add_parser("mesh", help=COMMANDS["mesh"], description=COMMANDS["mesh"])
    group.set_defaults(group_parser=group)
    _network(group, meshinfo.DEFAULT_TIMEOUT)
    meshinfo.add_commands(group.add_subparsers(title="commands", metavar="COMMAND"), f"{prog} mesh")

    group = sub.add_parser("artifacts", help=COMMANDS["artifacts"], description=COMMANDS["artifacts"])
    group.set_defaults(group_parser=group)
    artifacts._host_option(group)
    _network(group, artifacts.DEFAULT_TIMEOUT)
    artifacts.add_commands(group.add_subparsers(title="commands", metavar="COMMAND"), f"{prog} artifacts")

    agents.add_hosts_command(sub, prog)
    group = sub.add_parser("agents", help=COMMANDS["agents"], description=agents.DESCRIPTION)
    group.set_defaults(group_parser=group)
    agents.add_agents_commands(group, f"{prog} agents")

    group = sub.add_parser("jobs", help=COMMANDS["jobs"], description=jobs.DESCRIPTION)
    group.set_defaults(group_parser=group)
    jobs.host_option(group)
    _network(group, jobs.DEFAULT_TIMEOUT)
    jobs.add_commands(group.add_subparsers(title="commands", metavar="COMMAND"), f"{prog} jobs")
    from paglets.cli import computeslots

    group = sub.add_parser(
        "compute-slots", help=COMMANDS["compute-slots"], description=computeslots.DESCRIPTION
    )
    group.set_defaults(group_parser=group)
    computeslots.add_options(group)
    computeslots.add_commands(
        group.add_subparsers(title="commands", metavar="COMMAND"), f"{prog} compute-slots"
    )

    userinfo.add_command(sub, prog)
    _examples(sub, prog)

    text = COMMANDS["completion"]
    leaf: Parser = sub.add_parser("completion", help=text, description=text)
    leaf.add_argument("shell", choices=("bash", "zsh", "fish"), help="the shell to complete in")
    leaf.set_defaults(func=_completion, prog=f"{prog} completion")
    return parser


def _examples(sub: Any, prog: str) -> None:
    """``examples pi|file|perf|mesh-benchmark|analysis`` and ``search grep|find``."""
    from paglets.cli import analysisjobs, filegrabber, meshbench, perf, pi, search

    group: Parser = sub.add_parser("examples", help=COMMANDS["examples"], description=COMMANDS["examples"])
    group.set_defaults(group_parser=group)
    examples = group.add_subparsers(title="examples", metavar="EXAMPLE")
    leaf: Parser = examples.add_parser("pi", help=pi._description(), description=pi.__doc__)
    pi.add_arguments(leaf)
    leaf.set_defaults(func=pi._run, prog=f"{prog} examples pi")
    text = "copy or move one file between hosts with a paglet that carries it"
    files: Parser = examples.add_parser("file", help=text, description=filegrabber.__doc__)
    files.set_defaults(group_parser=files)
    filegrabber.add_commands(
        files.add_subparsers(title="commands", metavar="COMMAND"), f"{prog} examples file"
    )
    leaf = examples.add_parser("perf", help=perf.DESCRIPTION, description=perf.__doc__)
    perf.add_arguments(leaf)
    leaf.set_defaults(func=perf._run, prog=f"{prog} examples perf")
    leaf = examples.add_parser("mesh-benchmark", help=meshbench.DESCRIPTION, description=meshbench.__doc__)
    meshbench.add_arguments(leaf)
    leaf.set_defaults(func=meshbench._run, prog=f"{prog} examples mesh-benchmark")
    text = "a campaign of CPU-bound analysis jobs, results committed to SQLite at home"
    leaf = examples.add_parser("analysis", help=text, description=analysisjobs.__doc__)
    analysisjobs.add_arguments(leaf)
    leaf.set_defaults(func=analysisjobs.run, prog=f"{prog} examples analysis")
    group = sub.add_parser("search", help=COMMANDS["search"], description=search.__doc__)
    group.add_argument("--type-list", action="store_true", help="list the file types and exit")
    group.set_defaults(group_parser=group, func=search._type_list, prog=f"{prog} search")
    search.add_commands(group.add_subparsers(title="commands", metavar="COMMAND"), f"{prog} search")


def _network(parser: Parser, timeout: float) -> None:
    from paglets.cli._common import add_network_options

    add_network_options(parser, timeout=timeout)


def _completion(args: object) -> int:
    from paglets.cli.completion import script

    print(script(str(getattr(args, "shell", "bash"))), end="")
    return 0


def run(argv: Sequence[str], prog: str = "paglets") -> int:
    """Run ``paglets <argv>`` for a command of :data:`COMMANDS`."""
    return dispatch(build_parser(prog), list(argv), prog)
